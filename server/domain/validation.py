"""Validation of a job envelope in the OJS JSON form into a `NewJob`.

Accepts the HTTP binding's shape (`options.*`) and the core envelope's
top-level fields; `options` wins where both are given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from server.domain.clock import parse_rfc3339_ms
from server.domain.durations import parse_duration_ms
from server.domain.errors import ErrorCode, OJSError, invalid
from server.domain.ids import is_uuid7, new_uuid7
from server.domain.job import DEFAULT_QUEUE, MAX_PRIORITY, MIN_PRIORITY, NewJob
from server.domain.limits import (
    INT32_MAX,
    MAX_TAGS,
    check_duration_ms,
    check_name_bytes,
    check_time_ms,
    is_int,
)
from server.domain.retry import DEFAULT_RETRY_POLICY, parse_retry_policy
from server.domain.unique import fingerprint, parse_unique_policy

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]*(\.[a-z][a-z0-9_\-]*)*$")
QUEUE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9\-\.]*$")

# Fields with a meaning in the envelope; everything else is preserved in `extra`.
_ENVELOPE_FIELDS = frozenset(
    {
        "id",
        "type",
        "args",
        "meta",
        "options",
        "schema",
        "specversion",
        "queue",
        "priority",
        "timeout",
        "scheduled_at",
        "expires_at",
        "retry",
        "unique",
        "visibility_timeout",
        "tags",
        "trace_id",
    }
)
# System-managed fields: a client cannot set them, so they are dropped (core §5.3).
_SYSTEM_FIELDS = frozenset(
    {
        "state",
        "attempt",
        "max_attempts",
        "created_at",
        "enqueued_at",
        "started_at",
        "completed_at",
        "cancelled_at",
        "discarded_at",
        "error",
        "errors",
        "result",
        "next_attempt_at",
        "retry_delay_ms",
        "worker_id",
        "workflow_id",
        "parent_results",
        "lease_expires_at",
    }
)


def validate_name(value: Any, *, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"{field} must be a non-empty string", field=field)
    check_name_bytes(value, field=field)
    if pattern.match(value) is None:
        raise invalid(f"{field} {value!r} does not match {pattern.pattern}", field=field)
    return value


def validate_queue(value: Any, field: str = "queue") -> str:
    return validate_name(value, field=field, pattern=QUEUE_PATTERN)


def parse_time_ms(value: Any, *, field: str, now_ms: int) -> int:
    """An RFC 3339 timestamp with zone, or `+<ISO 8601 duration>` relative to now."""
    if not isinstance(value, str) or not value:
        raise invalid(f"{field} must be an RFC 3339 timestamp or '+<ISO 8601 duration>'", field=field)
    if value.startswith("+"):
        delta = parse_duration_ms(value[1:])
        if delta is None:
            raise invalid(f"{field} has an invalid relative duration {value!r}", field=field)
        return check_time_ms(now_ms + delta, field=field)
    parsed = parse_rfc3339_ms(value)
    if parsed is None:
        raise invalid(f"{field} must be an RFC 3339 timestamp with a time zone, got {value!r}", field=field)
    return check_time_ms(parsed, field=field)


def _positive_ms(value: Any, *, field: str, seconds: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise invalid(f"{field} must be a positive number", field=field)
    if isinstance(value, float) and value > 2**63:
        raise invalid(f"{field} is out of range", field=field)
    return check_duration_ms(int(value * 1000) if seconds else int(value), field=field)


def _option(options: Mapping[str, Any], body: Mapping[str, Any], *names: str) -> tuple[str, Any] | None:
    """First present (non-null) name, looked up in options, then the top level."""
    for name in names:
        value = options.get(name)
        if value is not None:
            return "options." + name, value
    for name in names:
        value = body.get(name)
        if value is not None:
            return name, value
    return None


# The common job names only these; then every other option takes its default and the
# lookups of the general path (about 25 per job, each in options and the top level) are skipped.
_PLAIN_FIELDS = frozenset({"id", "type", "args", "meta", "options"})
_PLAIN_OPTIONS = frozenset({"queue", "priority"})


def parse_enqueue(body: Any, *, now_ms: int) -> NewJob:
    if not isinstance(body, Mapping):
        raise OJSError(ErrorCode.INVALID_PAYLOAD, "request body must be a JSON object")
    job_type, args, job_id = _required_fields(body)
    meta = _json_object(body.get("meta"), field="meta")
    options = _json_object(body.get("options"), field="options")
    if body.keys() <= _PLAIN_FIELDS and options.keys() <= _PLAIN_OPTIONS:
        return _plain_job(options, job_id=job_id, job_type=job_type, args=args, meta=meta, now_ms=now_ms)
    return _general_job(body, options, job_id=job_id, job_type=job_type, args=args, meta=meta, now_ms=now_ms)


def _general_job(
    body: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    job_id: str,
    job_type: str,
    args: list[Any],
    meta: dict[str, Any],
    now_ms: int,
) -> NewJob:
    """Any envelope: every option looked up in `options`, then at the top level."""
    found = _option(options, body, "queue")
    queue = validate_queue(found[1], found[0]) if found else DEFAULT_QUEUE
    priority = _priority(options, body)
    timeout_ms = _duration_option(options, body, "timeout")
    visibility_ms = _duration_option(options, body, "visibility_timeout")
    scheduled_at = _time_option(options, body, "scheduled_at", "delay_until", now_ms=now_ms)
    expires_at = _time_option(options, body, "expires_at", now_ms=now_ms)
    found = _option(options, body, "retry", "retry_policy")
    retry = parse_retry_policy(found[1] if found else None, max_attempts_override=options.get("max_attempts"))
    tags = _tags(options, body)
    meta = _with_options_metadata(options, meta)

    schema = body.get("schema")
    if schema is not None and not isinstance(schema, str):
        raise invalid("schema must be a string URI", field="schema")
    unique = _option(options, body, "unique")
    unique_policy = parse_unique_policy(unique[1]) if unique is not None else None
    rate_per_second, concurrency = _rate_limit(options.get("rate_limit"))
    pending = options.get("pending", False)
    if not isinstance(pending, bool):
        raise invalid("options.pending must be a boolean", field="options.pending")
    trace_id = body.get("trace_id")
    if trace_id is None and isinstance(meta.get("trace_id"), str):
        trace_id = meta["trace_id"]

    extra = {k: v for k, v in body.items() if k not in _ENVELOPE_FIELDS and k not in _SYSTEM_FIELDS}
    return NewJob(
        id=job_id,
        type=job_type,
        queue=queue,
        args=args,
        meta=meta,
        priority=priority,
        retry=retry,
        created_at_ms=now_ms,
        scheduled_at_ms=scheduled_at,
        expires_at_ms=expires_at,
        timeout_ms=timeout_ms,
        visibility_timeout_ms=visibility_ms,
        tags=tags,
        extra=extra,
        pending=pending,
        schema=schema,
        trace_id=trace_id if isinstance(trace_id, str) else None,
        unique=unique[1] if unique else None,
        rate_per_second=rate_per_second,
        concurrency=concurrency,
        unique_policy=unique_policy,
        unique_fingerprint=(
            fingerprint(unique_policy, job_type=job_type, queue=queue, args=args, meta=meta)
            if unique_policy is not None
            else None
        ),
    )


def _plain_job(
    options: Mapping[str, Any], *, job_id: str, job_type: str, args: list[Any], meta: dict[str, Any], now_ms: int
) -> NewJob:
    """A job whose envelope holds no option but queue and priority (in `options`): the rest are defaults."""
    queue = options.get("queue")
    trace_id = meta.get("trace_id")
    return NewJob(
        id=job_id,
        type=job_type,
        queue=DEFAULT_QUEUE if queue is None else validate_queue(queue, "options.queue"),
        args=args,
        meta=meta,
        priority=_priority(options, {}),
        retry=DEFAULT_RETRY_POLICY,
        created_at_ms=now_ms,
        trace_id=trace_id if isinstance(trace_id, str) else None,
    )


def _required_fields(body: Mapping[str, Any]) -> tuple[str, list[Any], str]:
    """type and args, which must be given, and id, generated when absent."""
    if "type" not in body or body["type"] is None:
        raise invalid("type is required", field="type")
    job_type = validate_name(body["type"], field="type", pattern=TYPE_PATTERN)

    if "args" not in body:
        raise invalid("args is required and must be a JSON array", field="args")
    args = body["args"]
    if not isinstance(args, list):
        raise invalid("args must be a JSON array", field="args")

    job_id = body.get("id")
    if job_id is None:
        job_id = new_uuid7()
    elif not isinstance(job_id, str) or not is_uuid7(job_id):
        raise invalid("id must be a lowercase UUIDv7", field="id")
    return job_type, args, job_id


def _json_object(value: Any, *, field: str) -> dict[str, Any]:
    """An optional JSON object field; absent or null is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{field} must be a JSON object", field=field)
    return value


