"""Waiting workers are woken by jobs enqueued in their own process and in others sharing the Redis.

Each Store stands for one server process (its own origin); both use the same keys.
An enqueue wakes its own process's waiters directly and marks its notification,
which that process then skips; other processes are woken by the notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.service.jobs import JobService
from server.store.facade import Store
from server.store.notifications import JobNotifier
from server.store.scripts import packaged_program

QUEUE = "wakeups"
# Well short of the waiters' periodic re-check (RECHECK_S): a delivery within it was woken.
DELIVERY_S = 5.0


def job(i: int) -> dict[str, object]:
    return {"type": "wakeup.job", "args": [i], "options": {"queue": QUEUE}}


@pytest.fixture
async def processes(store: Store, store_redis: Redis) -> AsyncIterator[list[JobService]]:
    """Two services on the same keys, each with its own store (origin) and notifier."""
    services: list[JobService] = []
    notifiers: list[JobNotifier] = []
    for part in (store, Store(store_redis, store.keys, events_maxlen=1000)):
        notifier = JobNotifier(store_redis, part.keys, origin=part.origin)
        notifier.start()
        notifiers.append(notifier)
        services.append(JobService(part, default_visibility_timeout_ms=30_000, notifier=notifier))
    try:
        yield services
    finally:
        for notifier in notifiers:
            await notifier.stop()


async def test_a_stream_gets_jobs_enqueued_by_its_own_process_and_by_another(processes: list[JobService]) -> None:
    here, there = processes
    stream = here.stream([QUEUE], worker_id="w", max_concurrent=1, visibility_timeout_ms=None)
    try:
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.2)
        stored, _ = await there.enqueue(job(1))
        (delivered,) = await asyncio.wait_for(waiting, DELIVERY_S)
        assert delivered.id == stored.id
        await here.ack(delivered.id, result_json=None, worker_id="w")

        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.2)
        stored, _ = await here.enqueue(job(2))
        (delivered,) = await asyncio.wait_for(waiting, DELIVERY_S)
        assert delivered.id == stored.id
    finally:
        await stream.aclose()


async def test_long_polls_in_both_processes_are_woken_by_a_batch_enqueued_in_one(
    processes: list[JobService],
) -> None:
    here = processes[0]
    polls = [
        asyncio.ensure_future(
            service.fetch([QUEUE], count=1, worker_id=f"w{i}", visibility_timeout_ms=None, wait_ms=30_000)
        )
        for i, service in enumerate(processes)
    ]
    await asyncio.sleep(0.2)
    enqueued = await here.enqueue_batch({"jobs": [job(1), job(2)]})
    fetched = await asyncio.wait_for(asyncio.gather(*polls), DELIVERY_S)
    assert sorted(j.id for jobs in fetched for j in jobs) == sorted(stored.id for stored, _ in enqueued)
    assert all(len(jobs) == 1 for jobs in fetched)


async def test_a_full_stream_notices_jobs_settled_through_another_process(processes: list[JobService]) -> None:
    here, there = processes
    for i in range(4):
        await there.enqueue(job(i))
    stream = here.stream([QUEUE], worker_id="w", max_concurrent=2, visibility_timeout_ms=None)
    try:
        (first,) = await asyncio.wait_for(anext(stream), DELIVERY_S)
        (second,) = await asyncio.wait_for(anext(stream), DELIVERY_S)
        # One settled here, the other through the other process: only a look at Redis shows that.
        await here.ack(first.id, result_json=None, worker_id="w")
        await there.ack(second.id, result_json=None, worker_id="w")
        (third,) = await asyncio.wait_for(anext(stream), DELIVERY_S)
        (fourth,) = await asyncio.wait_for(anext(stream), DELIVERY_S)
        assert len({first.id, second.id, third.id, fourth.id}) == 4
    finally:
        await stream.aclose()


async def test_a_local_waiter_gets_the_job_when_the_enqueue_had_to_be_sent_again(
    processes: list[JobService], store_redis: Redis
) -> None:
    here = processes[0]
    poll = asyncio.ensure_future(
        here.fetch([QUEUE], count=1, worker_id="w", visibility_timeout_ms=None, wait_ms=30_000)
    )
    await asyncio.sleep(0.2)
    # The fetch script is cached, the enqueue script is not: the poll's fetch, written right behind the
    # enqueue, runs before the enqueue is sent again as EVAL.
    await store_redis.script_flush()
    await store_redis.script_load(packaged_program("fetch"))
    stored, _ = await here.enqueue(job(1))
    (fetched,) = await asyncio.wait_for(poll, DELIVERY_S)
    assert fetched.id == stored.id
