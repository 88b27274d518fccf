"""Retry policy (ojs-retry.md): parsing with defaults, backoff delays, error matching.

The Lua nack script evaluates the same formulas atomically with the state
change; `backoff_delay_ms` is the reference the store tests hold it to.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain.durations import format_duration_ms, parse_duration_ms
from server.domain.errors import OJSError, unprocessable
from server.domain.limits import INT32_MAX, MAX_DURATION_MS


class BackoffStrategy(enum.StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    CONSTANT = "constant"
    POLYNOMIAL = "polynomial"


class OnExhaustion(enum.StrEnum):
    DISCARD = "discard"
    DEAD_LETTER = "dead_letter"


_STRATEGY_ALIASES = {"none": BackoffStrategy.CONSTANT, "fixed": BackoffStrategy.CONSTANT}


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # total attempts including the first; 0 = unlimited
    initial_interval_ms: int = 1000
    backoff_coefficient: float = 2.0
    max_interval_ms: int = 300_000
    jitter: bool = True
    non_retryable_errors: tuple[str, ...] = ()
    on_exhaustion: OnExhaustion = OnExhaustion.DISCARD
    strategy: BackoffStrategy = BackoffStrategy.EXPONENTIAL

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "initial_interval": format_duration_ms(self.initial_interval_ms),
            "backoff_coefficient": self.backoff_coefficient,
            "max_interval": format_duration_ms(self.max_interval_ms),
            "jitter": self.jitter,
            "non_retryable_errors": list(self.non_retryable_errors),
            "on_exhaustion": self.on_exhaustion.value,
            "backoff_strategy": self.strategy.value,
        }


DEFAULT_RETRY_POLICY = RetryPolicy()


def backoff_delay_ms(policy: RetryPolicy, retry_number: int, jitter_factor: float = 1.0) -> int:
    """Delay before the retry that follows failed attempt `retry_number` (1-based).

    `jitter_factor` is drawn from [0.5, 1.5) by the caller when the policy
    has jitter; the result is capped at max_interval before and after it.
    """
    n = max(retry_number, 1)
    initial = float(policy.initial_interval_ms)
    coef = policy.backoff_coefficient
    try:
        if policy.strategy is BackoffStrategy.LINEAR:
            raw = initial * n
        elif policy.strategy is BackoffStrategy.CONSTANT:
            raw = initial
        elif policy.strategy is BackoffStrategy.POLYNOMIAL:
            raw = initial * math.pow(n, coef)
        else:
            raw = initial * math.pow(coef, n - 1)
    except OverflowError:
        raw = math.inf
    delay = min(raw, float(policy.max_interval_ms))
    if policy.jitter:
        delay = min(delay * jitter_factor, float(policy.max_interval_ms))
    return int(delay)


def matches_non_retryable(patterns: Sequence[str], error_type: str) -> bool:
    """Exact match, or prefix match for a pattern ending in `.*` ("Auth.*")."""
    for pattern in patterns:
        if pattern == error_type:
            return True
        if pattern.endswith(".*") and error_type.startswith(pattern[:-1]):
            return True
    return False


def _duration_field(raw: Mapping[str, Any], name: str, default_ms: int) -> int:
    value = _raw_duration_field(raw, name, default_ms)
    if value > MAX_DURATION_MS:
        raise unprocessable(f"retry.{name} must be at most {MAX_DURATION_MS} ms (100 years)", field=f"retry.{name}")
    return value


def _raw_duration_field(raw: Mapping[str, Any], name: str, default_ms: int) -> int:
    ms_name = f"{name}_ms"
    if ms_name in raw and raw[ms_name] is not None:
        value = raw[ms_name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise unprocessable(f"retry.{ms_name} must be a non-negative integer", field=f"retry.{ms_name}")
        return value
    if name not in raw or raw[name] is None:
        return default_ms
    value = raw[name]
    if isinstance(value, bool):
        raise unprocessable(f"retry.{name} must be an ISO 8601 duration", field=f"retry.{name}")
    if isinstance(value, int | float):
        # Bare numbers are seconds, as in the core envelope's numeric durations.
        if not 0 <= value <= MAX_DURATION_MS:
            raise unprocessable(f"retry.{name} must be between 0 and 100 years", field=f"retry.{name}")
        return int(value * 1000)
    if not isinstance(value, str):
        raise unprocessable(f"retry.{name} must be an ISO 8601 duration", field=f"retry.{name}")
    parsed = parse_duration_ms(value)
    if parsed is None:
        raise unprocessable(f"retry.{name} is not a valid ISO 8601 duration: {value!r}", field=f"retry.{name}")
    return parsed


def parse_retry_policy(raw: Any, *, max_attempts_override: int | None = None) -> RetryPolicy:
    """A complete policy from a possibly partial JSON object (merged with the defaults)."""
    if raw is None:
        if max_attempts_override is None:
            # Most jobs give no policy: the defaults (parse_retry_policy({}) equals them, as a test checks).
            return DEFAULT_RETRY_POLICY
        raw = {}
    if not isinstance(raw, Mapping):
        raise unprocessable("retry must be an object", field="retry")
    max_attempts = raw.get("max_attempts", max_attempts_override)
    if max_attempts is None:
        max_attempts = DEFAULT_RETRY_POLICY.max_attempts
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 0 <= max_attempts <= INT32_MAX:
        raise unprocessable(f"retry.max_attempts must be an integer in [0, {INT32_MAX}]", field="retry.max_attempts")

    coefficient = raw.get("backoff_coefficient", DEFAULT_RETRY_POLICY.backoff_coefficient)
    if isinstance(coefficient, bool) or not isinstance(coefficient, int | float) or not math.isfinite(coefficient):
        raise unprocessable("retry.backoff_coefficient must be a number", field="retry.backoff_coefficient")
    if coefficient < 1.0:
        raise unprocessable("retry.backoff_coefficient must be >= 1.0", field="retry.backoff_coefficient")

    initial_ms = _duration_field(raw, "initial_interval", DEFAULT_RETRY_POLICY.initial_interval_ms)
    if initial_ms <= 0:
        raise unprocessable("retry.initial_interval must be greater than zero", field="retry.initial_interval")
    max_ms = _duration_field(raw, "max_interval", max(DEFAULT_RETRY_POLICY.max_interval_ms, initial_ms))
    if max_ms < initial_ms:
        raise unprocessable("retry.max_interval must be >= retry.initial_interval", field="retry.max_interval")

    jitter = raw.get("jitter", DEFAULT_RETRY_POLICY.jitter)
    if not isinstance(jitter, bool):
        raise unprocessable("retry.jitter must be a boolean", field="retry.jitter")

    patterns = raw.get("non_retryable_errors", [])
    if patterns is None:
        patterns = []
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise unprocessable(
            "retry.non_retryable_errors must be a list of non-empty strings", field="retry.non_retryable_errors"
        )

    exhaustion_raw = raw.get("on_exhaustion", OnExhaustion.DISCARD.value)
    try:
        on_exhaustion = OnExhaustion(exhaustion_raw)
    except ValueError:
        raise unprocessable(
            "retry.on_exhaustion must be 'discard' or 'dead_letter'", field="retry.on_exhaustion"
        ) from None

    strategy_raw = raw.get("backoff_strategy", raw.get("backoff_type"))
    strategy = _parse_strategy(strategy_raw, coefficient)
    return RetryPolicy(
        max_attempts=max_attempts,
        initial_interval_ms=initial_ms,
        backoff_coefficient=float(coefficient),
        max_interval_ms=max_ms,
        jitter=jitter,
        non_retryable_errors=tuple(patterns),
        on_exhaustion=on_exhaustion,
        strategy=strategy,
    )


def _parse_strategy(raw: Any, coefficient: float) -> BackoffStrategy:
    if raw is None:
        return BackoffStrategy.EXPONENTIAL
    if not isinstance(raw, str):
        raise unprocessable("retry.backoff_strategy must be a string", field="retry.backoff_strategy")
    if raw in _STRATEGY_ALIASES:
        return _STRATEGY_ALIASES[raw]
    try:
        return BackoffStrategy(raw)
    except ValueError:
        names = ", ".join(s.value for s in BackoffStrategy)
        raise unprocessable(f"retry.backoff_strategy must be one of {names}", field="retry.backoff_strategy") from None


__all__ = [
    "DEFAULT_RETRY_POLICY",
    "BackoffStrategy",
    "OJSError",
    "OnExhaustion",
    "RetryPolicy",
    "backoff_delay_ms",
    "matches_non_retryable",
    "parse_retry_policy",
]
