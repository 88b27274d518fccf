"""Job hash fields <-> domain objects.

JSON-valued fields are stored as JSON text and read back as raw bytes, so
args and results reach clients byte for byte without being decoded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson

from server.domain.cron_entry import CronEntry
from server.domain.job import JobErrorRecord, NewJob, StoredJob
from server.domain.progress import Progress, visible
from server.domain.retry import DEFAULT_RETRY_POLICY, BackoffStrategy, OnExhaustion, RetryPolicy
from server.domain.states import JobState


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def new_job_fields(job: NewJob) -> list[str]:
    """Flat field/value list for HSET, all strings (state and enqueued_at are set by the script, see insert_job.lua).

    Readers here take the id from the hash's key; the `id` field is still written because servers of
    earlier versions, which read it, may share the Redis during a rolling upgrade.
    """
    flat = [
        "id",
        job.id,
        "type",
        job.type,
        "queue",
        job.queue,
        "args",
        dumps(job.args).decode(),
        "created_at",
        str(job.created_at_ms),
    ]
    # Fields at their zero value are left out to keep queued jobs small: every
    # reader takes a missing priority, attempt or meta as 0, 0 and {}.
    if job.priority:
        flat += ("priority", str(job.priority))
    if job.meta:
        flat += ("meta", dumps(job.meta).decode())
    policy = job.retry
    # Flattened retry policy, read by the nack script without decoding JSON. Left out when
    # it is the default policy (most jobs): readers fall back to the same defaults.
    if policy is not DEFAULT_POLICY and policy != DEFAULT_POLICY:
        flat += (
            "r_max", str(policy.max_attempts),
            "r_init", str(policy.initial_interval_ms),
            "r_coef", repr(policy.backoff_coefficient),
            "r_maxi", str(policy.max_interval_ms),
            "r_jit", "1" if policy.jitter else "0",
            "r_strat", policy.strategy.value,
            "r_nre", "\n".join(policy.non_retryable_errors),
            "r_exh", policy.on_exhaustion.value,
        )  # fmt: skip
    optional: tuple[tuple[str, str | int | None], ...] = (
        ("scheduled_at", job.scheduled_at_ms),
        ("expires_at", job.expires_at_ms),
        ("timeout_ms", job.timeout_ms),
        ("visibility_timeout_ms", job.visibility_timeout_ms),
        ("tags", dumps(list(job.tags)).decode() if job.tags else None),
        ("extra", dumps(job.extra).decode() if job.extra else None),
        ("schema", job.schema),
        ("trace_id", job.trace_id),
        ("unique", dumps(job.unique).decode() if job.unique is not None else None),
        ("directive", job_directive(job.meta) if job.meta else None),
        ("unique_fp", job.unique_fingerprint),
        (
            "unique_states",
            ",".join(state.value for state in job.unique_policy.states) if job.unique_policy is not None else None,
        ),
    )
    for name, value in optional:
        if value is not None:
            flat += (name, str(value))
    return flat


# Directives a job can carry to the worker holding it (relayed on heartbeat).
JOB_DIRECTIVES = frozenset({"quiet", "terminate"})


def job_directive(meta: dict[str, Any]) -> str | None:
    value = meta.get("test_directive")
    return value if value in JOB_DIRECTIVES else None


def _int(raw: dict[bytes, bytes], key: bytes) -> int | None:
    value = raw.get(key)
    return int(value) if value not in (None, b"") else None


def _str(raw: dict[bytes, bytes], key: bytes) -> str | None:
    value = raw.get(key)
    return value.decode() if value else None


def decode_error(raw: bytes | str) -> JobErrorRecord:
    data = orjson.loads(raw)
    code = str(data.get("code") or "")
    details = data.get("details")
    return JobErrorRecord(
        code=code,
        message=str(data.get("message") or ""),
        type=str(data.get("type") or code),
        retryable=bool(data.get("retryable", True)),
        attempt=int(data.get("attempt") or 0),
        occurred_at_ms=int(data.get("occurred_at") or 0),
        details=details if isinstance(details, dict) else None,
        backtrace=data.get("backtrace") if isinstance(data.get("backtrace"), str) else None,
    )


def encode_error_without_attempt(
    *,
    code: str,
    message: str,
    error_type: str,
    retryable: bool,
    occurred_at_ms: int,
    details: dict[str, Any] | None,
    backtrace: str | None,
) -> bytes:
    """Error entry JSON; the nack script prepends the attempt it consumed."""
    entry: dict[str, Any] = {
        "code": code,
        "message": message,
        "type": error_type,
        "retryable": retryable,
        "occurred_at": occurred_at_ms,
    }
    if details:
        entry["details"] = details
    if backtrace:
        entry["backtrace"] = backtrace
    return dumps(entry)


# The same object the validation gives every job without a policy, so the common check is an identity test.
DEFAULT_POLICY = DEFAULT_RETRY_POLICY
_POLICY_FIELDS = (b"r_max", b"r_init", b"r_coef", b"r_maxi", b"r_jit", b"r_nre", b"r_exh", b"r_strat")


def decode_policy(raw: dict[bytes, bytes]) -> RetryPolicy:
    # Most jobs share a handful of policies: decode each stored form once.
    return _policy_from_fields(tuple(raw.get(name) for name in _POLICY_FIELDS))


@functools.lru_cache(maxsize=1024)
def _policy_from_fields(fields: tuple[bytes | None, ...]) -> RetryPolicy:
    """A stored policy; absent fields take the default policy's values (so does the nack script)."""
    max_attempts, initial, coefficient, max_interval, jitter, patterns, exhaustion, strategy = fields
    return RetryPolicy(
        max_attempts=int(max_attempts) if max_attempts else DEFAULT_POLICY.max_attempts,
        initial_interval_ms=int(initial) if initial else DEFAULT_POLICY.initial_interval_ms,
        backoff_coefficient=float(coefficient) if coefficient else DEFAULT_POLICY.backoff_coefficient,
        max_interval_ms=int(max_interval) if max_interval else DEFAULT_POLICY.max_interval_ms,
        jitter=jitter != b"0" if jitter else DEFAULT_POLICY.jitter,
        non_retryable_errors=tuple(p for p in (patterns or b"").decode().split("\n") if p),
        on_exhaustion=OnExhaustion(exhaustion.decode()) if exhaustion else DEFAULT_POLICY.on_exhaustion,
        strategy=BackoffStrategy(strategy.decode()) if strategy else DEFAULT_POLICY.strategy,
    )


