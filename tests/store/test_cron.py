"""Cron entries on a real redis-server: upsert, firing exactly once, overlap, misfire."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from server.domain.clock import ManualClock, now_ms
from server.domain.cron import next_fire_ms, parse_cron
from server.domain.errors import ErrorCode, OJSError
from server.domain.states import JobState
from server.service.cron import CronService
from server.store.facade import Store

MINUTE_MS = 60_000


def registration(name: str = "nightly", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "expression": "* * * * *",
        "job_template": {"type": "cron.job", "args": [1, "two"], "options": {"queue": "cron-q", "priority": 5}},
    }
    body.update(extra)
    return body


async def make_due(redis: Redis, store: Store, name: str, at: int) -> None:
    """Move an entry's next run into the past, as if its time had come."""
    await redis.hset(store.keys.cron(name), "next_run_at", at)
    await redis.zadd(store.keys.cron_due, {name: at})


async def queued_jobs(store: Store, queue: str = "cron-q", *, at: int | None = None) -> list[Any]:
    return await store.leases.fetch(
        [queue], count=100, worker_id="w", lease_ms=None, default_lease_ms=60_000, now_ms=now_ms() if at is None else at
    )


async def test_register_computes_the_next_run_and_upserts(store: Store) -> None:
    service = CronService(store)
    before = now_ms()
    created, entry = await service.register(registration(timezone="Asia/Tokyo", expression="0 9 * * *"))
    assert created is True and entry.enabled and entry.run_count == 0
    assert entry.created_at_ms >= before
    assert entry.next_run_at_ms == next_fire_ms(parse_cron("0 9 * * *", "Asia/Tokyo"), entry.created_at_ms)
    created_again, updated = await service.register(registration(expression="*/5 * * * *"))
    assert created_again is False
    assert updated.expression == "*/5 * * * *" and updated.created_at_ms == entry.created_at_ms
    assert [e.name for e in await service.entries()] == ["nightly"]


@pytest.mark.parametrize(
    "body",
    [
        registration(expression="not a valid cron"),
        registration(expression="0 0 0 0 0 0 0"),
        registration(expression="99 25 32 13 8"),
        registration(timezone="Mars/Olympus"),
        registration(overlap_policy="sometimes"),
        registration(name="Bad Name"),
        registration(job_template={"type": "Bad Type", "args": []}),
    ],
)
async def test_invalid_registrations_are_rejected(store: Store, body: dict[str, Any]) -> None:
    with pytest.raises(OJSError) as caught:
        await CronService(store).register(body)
    assert caught.value.code is ErrorCode.INVALID_REQUEST and caught.value.message


async def test_a_due_occurrence_fires_exactly_once_under_concurrent_schedulers(
    store: Store, store_redis: Redis
) -> None:
    await CronService(store).register(registration(overlap_policy="allow"))
    occurrence = now_ms() - 10
    await make_due(store_redis, store, "nightly", occurrence)
    schedulers = [CronService(store) for _ in range(8)]
    fired = await asyncio.gather(*(s.fire_due() for s in schedulers))
    assert sum(fired) == 1
    [job] = await queued_jobs(store)
    meta = orjson.loads(job.meta_json)
    assert meta["cron_name"] == "nightly"
    assert job.priority == 5 and orjson.loads(job.args_json) == [1, "two"]
    entry = await CronService(store).get("nightly")
    assert entry.run_count == 1 and entry.last_job_id == job.id
    assert entry.next_run_at_ms is not None and entry.next_run_at_ms > now_ms() - 1000


async def test_missed_occurrences_fire_once_then_the_schedule_continues(store: Store) -> None:
    clock = ManualClock()
    service = CronService(store, clock=clock)
    await service.register(registration(overlap_policy="allow"))
    clock.advance(3 * 60 * MINUTE_MS)
    assert await service.fire_due() == 1
    assert await service.fire_due() == 0
    entry = await service.get("nightly")
    assert entry.next_run_at_ms is not None and clock.now_ms() < entry.next_run_at_ms <= clock.now_ms() + MINUTE_MS
    assert len(await queued_jobs(store, at=clock.now_ms())) == 1


async def test_skip_overlap_waits_for_the_previous_job(store: Store) -> None:
    clock = ManualClock()
    service = CronService(store, clock=clock)
    await service.register(registration())
    clock.advance(MINUTE_MS)
    assert await service.fire_due() == 1
    [first] = await queued_jobs(store, at=clock.now_ms())
    clock.advance(MINUTE_MS)
    assert await service.fire_due() == 0
    assert await queued_jobs(store, at=clock.now_ms()) == []
    await store.leases.ack(first.id, result_json=None, worker_id="w", now_ms=clock.now_ms())
    clock.advance(MINUTE_MS)
    assert await service.fire_due() == 1
    assert len(await queued_jobs(store, at=clock.now_ms())) == 1


async def test_disabled_entries_do_not_fire_and_unregister_keeps_enqueued_jobs(
    store: Store, store_redis: Redis
) -> None:
    service = CronService(store)
    _, entry = await service.register(registration(enabled=False))
    assert entry.next_run_at_ms is None
    assert await store.cron.due_crons(now_ms=now_ms() + 10**10, limit=10) == []
    await service.register(registration(overlap_policy="allow"))
    await make_due(store_redis, store, "nightly", now_ms() - 10)
    await service.fire_due()
    await service.unregister("nightly")
    with pytest.raises(OJSError) as caught:
        await service.unregister("nightly")
    assert caught.value.code is ErrorCode.NOT_FOUND
    [job] = await queued_jobs(store)
    assert job.state is JobState.ACTIVE
