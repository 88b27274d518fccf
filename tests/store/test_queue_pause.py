"""Pausing and resuming queues on a real redis-server."""

from __future__ import annotations

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode
from server.domain.states import JobState
from server.service.jobs import JobService
from server.service.queues import QueueService
from server.store.facade import Store
from tests.store.helpers import QUEUE, ack, body, event_types, expect_error, fetch


async def test_paused_queue_accepts_jobs_but_delivers_none(
    store: Store, job_service: JobService, queue_service: QueueService
) -> None:
    await job_service.enqueue(body(queue="paused-q"))
    row = await queue_service.set_paused("paused-q", paused=True)
    assert row.paused is True
    assert row.available == 1
    late, _ = await job_service.enqueue(body(queue="paused-q"))
    assert late.state is JobState.AVAILABLE
    other, _ = await job_service.enqueue(body(queue="open-q"))
    assert await fetch(store, "paused-q", count=10) == []
    delivered = await fetch(store, "paused-q", "open-q", count=10)
    assert [j.id for j in delivered] == [other.id]
    stats = await store.queues.queue_stats("paused-q", now_ms=now_ms())
    assert (stats.available, stats.active, stats.paused) == (2, 0, True)

    resumed = await queue_service.set_paused("paused-q", paused=False)
    assert resumed.paused is False
    assert resumed.paused_at_ms is None
    assert len(await fetch(store, "paused-q", count=10)) == 2
    assert (await store.queues.queue_stats("paused-q", now_ms=now_ms())).paused is False


async def test_pause_does_not_touch_active_jobs(
    store: Store, job_service: JobService, queue_service: QueueService
) -> None:
    job, _ = await job_service.enqueue(body())
    await fetch(store)
    await queue_service.set_paused(QUEUE, paused=True)
    assert (await ack(store, job.id)).state is JobState.COMPLETED


async def test_list_queues_shows_pause_and_the_first_pause_time(
    store: Store, job_service: JobService, queue_service: QueueService
) -> None:
    await job_service.enqueue(body(queue="qa"))
    await job_service.enqueue(body(queue="qb"))
    first = await store.queues.set_paused("qa", paused=True, now_ms=1_700_000_000_000)
    assert first.paused_at_ms == 1_700_000_000_000
    again = await store.queues.set_paused("qa", paused=True, now_ms=1_700_000_999_000)
    assert again.paused is True
    assert again.paused_at_ms == 1_700_000_000_000
    rows = {row.name: row for row in (await queue_service.page()).items}
    assert rows["qa"].paused is True
    assert rows["qa"].paused_at_ms == 1_700_000_000_000
    assert rows["qa"].available == 1
    assert rows["qb"].paused is False
    assert rows["qb"].paused_at_ms is None
    assert (await event_types(store, queue="qa")).count("queue.paused") == 1

    await store.queues.set_paused("qa", paused=False, now_ms=1_700_001_000_000)
    await store.queues.set_paused("qa", paused=False, now_ms=1_700_001_001_000)
    rows = {row.name: row for row in (await queue_service.page()).items}
    assert (rows["qa"].paused, rows["qa"].paused_at_ms) == (False, None)
    assert (await event_types(store, queue="qa")).count("queue.resumed") == 1
    paused_again = await store.queues.set_paused("qa", paused=True, now_ms=1_700_002_000_000)
    assert paused_again.paused_at_ms == 1_700_002_000_000


async def test_pausing_an_unknown_queue_registers_it(store: Store, queue_service: QueueService) -> None:
    row = await queue_service.set_paused("fresh-q", paused=True)
    assert row.paused is True
    assert row.available == 0
    assert "fresh-q" in [r.name for r in await store.queues.list_queues()]
    stats = await queue_service.stats("fresh-q")
    assert stats.paused is True


async def test_queue_service_validates_names(queue_service: QueueService) -> None:
    await expect_error(ErrorCode.INVALID_REQUEST, queue_service.set_paused("Bad Queue", paused=True))
    await expect_error(ErrorCode.INVALID_REQUEST, queue_service.stats(""))
    await expect_error(ErrorCode.NOT_FOUND, queue_service.stats("never-seen"))