def pairs_to_dict(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=True))


_STATES = {state.value.encode(): state for state in JobState}


def decode_job(
    job_id: str, flat_hash: Sequence[bytes], error_history: Sequence[bytes], changes: Sequence[bytes] = ()
) -> StoredJob:
    """A job from its id, its hash as flat pairs, its error history, and fields written after the read.

    The hash's `id` field (written for earlier versions) is not read.
    """
    raw = pairs_to_dict(flat_hash)
    if changes:
        raw.update(pairs_to_dict(changes))
    get = raw.get

    def number(key: bytes) -> int | None:
        value = get(key)
        return int(value) if value else None

    def text(key: bytes) -> str | None:
        value = get(key)
        return value.decode() if value else None

    retry = decode_policy(raw)
    error_raw = get(b"error")
    tags_raw = get(b"tags")
    unique_raw = get(b"unique")
    return StoredJob(
        id=job_id,
        type=raw[b"type"].decode(),
        queue=raw[b"queue"].decode(),
        state=_STATES[raw[b"state"]],
        priority=number(b"priority") or 0,
        attempt=number(b"attempt") or 0,
        max_attempts=retry.max_attempts,
        args_json=get(b"args", b"[]"),
        meta_json=get(b"meta", b"{}"),
        retry=retry,
        created_at_ms=number(b"created_at") or 0,
        enqueued_at_ms=_enqueued_at(raw),
        scheduled_at_ms=number(b"scheduled_at"),
        started_at_ms=number(b"started_at"),
        completed_at_ms=number(b"completed_at"),
        cancelled_at_ms=number(b"cancelled_at"),
        discarded_at_ms=number(b"discarded_at"),
        expires_at_ms=number(b"expires_at"),
        next_attempt_at_ms=number(b"next_attempt_at"),
        lease_expires_at_ms=number(b"lease_expires_at"),
        retry_delay_ms=number(b"retry_delay_ms"),
        timeout_ms=number(b"timeout_ms"),
        visibility_timeout_ms=number(b"visibility_timeout_ms"),
        tags=tuple(orjson.loads(tags_raw)) if tags_raw else (),
        extra_json=get(b"extra"),
        result_json=get(b"result"),
        error=decode_error(error_raw) if error_raw else None,
        errors=tuple(decode_error(e) for e in error_history),
        worker_id=text(b"worker_id"),
        schema=text(b"schema"),
        trace_id=text(b"trace_id"),
        workflow_id=text(b"workflow_id"),
        parent_results_json=get(b"parent_results"),
        unique=orjson.loads(unique_raw) if unique_raw else None,
        lease_token=number(b"lease_token") or 0,
        progress=decode_progress(raw) if b"progress_at" in raw else None,
        checkpoint_json=get(b"checkpoint"),
    )


_NEVER_AVAILABLE = frozenset({b"scheduled", b"pending"})


def _enqueued_at(raw: dict[bytes, bytes]) -> int | None:
    """When the job last became available; None if it never was.

    The insert scripts leave enqueued_at out when it equals created_at, and write '' for a job that
    is not available yet. Hashes written by earlier versions left it out for a job that was never
    available: still scheduled or pending, which a hash written now never is without the field.
    """
    value = raw.get(b"enqueued_at")
    if value is not None:
        return int(value) if value else None
    if raw.get(b"state") in _NEVER_AVAILABLE:
        return None
    created = raw.get(b"created_at")
    return int(created) if created else None


def decode_progress(raw: dict[bytes, bytes]) -> Progress | None:
    """The progress a reader sees, from a job hash that has (at least) these fields: state, attempt, progress*."""
    reported_attempt = raw.get(b"progress_attempt")
    updated_at = raw.get(b"progress_at")
    value = raw.get(b"progress")
    state = raw.get(b"state")
    if state is None:
        return None
    return visible(
        _STATES[state],
        int(raw.get(b"attempt") or 0),
        reported_attempt=int(reported_attempt) if reported_attempt else None,
        value=float(value) if value else None,
        message=raw.get(b"progress_message", b"").decode(),
        data_json=raw.get(b"progress_data") or None,
        updated_at_ms=int(updated_at) if updated_at else None,
    )


def decode_cron(raw: dict[bytes, bytes]) -> CronEntry:
    return CronEntry(
        name=raw[b"name"].decode(),
        expression=raw[b"expression"].decode(),
        timezone=raw.get(b"timezone", b"UTC").decode(),
        overlap_policy=raw.get(b"overlap_policy", b"skip").decode(),
        enabled=raw.get(b"enabled") == b"1",
        template_json=raw.get(b"template", b"{}"),
        description=raw.get(b"description", b"").decode(),
        created_at_ms=_int(raw, b"created_at") or 0,
        updated_at_ms=_int(raw, b"updated_at") or 0,
        next_run_at_ms=_int(raw, b"next_run_at"),
        last_run_at_ms=_int(raw, b"last_run_at"),
        run_count=_int(raw, b"run_count") or 0,
        last_job_id=raw.get(b"last_job_id", b"").decode(),
    )
