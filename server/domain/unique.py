"""Unique jobs (ojs-unique-jobs.md): the policy, and the job's fingerprint under it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain.durations import parse_duration_ms
from server.domain.errors import invalid
from server.domain.limits import MAX_DURATION_MS
from server.domain.states import JobState

DIMENSIONS = ("type", "queue", "args", "meta")
CONFLICT_ACTIONS = ("reject", "ignore", "replace", "replace_except_schedule")
_ACTION_ALIASES = {"use_existing": "ignore"}
DEFAULT_STATES = (
    JobState.AVAILABLE,
    JobState.ACTIVE,
    JobState.SCHEDULED,
    JobState.RETRYABLE,
    JobState.PENDING,
)


@dataclasses.dataclass(frozen=True)
class UniquePolicy:
    keys: tuple[str, ...]
    args_keys: tuple[str, ...] | None
    meta_keys: tuple[str, ...]
    period_ms: int | None
    on_conflict: str
    states: tuple[JobState, ...]


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise invalid(f"unique.{key} must be a list of non-empty strings", field=f"options.unique.{key}")
    return tuple(value)


def parse_unique_policy(raw: Any) -> UniquePolicy:
    if not isinstance(raw, Mapping):
        raise invalid("unique must be a JSON object", field="options.unique")
    keys = _strings(raw, "keys")
    # The core envelope's `key` names argument fields (SPEC-GUIDE C16).
    args_keys = _strings(raw, "args_keys") or _strings(raw, "key")
    if keys is None:
        keys = ("type", "args") if args_keys else ("type",)
    unknown = [k for k in keys if k not in DIMENSIONS]
    if unknown:
        raise invalid(
            f"unique.keys may hold only {', '.join(DIMENSIONS)}; got {', '.join(unknown)}", field="options.unique.keys"
        )
    meta_keys = _strings(raw, "meta_keys") or ()
    if "meta" in keys and not meta_keys:
        raise invalid("unique.meta_keys is required when unique.keys has 'meta'", field="options.unique.meta_keys")
    period_ms = None
    period = raw.get("period")
    if period is not None:
        period_ms = parse_duration_ms(period) if isinstance(period, str) else None
        if not period_ms or period_ms > MAX_DURATION_MS:
            raise invalid(
                "unique.period must be a positive ISO 8601 duration of at most 100 years", field="options.unique.period"
            )
    action = raw.get("on_conflict", "reject")
    if isinstance(action, str):
        action = _ACTION_ALIASES.get(action, action)
    if action not in CONFLICT_ACTIONS:
        raise invalid(
            f"unique.on_conflict must be one of {', '.join(CONFLICT_ACTIONS)}", field="options.unique.on_conflict"
        )
    state_names = _strings(raw, "states")
    try:
        states = tuple(JobState(s) for s in state_names) if state_names is not None else DEFAULT_STATES
    except ValueError:
        raise invalid("unique.states must name job states", field="options.unique.states") from None
    return UniquePolicy(
        keys=tuple(dict.fromkeys(("type", *keys))),
        args_keys=args_keys,
        meta_keys=meta_keys,
        period_ms=period_ms,
        on_conflict=action,
        states=states,
    )


def _canonical(value: Any) -> Any:
    """NFC strings, and numbers as RFC 8785 writes them: 1.0 and 1 alike, -0.0 as 0."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {unicodedata.normalize("NFC", k): _canonical(v) for k, v in value.items()}
    return value


def _filter_args(args: Sequence[Any], args_keys: Sequence[str]) -> list[Any]:
    present: set[str] = set()
    filtered: list[Any] = []
    for item in args:
        if isinstance(item, dict):
            present.update(k for k in args_keys if k in item)
            filtered.append({k: item[k] for k in args_keys if k in item})
        else:
            filtered.append(item)
    missing = [k for k in args_keys if k not in present]
    if missing:
        raise invalid(
            f"unique.args_keys names keys not in args: {', '.join(missing)}", field="options.unique.args_keys"
        )
    return filtered


def fingerprint(
    policy: UniquePolicy, *, job_type: str, queue: str, args: Sequence[Any], meta: Mapping[str, Any]
) -> str:
    """SHA-256 (hex) of the canonical JSON of the policy's dimensions: sorted keys, NFC strings."""
    parts: dict[str, Any] = {}
    for key in policy.keys:
        if key == "type":
            parts["type"] = job_type
        elif key == "queue":
            parts["queue"] = queue
        elif key == "args":
            parts["args"] = _filter_args(args, policy.args_keys) if policy.args_keys else list(args)
        elif key == "meta":
            parts["meta"] = {k: meta[k] for k in policy.meta_keys if k in meta}
    canonical = json.dumps(_canonical(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
