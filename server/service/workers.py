"""Heartbeats, the worker registry and operator directives (ojs-worker-protocol.md)."""

from __future__ import annotations

from collections.abc import Sequence

from server.domain.clock import now_ms
from server.domain.errors import conflict, invalid, not_found
from server.domain.ids import is_uuid7
from server.model.records import HeartbeatOutcome, WorkerRow
from server.store.facade import Store

WORKER_STATES = ("running", "quiet", "terminate")
MAX_JOBS_PER_HEARTBEAT = 10_000


class WorkerService:
    def __init__(self, store: Store, *, default_visibility_timeout_ms: int) -> None:
        self._store = store
        self._default_lease_ms = default_visibility_timeout_ms

    async def heartbeat(
        self,
        *,
        worker_id: str,
        job_ids: Sequence[str],
        extend_ms: int | None,
        reported_state: str,
        lease_token: int | None,
    ) -> HeartbeatOutcome:
        if extend_ms is not None and extend_ms <= 0:
            raise invalid("the lease extension must be positive", field="visibility_timeout_ms")
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
            now_ms=now_ms(),
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
        if directive not in WORKER_STATES:
            raise invalid(f"directive must be one of {', '.join(WORKER_STATES)}", field="directive")
        return await self._store.workers.set_worker_directive(worker_id, directive, now_ms=now_ms())

    async def registry(self) -> list[WorkerRow]:
        return await self._store.workers.list_workers()
