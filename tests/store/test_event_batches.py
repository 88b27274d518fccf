"""The events of one script call are one log entry; readers see the same events, one by one, as before."""

from __future__ import annotations

from typing import Any, cast

import orjson
from redis.asyncio import Redis

from server.domain.ids import new_uuid7
from server.model.records import Settlement
from server.service.events import EventFilter, EventService
from server.service.jobs import JobService
from server.store.facade import Store

QUEUE = "evb"


def entries(count: int) -> list[dict[str, Any]]:
    return [{"id": new_uuid7(), "type": "evb.job", "args": [i], "options": {"queue": QUEUE}} for i in range(count)]


async def test_a_batch_is_one_entry_read_back_as_one_event_per_job(store: Store, store_redis: Redis) -> None:
    service = JobService(store, default_visibility_timeout_ms=30_000)
    batch = entries(5)
    await service.enqueue_batch({"jobs": batch})
    assert await store_redis.xlen(store.keys.events) == 1
    events = await store.events.read_events(after=None, count=100)
    assert [e.job_id for e in events] == [e["id"] for e in batch]
    assert {e.type for e in events} == {"job.enqueued"}
    assert all(e.queue == QUEUE and e.job_type == "evb.job" and e.state == "available" for e in events)
    [entry_id] = {e.cursor.partition(".")[0] for e in events}
    assert [e.cursor for e in events] == [f"{entry_id}.{i}" for i in range(5)]
    assert orjson.loads(events[0].data_json) == {"priority": 0, "job_type": "evb.job", "queue": QUEUE}


async def test_a_single_event_keeps_its_entry_form(store: Store, store_redis: Redis) -> None:
    service = JobService(store, default_visibility_timeout_ms=30_000)
    await service.enqueue({"type": "evb.one", "args": [], "options": {"queue": QUEUE}})
    [(entry_id, fields)] = cast(list[tuple[bytes, dict[bytes, bytes]]], await store_redis.xrange(store.keys.events))
    assert set(fields) == {b"type", b"job_id", b"queue", b"job_type", b"state", b"time", b"data"}
    [event] = await store.events.read_events(after=None, count=10)
    assert event.cursor == entry_id.decode()
    assert orjson.loads(event.data_json) == {"priority": 0, "job_type": "evb.one", "queue": QUEUE}


async def test_priority_0_is_not_stored_in_enqueued_events_yet_read_back(store: Store, store_redis: Redis) -> None:
    service = JobService(store, default_visibility_timeout_ms=30_000)
    batch = entries(2)
    batch[1]["options"]["priority"] = 5
    await service.enqueue_batch({"jobs": batch})
    await service.enqueue({"type": "evb.one", "args": [], "options": {"queue": QUEUE}})
    raw = await store_redis.xrange(store.keys.events)
    [(_, batched), (_, single)] = cast(list[tuple[bytes, dict[bytes, bytes]]], raw)
    assert orjson.loads(batched[b"datas"]) == [{}, {"priority": 5}]
    assert b"priority" not in single[b"data"]
    events = await store.events.read_events(after=None, count=10)
    assert [orjson.loads(e.data_json)["priority"] for e in events] == [0, 5, 0]


async def test_reading_resumes_inside_a_batch_and_after_it(store: Store) -> None:
    service = JobService(store, default_visibility_timeout_ms=30_000)
    first, second = entries(4), entries(3)
    await service.enqueue_batch({"jobs": first})
    await service.enqueue_batch({"jobs": second})
    every = await store.events.read_events(after=None, count=100)
    assert [e.job_id for e in every] == [e["id"] for e in first + second]
    inside = await store.events.read_events(after=every[1].cursor, count=1)
    assert [e.job_id for e in inside] == [e["id"] for e in first[2:] + second]
    whole = await store.events.read_events(after=every[0].cursor.partition(".")[0], count=100)
    assert [e.job_id for e in whole] == [e["id"] for e in second]


async def test_event_pages_cross_batches_without_gaps_or_repeats(store: Store) -> None:
    jobs = JobService(store, default_visibility_timeout_ms=30_000)
    events = EventService(store)
    batch = entries(5)
    await jobs.enqueue_batch({"jobs": batch})
    await jobs.enqueue({"type": "evb.one", "args": [], "options": {"queue": QUEUE}})
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        page = await events.list(EventFilter(), after=cursor, limit=2)
        seen += [e.job_id for e in page.events]
        cursor = page.cursor
        if not page.has_more:
            break
    assert seen[:5] == [e["id"] for e in batch] and len(seen) == 6


async def test_settling_a_batch_logs_one_entry(store: Store, store_redis: Redis) -> None:
    service = JobService(store, default_visibility_timeout_ms=30_000)
    await service.enqueue_batch({"jobs": entries(3)})
    fetched = await service.fetch([QUEUE], count=3, worker_id="w", visibility_timeout_ms=None)
    before = await store_redis.xlen(store.keys.events)
    settled = [Settlement(job.id, worker_id="w", lease_token=job.lease_token) for job in fetched]
    await service.settle_batch(settled, return_jobs=False)
    assert await store_redis.xlen(store.keys.events) == before + 1
    completed = [e for e in await store.events.read_events(after=None, count=100) if e.type == "job.completed"]
    assert sorted(e.job_id for e in completed) == sorted(job.id for job in fetched)
    assert all(e.state == "completed" and "attempt" in orjson.loads(e.data_json) for e in completed)


async def test_a_batch_takes_its_sequence_numbers_in_order_with_one_counter_update(
    store: Store, store_redis: Redis
) -> None:
    service = JobService(store, default_visibility_timeout_ms=30_000)
    before = int(await store_redis.get(store.keys.sequence) or 0)
    batch = entries(50)
    await service.enqueue_batch({"jobs": batch})
    assert int(await store_redis.get(store.keys.sequence) or 0) == before + 50
    fetched = await service.fetch([QUEUE], count=50, worker_id="w", visibility_timeout_ms=None)
    assert [job.id for job in fetched] == [e["id"] for e in batch]
    # The queue is registered once, with the time of the batch.
    assert await store_redis.hexists(store.keys.queues, QUEUE)
