"""The pool, timeout and admission settings: read from the environment, checked, defaulted."""

from __future__ import annotations

import pytest

from server.app import redis_limits
from server.config import Settings, SettingsError


def test_defaults_bound_every_wait() -> None:
    settings = Settings.from_env({})
    limits = redis_limits(settings)
    assert limits.pool_size == 64
    assert limits.pool_timeout_s == 2.0
    assert limits.connect_timeout_s == 2.0
    assert limits.command_timeout_s == 5.0
    assert settings.max_inflight == 16
    assert settings.admission_timeout_ms == 5000
    assert settings.retry_after_s == 1


def test_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "OJS_REDIS_POOL_SIZE": "8",
            "OJS_REDIS_POOL_TIMEOUT_MS": "250",
            "OJS_REDIS_CONNECT_TIMEOUT_MS": "300",
            "OJS_REDIS_COMMAND_TIMEOUT_MS": "1500",
            "OJS_MAX_INFLIGHT": "0",
            "OJS_MAX_WAITING": "10",
            "OJS_ADMISSION_TIMEOUT_MS": "700",
            "OJS_RETRY_AFTER_S": "3",
        }
    )
    limits = redis_limits(settings)
    assert (limits.pool_size, limits.pool_timeout_s, limits.connect_timeout_s, limits.command_timeout_s) == (
        8,
        0.25,
        0.3,
        1.5,
    )
    assert (settings.max_inflight, settings.max_waiting, settings.admission_timeout_ms) == (0, 10, 700)
    assert settings.retry_after_s == 3


@pytest.mark.parametrize(
    "name, value",
    [
        ("OJS_REDIS_POOL_SIZE", "2"),
        ("OJS_REDIS_COMMAND_TIMEOUT_MS", "50"),
        ("OJS_RETRY_AFTER_S", "0"),
        ("OJS_MAX_INFLIGHT", "-1"),
        ("OJS_ADMISSION_TIMEOUT_MS", "soon"),
    ],
)
def test_unusable_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
