"""Heartbeats, the worker registry and operator directives (ojs-worker-protocol.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import ErrorCode, OJSError, conflict, invalid, not_found
from server.domain.ids import is_uuid7
from server.domain.limits import MAX_DURATION_MS, check_name_bytes
from server.model.records import HeartbeatOutcome, WorkerRow
from server.service.paging import Page, check_limit, page_by_name
from server.store.facade import Store

WORKER_STATES = ("running", "quiet", "terminate")
MAX_JOBS_PER_HEARTBEAT = 10_000
DEFAULT_LIMIT = 100


@dataclasses.dataclass(frozen=True)
class HeartbeatRequest:
    """A heartbeat as a client sends it (worker protocol and the gRPC binding)."""

    # The binding's `id`: a worker id, or the id of the one job a per-job heartbeat is for.
    id: str
    worker_id: str
    active_job_ids: tuple[str, ...]
    extend_ms: int | None
    # running | quiet | terminate, or "" when not reported.
    reported_state: str
    lease_token: int | None


class WorkerService:
    def __init__(self, store: Store, *, default_visibility_timeout_ms: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._store = store
        self._default_lease_ms = default_visibility_timeout_ms

    async def handle(self, request: HeartbeatRequest) -> HeartbeatOutcome:
        """A heartbeat whose `id` is told apart: a job id (UUIDv7) without a job list asks to
        extend that job; anything else names the worker. A UUIDv7 that is no job is a worker id."""
        worker_id = request.worker_id or ("" if is_uuid7(request.id) else request.id)
        if not request.active_job_ids and request.id and request.id != worker_id and is_uuid7(request.id):
            try:
                return await self.heartbeat_job(
                    request.id, worker_id=worker_id, extend_ms=request.extend_ms, lease_token=request.lease_token
                )
            except OJSError as exc:
                if exc.code is not ErrorCode.NOT_FOUND or request.worker_id:
                    raise
                worker_id = request.id
        return await self.heartbeat(
            worker_id=worker_id,
            job_ids=request.active_job_ids,
            extend_ms=request.extend_ms,
            reported_state=request.reported_state,
            lease_token=request.lease_token,
        )

    async def heartbeat(
        self,
        *,
        worker_id: str,
        job_ids: Sequence[str],
        extend_ms: int | None,
        reported_state: str,
        lease_token: int | None,
    ) -> HeartbeatOutcome:
        if extend_ms is not None and not 0 < extend_ms <= MAX_DURATION_MS:
            raise invalid(
                f"the lease extension must be between 1 and {MAX_DURATION_MS} ms", field="visibility_timeout_ms"
            )
        check_name_bytes(worker_id, field="worker_id")
        if len(job_ids) > MAX_JOBS_PER_HEARTBEAT:
            raise invalid(f"at most {MAX_JOBS_PER_HEARTBEAT} jobs per heartbeat", field="active_job_ids")
        if reported_state and reported_state not in WORKER_STATES:
            raise invalid(f"state must be one of {', '.join(WORKER_STATES)}", field="state")
        for job_id in job_ids:
            if not is_uuid7(job_id):
                raise invalid(f"'{job_id}' is not a job id", field="active_job_ids")
        return await self._store.leases.heartbeat(
            worker_id=worker_id,
            job_ids=list(dict.fromkeys(job_ids)),
            lease_ms=extend_ms,
            default_lease_ms=self._default_lease_ms,
            reported_state=reported_state,
            lease_token=lease_token,
            now_ms=self._clock.now_ms(),
        )

    async def heartbeat_job(
        self, job_id: str, *, worker_id: str, extend_ms: int | None, lease_token: int | None
    ) -> HeartbeatOutcome:
        """A per-job heartbeat: the caller must hold the job, else a conflict."""
        outcome = await self.heartbeat(
            worker_id=worker_id, job_ids=[job_id], extend_ms=extend_ms, reported_state="", lease_token=lease_token
        )
        if job_id in outcome.extended:
            return outcome
        job = await self._store.jobs.get(job_id)
        if job is None:
            raise not_found("job", job_id)
        raise conflict(
            f"cannot extend job '{job_id}': the caller does not hold its lease",
            job_id=job_id,
            current_state=job.state.value,
        )

    async def set_directive(self, worker_id: str, directive: str) -> WorkerRow:
        if not worker_id:
            raise invalid("worker_id is required", field="worker_id")
        check_name_bytes(worker_id, field="worker_id")
        if directive not in WORKER_STATES:
            raise invalid(f"directive must be one of {', '.join(WORKER_STATES)}", field="directive")
        return await self._store.workers.set_worker_directive(worker_id, directive, now_ms=self._clock.now_ms())

    async def page(self, *, limit: int = 0, cursor: str = "") -> Page[WorkerRow]:
        """Known workers by id; the cursor is the last worker id of the previous page."""
        limit = check_limit(limit, default=DEFAULT_LIMIT)
        rows = await self._store.workers.list_workers()
        return page_by_name(rows, name_of=lambda row: row.worker_id, limit=limit, cursor=cursor)
