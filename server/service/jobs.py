"""Job operations: validate, decide, then one store call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from server.domain.clock import now_ms
from server.domain.errors import invalid, not_found
from server.domain.ids import is_uuid7
from server.domain.job import StoredJob
from server.domain.states import JobState
from server.domain.validation import QUEUE_PATTERN, parse_enqueue, validate_name
from server.store.job_store import EnqueueOutcome, FailureReport, JobStore, QueueRow

MAX_FETCH_COUNT = 1000


def _job_id(job_id: str) -> str:
    if not job_id:
        raise invalid("job_id is required", field="job_id")
    return job_id


class JobService:
    def __init__(self, store: JobStore, *, default_visibility_timeout_ms: int, default_timeout_ms: int = 0) -> None:
        self._store = store
        self._default_lease_ms = default_visibility_timeout_ms
        self._default_timeout_ms = default_timeout_ms

    async def enqueue(self, envelope: Mapping[str, Any]) -> StoredJob:
        """Store a job given in the OJS JSON form (already decoded)."""
        job = parse_enqueue(envelope, now_ms=now_ms())
        outcome: EnqueueOutcome = await self._store.enqueue(job)
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
            scheduled_at_ms=job.scheduled_at_ms,
            expires_at_ms=job.expires_at_ms,
            timeout_ms=job.timeout_ms,
            visibility_timeout_ms=job.visibility_timeout_ms,
            tags=job.tags,
            extra_json=orjson.dumps(job.extra) if job.extra else None,
            schema=job.schema,
            trace_id=job.trace_id,
            unique=job.unique,
        )

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
