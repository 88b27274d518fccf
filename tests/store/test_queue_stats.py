"""Queue statistics on a real redis-server: every transition moves the counters."""

from __future__ import annotations

import collections
from typing import Any

from server.domain.clock import now_ms
from server.domain.states import JobState
from server.model.records import QueueStatsRow
from server.service.jobs import JobService
from server.service.queues import QueueService
from server.service.workflows import WorkflowService
from server.store.facade import Store
from tests.store.helpers import DEAD_LETTER, ack, body, fetch, nack, stored

STATS_QUEUE = "stats"


class StatsLedger:
    """The jobs of one queue and the transitions the totals must have counted."""

    def __init__(self, store: Store, job_service: JobService) -> None:
        self.store = store
        self.service = job_service
        self.ids: list[str] = []
        self.totals = {"completed": 0, "discarded": 0, "cancelled": 0}

    async def enqueue(self, priority: int = 0, **options: Any) -> str:
        job, _ = await self.service.enqueue(body(queue=STATS_QUEUE, job_type="stats.job", priority=priority, **options))
        self.ids.append(job.id)
        return job.id

    async def check(self, step: str) -> QueueStatsRow:
        stats = await self.store.queues.queue_stats(STATS_QUEUE, now_ms=now_ms())
        jobs = await self.store.jobs.get_many(self.ids)
        assert len(jobs) == len(self.ids)
        states = collections.Counter(job.state.value for job in jobs)
        dead = len(await self.store.dead_letter.dead_letter_ids())
        expected = {
            "available": states["available"],
            "active": states["active"],
            "scheduled": states["scheduled"],
            "retryable": states["retryable"],
            "pending": states["pending"],
            "dead": dead,
            **self.totals,
        }
        actual = {name: getattr(stats, name) for name in expected}
        assert actual == expected, f"after {step}"
        assert stats.known is True
        return stats


