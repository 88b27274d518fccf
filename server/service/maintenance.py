"""Housekeeping steps run by the background loops."""

from __future__ import annotations

import dataclasses
import logging

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.store.facade import Store

log = logging.getLogger(__name__)

# Entries handled per script call, so no call blocks Redis for long.
REAP_BATCH = 500
PROMOTE_BATCH = 500
PRUNE_BATCH = 500
# Queues per promote call.
PROMOTE_QUEUES_PER_CALL = 64
# Script calls per step at most, so one step cannot run away under a flood;
# the next tick picks up whatever is left.
MAX_CALLS_PER_STEP = 40


@dataclasses.dataclass(frozen=True)
class ReapTotals:
    calls: int = 0
    examined: int = 0
    timed_out: int = 0
    requeued: int = 0

    @property
    def changed(self) -> int:
        return self.timed_out + self.requeued


class MaintenanceService:
    def __init__(self, store: Store, *, worker_retention_ms: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._store = store
        self._worker_retention_ms = worker_retention_ms

    async def reap_expired(self) -> ReapTotals:
        """Requeue jobs whose lease expired and fail jobs past their execution timeout."""
        totals = ReapTotals()
        for _ in range(MAX_CALLS_PER_STEP):
            outcome = await self._store.leases.reap(now_ms=self._clock.now_ms(), batch=REAP_BATCH)
            totals = ReapTotals(
                calls=totals.calls + 1,
                examined=totals.examined + outcome.examined,
                timed_out=totals.timed_out + outcome.timed_out,
                requeued=totals.requeued + outcome.requeued,
            )
            if outcome.examined < REAP_BATCH:
                break
        if totals.timed_out or totals.requeued:
            log.info("reaper: %d timed out, %d leases expired", totals.timed_out, totals.requeued)
        return totals

    async def promote_due(self) -> int:
        """Make due scheduled and retrying jobs available in every queue."""
        queues = await self._store.queues.queue_names()
        moved = 0
        for start in range(0, len(queues), PROMOTE_QUEUES_PER_CALL):
            chunk = queues[start : start + PROMOTE_QUEUES_PER_CALL]
            for _ in range(MAX_CALLS_PER_STEP):
                handled = await self._store.leases.promote(chunk, now_ms=self._clock.now_ms(), batch=PROMOTE_BATCH)
                moved += handled
                if handled < PROMOTE_BATCH:
                    break
        return moved

    async def expire_due(self) -> int:
        """Discard jobs whose expires_at passed before they started."""
        expired = 0
        for _ in range(MAX_CALLS_PER_STEP):
            examined, count = await self._store.leases.expire(now_ms=self._clock.now_ms(), batch=PROMOTE_BATCH)
            expired += count
            if examined < PROMOTE_BATCH:
                break
        return expired

    async def promote_and_expire(self) -> int:
        """Jobs made available or expired."""
        return await self.promote_due() + await self.expire_due()

    async def prune(self) -> int:
        """Dead letter retention (age and count) and the worker registry."""
        removed = 0
        for _ in range(MAX_CALLS_PER_STEP):
            count = await self._store.dead_letter.prune_dead(now_ms=self._clock.now_ms(), batch=PRUNE_BATCH)
            removed += count
            if count < PRUNE_BATCH:
                break
        cutoff = self._clock.now_ms() - self._worker_retention_ms
        while await self._store.workers.prune_workers(cutoff_ms=cutoff, batch=PRUNE_BATCH) == PRUNE_BATCH:
            pass
        if removed:
            log.info("dead letter retention removed %d jobs", removed)
        return removed