def _priority(options: Mapping[str, Any], body: Mapping[str, Any]) -> int:
    found = _option(options, body, "priority")
    if not found:
        return 0
    field, priority = found
    if not is_int(priority) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise invalid(f"{field} must be an integer in [{MIN_PRIORITY}, {MAX_PRIORITY}]", field=field)
    return int(priority)


def _duration_option(options: Mapping[str, Any], body: Mapping[str, Any], name: str) -> int | None:
    """`<name>_ms` in milliseconds, else `<name>` in seconds; None when neither is given."""
    found = _option(options, body, f"{name}_ms")
    if found:
        return _positive_ms(found[1], field=found[0])
    found = _option(options, body, name)
    if found:
        return _positive_ms(found[1], field=found[0], seconds=True)
    return None


def _time_option(options: Mapping[str, Any], body: Mapping[str, Any], *names: str, now_ms: int) -> int | None:
    found = _option(options, body, *names)
    return parse_time_ms(found[1], field=found[0], now_ms=now_ms) if found else None


def _tags(options: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[str, ...]:
    found = _option(options, body, "tags")
    if not found:
        return ()
    field, tags = found
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise invalid(f"{field} must be a list of strings", field=field)
    if len(tags) > MAX_TAGS:
        raise invalid(f"{field} holds at most {MAX_TAGS} tags", field=field)
    for index, tag in enumerate(tags):
        check_name_bytes(tag, field=f"{field}[{index}]")
    return tuple(tags)


def _with_options_metadata(options: Mapping[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """options.metadata is merged into meta so workers see it (e.g. test directives); meta wins."""
    metadata = options.get("metadata")
    if metadata is None:
        return meta
    if not isinstance(metadata, dict):
        raise invalid("options.metadata must be a JSON object", field="options.metadata")
    return {**metadata, **meta}


def _rate_limit(raw: Any) -> tuple[int | None, int | None]:
    """options.rate_limit: {max_per_second?, concurrency?} limits of the job's queue."""
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping):
        raise invalid("options.rate_limit must be a JSON object", field="options.rate_limit")
    limits: list[int | None] = []
    for key in ("max_per_second", "concurrency"):
        value = raw.get(key)
        if value is not None and (not is_int(value) or not 0 < value <= INT32_MAX):
            raise invalid(
                f"options.rate_limit.{key} must be an integer in [1, {INT32_MAX}]", field=f"options.rate_limit.{key}"
            )
        limits.append(value)
    return limits[0], limits[1]