async def test_queue_stats_follow_every_transition(store: Store, job_service: JobService) -> None:
    ledger = StatsLedger(store, job_service)
    totals = ledger.totals
    t0 = now_ms()
    fillers = [await ledger.enqueue() for _ in range(6)]
    scheduled = await ledger.enqueue(scheduled_at="+PT1H")
    pending = [await ledger.enqueue(pending=True) for _ in range(2)]
    await ledger.check("enqueue")

    started = await fetch(store, STATS_QUEUE, count=3, at=t0 + 100)
    assert [j.id for j in started] == fillers[:3]
    await ledger.check("fetch")

    await ack(store, fillers[0], at=t0 + 140)
    totals["completed"] += 1
    await ledger.check("ack")

    assert (await nack(store, fillers[1])).state is JobState.RETRYABLE
    await ledger.check("nack -> retryable")

    assert (await nack(store, fillers[2], retryable=False)).state is JobState.DISCARDED
    totals["discarded"] += 1
    await ledger.check("nack -> discarded")

    dead = [await ledger.enqueue(priority=50, retry=DEAD_LETTER) for _ in range(2)]
    assert [j.id for j in await fetch(store, STATS_QUEUE, count=2)] == dead
    for job_id in dead:
        assert (await nack(store, job_id)).state is JobState.DISCARDED
    totals["discarded"] += 2
    await ledger.check("dead letter")

    retrying = await ledger.enqueue(priority=60)
    assert [j.id for j in await fetch(store, STATS_QUEUE)] == [retrying]
    await nack(store, retrying)
    [active] = await fetch(store, STATS_QUEUE)
    assert active.id == fillers[3]
    for job_id in (fillers[3], fillers[4], scheduled, pending[0], retrying):
        await store.jobs.cancel(job_id, reason="stats", now_ms=now_ms())
    totals["cancelled"] += 5
    await ledger.check("cancel from active, available, scheduled, pending and retryable")

    expiring = [
        await ledger.enqueue(expires_at="+PT0.05S"),
        await ledger.enqueue(scheduled_at="+PT1H", expires_at="+PT0.1S"),
        await ledger.enqueue(pending=True, expires_at="+PT0.1S"),
    ]
    await ledger.check("enqueue expiring")
    assert await store.leases.expire(now_ms=now_ms() + 60_000, batch=100) == (3, 3)
    assert {(await stored(store, i)).state for i in expiring} == {JobState.DISCARDED}
    totals["discarded"] += 3
    await ledger.check("expire")

    requeued = await ledger.enqueue(priority=70)
    assert [j.id for j in await fetch(store, STATS_QUEUE)] == [requeued]
    await ledger.check("fetch to requeue")
    assert (await nack(store, requeued, requeue=True)).state is JobState.AVAILABLE
    await ledger.check("requeue")

    [leased] = await fetch(store, STATS_QUEUE, lease_ms=1)
    assert leased.id == requeued
    reaped = await store.leases.reap(now_ms=now_ms() + 5_000, batch=100)
    assert reaped.requeued == 1
    await ledger.check("lease expiry")

    await store.dead_letter.retry_dead(dead[0], now_ms=now_ms())
    await ledger.check("dead letter retry")
    assert await store.dead_letter.delete_dead(dead[1]) is True
    ledger.ids.remove(dead[1])
    await ledger.check("dead letter delete")

    await store.jobs.activate(pending[1], now_ms=now_ms())
    await ledger.check("activate")

    assert await store.leases.promote([STATS_QUEUE], now_ms=now_ms() + 600_000, batch=100) >= 1
    assert (await stored(store, fillers[1])).state is JobState.AVAILABLE
    await ledger.check("promote retryable")

    workflows = WorkflowService(store)
    step_options: dict[str, Any] = {"queue": STATS_QUEUE, "priority": 90}
    step: dict[str, Any] = {"type": "stats.step", "args": [], "options": step_options}
    chain = await workflows.create({"type": "chain", "name": "ok", "steps": [step, step]})
    ledger.ids.extend(s.job_id for s in chain.steps)
    await ledger.check("workflow created")
    [first_step] = await fetch(store, STATS_QUEUE)
    assert first_step.id == chain.steps[0].job_id
    await ack(store, first_step.id)
    totals["completed"] += 1
    assert (await stored(store, chain.steps[1].job_id)).state is JobState.AVAILABLE
    await ledger.check("workflow step released")

    failing = {**step, "options": {**step_options, "priority": 95, "retry": {"max_attempts": 1}}}
    doomed = await workflows.create({"type": "chain", "name": "bad", "steps": [failing, step]})
    ledger.ids.extend(s.job_id for s in doomed.steps)
    [doomed_first] = await fetch(store, STATS_QUEUE)
    assert doomed_first.id == doomed.steps[0].job_id
    await nack(store, doomed_first.id)
    totals["discarded"] += 1
    totals["cancelled"] += 1
    assert (await stored(store, doomed.steps[1].job_id)).state is JobState.CANCELLED
    await ledger.check("workflow failure cascade")

    replace = {"on_conflict": "replace"}
    await ledger.enqueue(scheduled_at="+PT1H", unique=replace)
    await ledger.enqueue(scheduled_at="+PT2H", unique=replace)
    totals["cancelled"] += 1
    stats = await ledger.check("unique replace")
    assert stats.scheduled == 1

    stats = await store.queues.queue_stats(STATS_QUEUE, now_ms=now_ms() + 1_000)
    assert stats.completed_last_hour == 2
    # Failed attempts: two nacks to retryable, one non-retryable, two dead letters, one workflow step.
    assert stats.failed_last_hour == 6
    assert stats.avg_duration_ms > 0
    assert stats.avg_wait_ms > 0
    assert stats.throughput_per_second >= 0
    assert stats.paused is False


async def test_stats_of_a_fresh_queue(store: Store, job_service: JobService, queue_service: QueueService) -> None:
    t0 = now_ms()
    ids = [(await job_service.enqueue(body(queue="fresh")))[0].id for _ in range(3)]
    stats = await queue_service.stats("fresh")
    assert (stats.available, stats.active, stats.completed) == (3, 0, 0)
    assert (stats.completed_last_hour, stats.avg_duration_ms, stats.avg_wait_ms) == (0, 0.0, 0.0)
    [job] = await fetch(store, "fresh", at=t0 + 200)
    assert job.id == ids[0]
    assert job.enqueued_at_ms is not None
    stats = await store.queues.queue_stats("fresh", now_ms=t0 + 1_000)
    assert (stats.available, stats.active, stats.completed) == (2, 1, 0)
    assert stats.avg_wait_ms == t0 + 200 - job.enqueued_at_ms
    assert stats.avg_wait_ms > 0
    await ack(store, job.id, at=t0 + 500)
    stats = await store.queues.queue_stats("fresh", now_ms=t0 + 1_000)
    assert (stats.available, stats.active, stats.completed) == (2, 0, 1)
    assert stats.completed_last_hour == 1
    assert stats.avg_duration_ms == 300
    assert stats.failed_last_hour == 0
