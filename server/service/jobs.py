"""Job operations: validate, decide, then one store call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError, invalid, not_found
from server.domain.ids import is_uuid7
from server.domain.job import NewJob, StoredJob
from server.domain.states import JobState
from server.domain.validation import QUEUE_PATTERN, parse_enqueue, validate_name
from server.store.job_store import EnqueueOutcome, FailureReport, JobStore, QueueRow

MAX_FETCH_COUNT = 1000


def _job_id(job_id: str) -> str:
    if not job_id:
        raise invalid("job_id is required", field="job_id")
    return job_id


class JobService:
    def __init__(
        self,
        store: JobStore,
        *,
        default_visibility_timeout_ms: int,
        default_timeout_ms: int = 0,
        max_batch: int = 10_000,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._default_lease_ms = default_visibility_timeout_ms
        self._default_timeout_ms = default_timeout_ms

    async def enqueue(self, envelope: Mapping[str, Any]) -> tuple[StoredJob, bool]:
        """Store a job given in the OJS JSON form (already decoded).

        Returns the job and whether it is an existing one kept by a unique policy
        (on_conflict "ignore") instead of the new one.
        """
        job = parse_enqueue(envelope, now_ms=now_ms())
        outcome = await self._store.enqueue(job)
        if outcome.existing is not None:
            return outcome.existing, True
        return _stored(job, outcome), False

    async def enqueue_batch(self, body: Any) -> list[tuple[StoredJob, bool]]:
        """All or nothing: every job is validated first, then all are stored in one script."""
        if not isinstance(body, Mapping):
            raise OJSError(ErrorCode.INVALID_PAYLOAD, "request body must be a JSON object")
        entries = body.get("jobs")
        if not isinstance(entries, list) or not entries:
            raise invalid("jobs must be a non-empty list", field="jobs")
        if len(entries) > self._max_batch:
            raise OJSError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"a batch holds at most {self._max_batch} jobs, got {len(entries)}",
                details={"max_jobs": self._max_batch, "jobs": len(entries)},
            )
        defaults = body.get("default_options") or {}
        if not isinstance(defaults, Mapping):
            raise invalid("default_options must be a JSON object", field="default_options")
        now = now_ms()
        jobs: list[NewJob] = []
        errors: list[dict[str, Any]] = []
        seen_ids: set[str] = set()
        held_fingerprints: set[str] = set()
        for index, entry in enumerate(entries):
            try:
                if isinstance(entry, Mapping) and defaults:
                    entry = _with_defaults(entry, defaults)
                job = parse_enqueue(entry, now_ms=now)
                if job.id in seen_ids:
                    raise invalid(f"id '{job.id}' appears twice in the batch", field="id")
                # A rejecting job meeting an earlier job of the batch with its fingerprint
                # could only be stored by breaking the all-or-nothing promise.
                if job.unique_fingerprint and job.unique_policy:
                    if job.unique_policy.on_conflict == "reject" and job.unique_fingerprint in held_fingerprints:
                        raise OJSError(ErrorCode.DUPLICATE, "an earlier job of the batch has the same unique key")
                    held_fingerprints.add(job.unique_fingerprint)
            except OJSError as exc:
                error: dict[str, Any] = {"index": index, "code": exc.code.value, "message": exc.message}
                if "field" in exc.details:
                    error["field"] = exc.details["field"]
                errors.append(error)
                continue
            seen_ids.add(job.id)
            jobs.append(job)
        if errors:
            first = errors[0]
            raise OJSError(
                ErrorCode.INVALID_REQUEST,
                f"{len(errors)} of {len(entries)} jobs are invalid; nothing was enqueued. "
                f"jobs[{first['index']}]: {first['message']}",
                details={"errors": errors, "index": first["index"]},
                error_type="validation_error",
            )
        outcomes = await self._store.enqueue_batch(jobs, now_ms=now)
        return [
            (outcome.existing, True) if outcome.existing is not None else (_stored(job, outcome), False)
            for job, outcome in zip(jobs, outcomes, strict=True)
        ]

    async def get(self, job_id: str) -> StoredJob:
        job = await self._store.get(_job_id(job_id)) if is_uuid7(job_id) else None
        if job is None:
            raise not_found("job", job_id)
        return job

    async def cancel(self, job_id: str, *, reason: str = "") -> tuple[JobState, StoredJob]:
        return await self._store.cancel(_job_id(job_id), reason=reason, now_ms=now_ms())

    async def activate(self, job_id: str) -> StoredJob:
        return await self._store.activate(_job_id(job_id), now_ms=now_ms())

    async def fetch(
        self, queues: Sequence[str], *, count: int, worker_id: str, visibility_timeout_ms: int | None
    ) -> list[StoredJob]:
        if not queues:
            raise invalid("queues must name at least one queue", field="queues")
        for index, queue in enumerate(queues):
            validate_name(queue, field=f"queues[{index}]", pattern=QUEUE_PATTERN)
        if count == 0:
            count = 1
        if not 1 <= count <= MAX_FETCH_COUNT:
            raise invalid(f"count must be between 1 and {MAX_FETCH_COUNT}", field="count")
        if visibility_timeout_ms is not None and visibility_timeout_ms <= 0:
            raise invalid("visibility_timeout_ms must be positive", field="visibility_timeout_ms")
        # A queue named twice would be scanned twice for nothing.
        ordered = list(dict.fromkeys(queues))
        return await self._store.fetch(
            ordered,
            count=count,
            worker_id=worker_id,
            lease_ms=visibility_timeout_ms,
            default_lease_ms=self._default_lease_ms,
            now_ms=now_ms(),
            default_timeout_ms=self._default_timeout_ms,
        )

    async def ack(
        self, job_id: str, *, result_json: bytes | None, worker_id: str, lease_token: int | None = None
    ) -> StoredJob:
        return await self._store.ack(
            _job_id(job_id), result_json=result_json, worker_id=worker_id, now_ms=now_ms(), lease_token=lease_token
        )

    async def nack(
        self,
        job_id: str,
        *,
        code: str,
        message: str,
        error_type: str,
        details: dict[str, Any] | None,
        backtrace: str | None,
        retryable: bool | None,
        requeue: bool,
        worker_id: str,
        lease_token: int | None = None,
    ) -> StoredJob:
        code = code or "handler_error"
        # The type matched against non_retryable_errors (SPEC-GUIDE §0.13).
        if not error_type:
            error_class = (details or {}).get("error_class")
            error_type = error_class if isinstance(error_class, str) and error_class else code
        failure = FailureReport(
            code=code,
            message=message,
            error_type=error_type,
            details=details,
            backtrace=backtrace,
            retryable=retryable,
            requeue=requeue,
        )
        return await self._store.nack(
            _job_id(job_id), failure, worker_id=worker_id, now_ms=now_ms(), lease_token=lease_token
        )

    async def list_queues(self) -> list[QueueRow]:
        return await self._store.list_queues()


def _with_defaults(entry: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The job with the batch's default options where it sets none itself (in options or at top level)."""
    options = dict(entry.get("options") or {})
    for name, value in defaults.items():
        if name not in options and entry.get(name) is None:
            options[name] = value
    return {**entry, "options": options}


def _stored(job: NewJob, outcome: EnqueueOutcome) -> StoredJob:
    """The stored form of a job just inserted, without reading it back."""
    return StoredJob(
        id=job.id,
        type=job.type,
        queue=job.queue,
        state=outcome.state,
        priority=job.priority,
        attempt=0,
        max_attempts=job.retry.max_attempts,
        args_json=orjson.dumps(job.args),
        meta_json=orjson.dumps(job.meta),
        retry=job.retry,
        created_at_ms=job.created_at_ms,
        enqueued_at_ms=outcome.enqueued_at_ms,
        scheduled_at_ms=outcome.scheduled_at_ms or job.scheduled_at_ms,
        expires_at_ms=job.expires_at_ms,
        timeout_ms=job.timeout_ms,
        visibility_timeout_ms=job.visibility_timeout_ms,
        tags=job.tags,
        extra_json=orjson.dumps(job.extra) if job.extra else None,
        schema=job.schema,
        trace_id=job.trace_id,
        unique=job.unique,
    )
