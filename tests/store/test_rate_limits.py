"""Queue rate limits and concurrency caps on a real redis-server."""

from __future__ import annotations

import collections

from server.domain.clock import now_ms
from server.service.jobs import JobService
from server.store.facade import Store
from tests.store.helpers import ack, body, fetch, nack


async def test_max_per_second_caps_starts_in_a_sliding_second(store: Store, job_service: JobService) -> None:
    for _ in range(20):
        await job_service.enqueue(body(queue="rl", rate_limit={"max_per_second": 5}))
    t = now_ms()
    assert len(await fetch(store, "rl", count=20, at=t)) == 5
    assert await fetch(store, "rl", count=20, at=t + 500) == []
    assert await fetch(store, "rl", count=20, at=t + 999) == []
    assert len(await fetch(store, "rl", count=20, at=t + 1001)) == 5
    assert await fetch(store, "rl", count=20, at=t + 1500) == []
    assert len(await fetch(store, "rl", count=3, at=t + 2002)) == 3
    assert len(await fetch(store, "rl", count=20, at=t + 2003)) == 2
    stats = await store.queues.queue_stats("rl", now_ms=now_ms())
    assert (stats.available, stats.active) == (5, 15)


async def test_rate_limit_applies_per_queue(store: Store, job_service: JobService) -> None:
    for _ in range(5):
        await job_service.enqueue(body(queue="slow", rate_limit={"max_per_second": 1}))
        await job_service.enqueue(body(queue="fast"))
    t = now_ms()
    delivered = await fetch(store, "slow", "fast", count=10, at=t)
    assert collections.Counter(j.queue for j in delivered) == {"slow": 1, "fast": 5}


async def test_concurrency_caps_active_jobs(store: Store, job_service: JobService) -> None:
    for _ in range(5):
        await job_service.enqueue(body(queue="cc", rate_limit={"concurrency": 2}))
    first = await fetch(store, "cc", count=10)
    assert len(first) == 2
    assert await fetch(store, "cc", count=10) == []
    await ack(store, first[0].id)
    [third] = await fetch(store, "cc", count=10)
    assert await fetch(store, "cc", count=10) == []
    await nack(store, third.id, retryable=False)
    await store.jobs.cancel(first[1].id, reason="", now_ms=now_ms())
    assert len(await fetch(store, "cc", count=10)) == 2
    stats = await store.queues.queue_stats("cc", now_ms=now_ms())
    assert (stats.available, stats.active) == (0, 2)
