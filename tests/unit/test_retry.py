"""Retry policy: backoff formulas, parsing with defaults and validation, non-retryable matching."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from server.domain.errors import ErrorCode, OJSError
from server.domain.retry import (
    DEFAULT_RETRY_POLICY,
    BackoffStrategy,
    OnExhaustion,
    RetryPolicy,
    backoff_delay_ms,
    matches_non_retryable,
    parse_retry_policy,
)


def policy(**changes: Any) -> RetryPolicy:
    base = RetryPolicy(jitter=False)
    return dataclasses.replace(base, **changes)


def delays(p: RetryPolicy, count: int = 3, jitter_factor: float = 1.0) -> list[int]:
    return [backoff_delay_ms(p, n, jitter_factor) for n in range(1, count + 1)]


def rejected(raw: Any) -> OJSError:
    with pytest.raises(OJSError) as caught:
        parse_retry_policy(raw)
    error = caught.value
    assert error.code is ErrorCode.VALIDATION_ERROR
    assert error.error_type == "validation_error"
    assert error.retryable is False
    return error


# --------------------------------------------------------------------------- backoff_delay_ms


def test_exponential_doubles_from_the_initial_interval() -> None:
    assert delays(policy(initial_interval_ms=1000, backoff_coefficient=2.0)) == [1000, 2000, 4000]


def test_exponential_with_coefficient_three() -> None:
    assert delays(policy(initial_interval_ms=500, backoff_coefficient=3.0), 4) == [500, 1500, 4500, 13500]


def test_linear_grows_by_the_initial_interval() -> None:
    p = policy(strategy=BackoffStrategy.LINEAR, initial_interval_ms=1000, backoff_coefficient=2.0)
    assert delays(p) == [1000, 2000, 3000]


def test_constant_ignores_the_attempt_number() -> None:
    p = policy(strategy=BackoffStrategy.CONSTANT, initial_interval_ms=1000, backoff_coefficient=5.0)
    assert delays(p, 5) == [1000] * 5


def test_exponential_with_coefficient_one_is_constant() -> None:
    assert delays(policy(initial_interval_ms=1000, backoff_coefficient=1.0), 4) == [1000] * 4


def test_polynomial_is_initial_times_n_to_the_coefficient() -> None:
    square = policy(strategy=BackoffStrategy.POLYNOMIAL, initial_interval_ms=1000, backoff_coefficient=2.0)
    assert delays(square, 4) == [1000, 4000, 9000, 16000]
    cube = policy(strategy=BackoffStrategy.POLYNOMIAL, initial_interval_ms=100, backoff_coefficient=3.0)
    assert delays(cube, 3) == [100, 800, 2700]


def test_delay_is_capped_at_max_interval() -> None:
    p = policy(initial_interval_ms=1000, backoff_coefficient=10.0, max_interval_ms=2000)
    assert delays(p) == [1000, 2000, 2000]


@pytest.mark.parametrize("strategy", list(BackoffStrategy))
def test_every_strategy_respects_the_cap(strategy: BackoffStrategy) -> None:
    p = policy(strategy=strategy, initial_interval_ms=1000, backoff_coefficient=3.0, max_interval_ms=1500)
    assert all(d <= 1500 for d in delays(p, 10))


def test_retry_numbers_below_one_count_as_the_first_retry() -> None:
    p = policy(initial_interval_ms=1000, backoff_coefficient=2.0)
    assert backoff_delay_ms(p, 0) == 1000
    assert backoff_delay_ms(p, -5) == 1000


def test_jitter_factor_scales_the_delay() -> None:
    p = policy(jitter=True, initial_interval_ms=1000, backoff_coefficient=2.0, max_interval_ms=60_000)
    assert backoff_delay_ms(p, 1, 0.5) == 500
    assert backoff_delay_ms(p, 1, 1.49) == 1490
    assert backoff_delay_ms(p, 2, 0.5) == 1000
    assert backoff_delay_ms(p, 2, 1.49) == 2980


def test_jittered_delay_is_capped_again() -> None:
    p = policy(jitter=True, initial_interval_ms=1000, backoff_coefficient=10.0, max_interval_ms=2000)
    assert backoff_delay_ms(p, 2, 1.49) == 2000
    assert backoff_delay_ms(p, 3, 1.49) == 2000
    # Cap first, then jitter: 100 s is capped to 2 s, then halved.
    assert backoff_delay_ms(p, 3, 0.5) == 1000


def test_jitter_factor_is_ignored_without_jitter() -> None:
    p = policy(jitter=False, initial_interval_ms=1000)
    assert backoff_delay_ms(p, 1, 0.5) == 1000
    assert backoff_delay_ms(p, 1, 1.49) == 1000


def test_default_policy_first_retry_is_one_second() -> None:
    assert backoff_delay_ms(DEFAULT_RETRY_POLICY, 1, 1.0) == 1000
    low = backoff_delay_ms(DEFAULT_RETRY_POLICY, 1, 0.5)
    high = backoff_delay_ms(DEFAULT_RETRY_POLICY, 1, 1.4999)
    assert 500 <= low <= high <= 1500


@pytest.mark.parametrize("strategy", list(BackoffStrategy))
@pytest.mark.parametrize("retry_number", [1100, 10**6, 10**30, 10**400])
def test_huge_retry_numbers_do_not_overflow(strategy: BackoffStrategy, retry_number: int) -> None:
    p = policy(strategy=strategy, initial_interval_ms=1000, backoff_coefficient=2.0, max_interval_ms=300_000)
    delay = backoff_delay_ms(p, retry_number)
    assert isinstance(delay, int)
    expected = 1000 if strategy is BackoffStrategy.CONSTANT else 300_000
    assert delay == expected
    jittered = backoff_delay_ms(dataclasses.replace(p, jitter=True), retry_number, 1.49)
    assert jittered == min(int(expected * 1.49), 300_000)


# --------------------------------------------------------------------------- parse_retry_policy


def test_missing_policy_gives_the_spec_defaults() -> None:
    empty: dict[str, Any] = {}
    assert parse_retry_policy(None) == DEFAULT_RETRY_POLICY
    assert parse_retry_policy(empty) == DEFAULT_RETRY_POLICY
    p = DEFAULT_RETRY_POLICY
    assert p.max_attempts == 3
    assert p.initial_interval_ms == 1000
    assert p.backoff_coefficient == 2.0
    assert p.max_interval_ms == 300_000
    assert p.jitter is True
    assert p.non_retryable_errors == ()
    assert p.on_exhaustion is OnExhaustion.DISCARD
    assert p.strategy is BackoffStrategy.EXPONENTIAL


def test_partial_policy_is_merged_with_defaults() -> None:
    parsed = parse_retry_policy({"max_attempts": 5, "jitter": False})
    assert parsed == dataclasses.replace(DEFAULT_RETRY_POLICY, max_attempts=5, jitter=False)


def test_partial_policy_with_only_an_interval() -> None:
    parsed = parse_retry_policy({"initial_interval": "PT2S"})
    assert parsed.initial_interval_ms == 2000
    assert parsed.max_interval_ms == 300_000
    assert parsed.max_attempts == 3
    assert parsed.backoff_coefficient == 2.0


@pytest.mark.parametrize(
    ("text", "ms"),
    [("PT0.5S", 500), ("PT1S", 1000), ("PT5M", 300_000), ("PT1H", 3_600_000), ("P1D", 86_400_000)],
)
def test_iso_durations(text: str, ms: int) -> None:
    parsed = parse_retry_policy({"initial_interval": text, "max_interval": "P2D"})
    assert parsed.initial_interval_ms == ms
    assert parsed.max_interval_ms == 2 * 86_400_000


def test_max_interval_as_one_day() -> None:
    assert parse_retry_policy({"max_interval": "P1D"}).max_interval_ms == 86_400_000


def test_millisecond_variants() -> None:
    parsed = parse_retry_policy({"initial_interval_ms": 250, "max_interval_ms": 5000})
    assert parsed.initial_interval_ms == 250
    assert parsed.max_interval_ms == 5000


def test_millisecond_variant_wins_over_the_iso_form() -> None:
    parsed = parse_retry_policy({"initial_interval": "PT9S", "initial_interval_ms": 300})
    assert parsed.initial_interval_ms == 300


def test_bare_numbers_are_seconds() -> None:
    parsed = parse_retry_policy({"initial_interval": 2, "max_interval": 1.5 * 60})
    assert parsed.initial_interval_ms == 2000
    assert parsed.max_interval_ms == 90_000


def test_initial_interval_above_the_default_cap_is_accepted() -> None:
    parsed = parse_retry_policy({"initial_interval": "PT10M"})
    assert parsed.initial_interval_ms == 600_000
    assert parsed.max_interval_ms >= parsed.initial_interval_ms


def test_coefficient_below_one_is_rejected_naming_the_field() -> None:
    error = rejected({"backoff_coefficient": 0.5})
    assert "backoff_coefficient" in error.message
    assert error.details["field"] == "retry.backoff_coefficient"


@pytest.mark.parametrize("value", ["2", True, None, float("nan"), float("inf"), [2], 0, -1.5])
def test_bad_coefficients_are_rejected(value: Any) -> None:
    error = rejected({"backoff_coefficient": value})
    assert "backoff_coefficient" in error.message


def test_integer_coefficient_is_accepted_as_float() -> None:
    parsed = parse_retry_policy({"backoff_coefficient": 1})
    assert parsed.backoff_coefficient == 1.0
    assert isinstance(parsed.backoff_coefficient, float)


def test_negative_max_attempts_is_rejected_naming_the_field() -> None:
    error = rejected({"max_attempts": -1})
    assert "max_attempts" in error.message
    assert error.details["field"] == "retry.max_attempts"


@pytest.mark.parametrize("value", ["3", 2.5, True, False, [3]])
def test_non_integer_max_attempts_is_rejected(value: Any) -> None:
    assert "max_attempts" in rejected({"max_attempts": value}).message


def test_zero_max_attempts_is_accepted() -> None:
    assert parse_retry_policy({"max_attempts": 0}).max_attempts == 0


def test_max_attempts_override_applies_only_when_the_policy_has_none() -> None:
    assert parse_retry_policy(None, max_attempts_override=7).max_attempts == 7
    assert parse_retry_policy({}, max_attempts_override=7).max_attempts == 7
    assert parse_retry_policy({"max_attempts": 2}, max_attempts_override=7).max_attempts == 2


@pytest.mark.parametrize("field", ["initial_interval", "max_interval"])
@pytest.mark.parametrize("value", ["5 seconds", "PT", "P", "P1M", "P1Y", "PT-1S", "1S", "", "PTS", True, [1], {}])
def test_bad_durations_are_rejected(field: str, value: Any) -> None:
    error = rejected({field: value})
    assert field in error.message
    assert error.details["field"] == f"retry.{field}"


@pytest.mark.parametrize("field", ["initial_interval_ms", "max_interval_ms"])
@pytest.mark.parametrize("value", [-1, "100", True, 1.5])
def test_bad_millisecond_durations_are_rejected(field: str, value: Any) -> None:
    assert field in rejected({field: value}).message


def test_zero_initial_interval_is_rejected() -> None:
    assert "initial_interval" in rejected({"initial_interval": "PT0S"}).message
    assert "initial_interval" in rejected({"initial_interval_ms": 0}).message


def test_max_interval_below_initial_interval_is_rejected() -> None:
    error = rejected({"initial_interval": "PT10S", "max_interval": "PT5S"})
    assert "max_interval" in error.message


def test_max_interval_equal_to_initial_interval_is_accepted() -> None:
    parsed = parse_retry_policy({"initial_interval": "PT5S", "max_interval": "PT5S"})
    assert parsed.initial_interval_ms == parsed.max_interval_ms == 5000


@pytest.mark.parametrize("value", ["yes", 1, 0, "true"])
def test_jitter_must_be_boolean(value: Any) -> None:
    assert "jitter" in rejected({"jitter": value}).message


def test_non_retryable_errors_list() -> None:
    parsed = parse_retry_policy({"non_retryable_errors": ["FatalError", "Auth.*"]})
    assert parsed.non_retryable_errors == ("FatalError", "Auth.*")
    assert parse_retry_policy({"non_retryable_errors": None}).non_retryable_errors == ()


@pytest.mark.parametrize("value", ["FatalError", ["ok", 3], [""], {"a": 1}])
def test_bad_non_retryable_errors_are_rejected(value: Any) -> None:
    assert "non_retryable_errors" in rejected({"non_retryable_errors": value}).message


@pytest.mark.parametrize(
    ("raw", "expected"), [("discard", OnExhaustion.DISCARD), ("dead_letter", OnExhaustion.DEAD_LETTER)]
)
def test_on_exhaustion_values(raw: str, expected: OnExhaustion) -> None:
    assert parse_retry_policy({"on_exhaustion": raw}).on_exhaustion is expected


@pytest.mark.parametrize("value", ["retry", "DEAD_LETTER", "", 1])
def test_bad_on_exhaustion_is_rejected(value: Any) -> None:
    assert "on_exhaustion" in rejected({"on_exhaustion": value}).message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("exponential", BackoffStrategy.EXPONENTIAL),
        ("linear", BackoffStrategy.LINEAR),
        ("constant", BackoffStrategy.CONSTANT),
        ("polynomial", BackoffStrategy.POLYNOMIAL),
        ("none", BackoffStrategy.CONSTANT),
        ("fixed", BackoffStrategy.CONSTANT),
    ],
)
@pytest.mark.parametrize("key", ["backoff_strategy", "backoff_type"])
def test_strategy_names_and_aliases(key: str, raw: str, expected: BackoffStrategy) -> None:
    assert parse_retry_policy({key: raw}).strategy is expected


def test_backoff_strategy_wins_over_backoff_type() -> None:
    parsed = parse_retry_policy({"backoff_strategy": "linear", "backoff_type": "constant"})
    assert parsed.strategy is BackoffStrategy.LINEAR


@pytest.mark.parametrize("value", ["random", "Linear", 3, ["linear"]])
def test_bad_strategy_is_rejected(value: Any) -> None:
    assert "backoff_strategy" in rejected({"backoff_strategy": value}).message


@pytest.mark.parametrize("raw", [[], "PT1S", 3, True])
def test_policy_must_be_an_object(raw: Any) -> None:
    assert rejected(raw).details["field"] == "retry"


def test_to_json_round_trips() -> None:
    original = RetryPolicy(
        max_attempts=7,
        initial_interval_ms=1500,
        backoff_coefficient=1.5,
        max_interval_ms=90_000,
        jitter=False,
        non_retryable_errors=("FatalError", "Auth.*"),
        on_exhaustion=OnExhaustion.DEAD_LETTER,
        strategy=BackoffStrategy.POLYNOMIAL,
    )
    encoded = original.to_json()
    assert encoded["initial_interval"] == "PT1.5S"
    assert encoded["max_interval"] == "PT1M30S"
    assert parse_retry_policy(encoded) == original
    assert parse_retry_policy(DEFAULT_RETRY_POLICY.to_json()) == DEFAULT_RETRY_POLICY


# --------------------------------------------------------------------------- matches_non_retryable


def test_exact_match() -> None:
    assert matches_non_retryable(["FatalError"], "FatalError")
    assert not matches_non_retryable(["FatalError"], "FatalErrorX")
    assert not matches_non_retryable(["FatalError"], "Fatal")
    assert not matches_non_retryable(["FatalError"], "fatalerror")


def test_prefix_match() -> None:
    patterns = ["Auth.*"]
    assert matches_non_retryable(patterns, "Auth.TokenExpired")
    assert matches_non_retryable(patterns, "Auth.Token.Expired")


@pytest.mark.parametrize(
    "error_type", ["Authz", "AuthTokenExpired", "Authz.Denied", "OAuth.Token", "auth.TokenExpired"]
)
def test_prefix_does_not_match_other_names(error_type: str) -> None:
    assert not matches_non_retryable(["Auth.*"], error_type)


def test_any_pattern_of_several_matches() -> None:
    patterns = ["FatalError", "Auth.*", "Validation"]
    assert matches_non_retryable(patterns, "Validation")
    assert matches_non_retryable(patterns, "Auth.X")
    assert not matches_non_retryable(patterns, "Transient")


def test_no_patterns_match_nothing() -> None:
    assert not matches_non_retryable([], "FatalError")
    assert not matches_non_retryable((), "")
