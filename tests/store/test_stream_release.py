"""A job stream that closes gives back the jobs it claimed but never delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.service.jobs import JobService
from server.store.facade import Store
from server.store.notifications import JobNotifier

QUEUE = "release"


@pytest.fixture
async def service(store: Store, store_redis: Redis) -> AsyncIterator[JobService]:
    notifier = JobNotifier(store_redis, store.keys)
    notifier.start()
    try:
        yield JobService(store, default_visibility_timeout_ms=30_000, notifier=notifier)
    finally:
        await notifier.stop()


async def test_closing_mid_batch_requeues_the_undelivered_jobs(store: Store, service: JobService) -> None:
    ids = []
    for i in range(5):
        job = parse_enqueue({"type": "release.job", "args": [i], "options": {"queue": QUEUE}}, now_ms=now_ms())
        await store.jobs.enqueue(job)
        ids.append(job.id)
    stream = service.stream([QUEUE], worker_id="w", max_concurrent=5, visibility_timeout_ms=None)
    (first,) = await anext(stream)
    await stream.aclose()
    # The release runs in the background: wait (generously) for it.
    for _ in range(200):
        states = {job_id: await store.jobs.get(job_id) for job_id in ids}
        if sum(job.state is JobState.AVAILABLE for job in states.values() if job) == 4:
            break
        await asyncio.sleep(0.05)
    delivered = await store.jobs.get(first.id)
    assert delivered is not None and delivered.state is JobState.ACTIVE and delivered.attempt == 1
    others = [states[job_id] for job_id in ids if job_id != first.id]
    assert all(job is not None and job.state is JobState.AVAILABLE for job in others)
    # Their claim was not an attempt: the next delivery is attempt 1.
    refetched = await service.fetch([QUEUE], count=5, worker_id="w2", visibility_timeout_ms=None)
    assert sorted(job.id for job in refetched) == sorted(job_id for job_id in ids if job_id != first.id)
    assert all(job.attempt == 1 for job in refetched)
