"""Unique jobs on a real redis-server: conflict actions, period and states, races."""

from __future__ import annotations

import asyncio
import collections

import orjson
import pytest
from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.ids import new_uuid7
from server.domain.states import JobState
from server.service.jobs import JobService
from server.store.facade import Store
from tests.store.helpers import (
    BY_USER,
    QUEUE,
    ack,
    available_ids,
    body,
    event_types,
    expect_error,
    fetch,
    lock_holder,
    nack,
    new_job,
    stored,
    unique_body,
)

# --------------------------------------------------------------------------- unique: conflict actions


async def test_reject_names_the_existing_job(store: Store, job_service: JobService) -> None:
    first, deduplicated = await job_service.enqueue(unique_body())
    assert deduplicated is False
    second = unique_body()
    second["id"] = new_uuid7()
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(second))
    assert error.details["existing_job_id"] == first.id
    assert error.details["existing_job_state"] == "available"
    assert error.retryable is False
    assert await store.jobs.get(second["id"]) is None
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 1


async def test_reject_is_per_fingerprint(store: Store, job_service: JobService) -> None:
    await job_service.enqueue(unique_body(user=1))
    other_user, _ = await job_service.enqueue(unique_body(user=2))
    other_type, _ = await job_service.enqueue({**unique_body(user=1), "type": "store.other"})
    assert {other_user.state, other_type.state} == {JobState.AVAILABLE}
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 3


async def test_reject_is_the_default_action(job_service: JobService) -> None:
    first, _ = await job_service.enqueue(body(args=[{"user_id": 7}], unique=BY_USER))
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(body(args=[{"user_id": 7}], unique=BY_USER)))
    assert error.details["existing_job_id"] == first.id


@pytest.mark.parametrize("action", ["ignore", "use_existing"])
async def test_ignore_returns_the_existing_job_and_stores_nothing(
    store: Store, job_service: JobService, store_redis: Redis, action: str
) -> None:
    first, _ = await job_service.enqueue(unique_body(on_conflict=action))
    second = unique_body(on_conflict=action)
    second["id"] = new_uuid7()
    existing, deduplicated = await job_service.enqueue(second)
    assert deduplicated is True
    assert existing.id == first.id
    assert existing.state is JobState.AVAILABLE
    assert orjson.loads(existing.args_json) == orjson.loads(first.args_json)
    assert await store.jobs.get(second["id"]) is None
    assert await available_ids(store, store_redis) == [first.id]
    assert await event_types(store, job_id=second["id"]) == []


async def test_ignore_reports_the_existing_jobs_current_state(store: Store, job_service: JobService) -> None:
    first, _ = await job_service.enqueue(unique_body(on_conflict="ignore"))
    [fetched] = await fetch(store)
    assert fetched.id == first.id
    existing, deduplicated = await job_service.enqueue(unique_body(on_conflict="ignore"))
    assert deduplicated is True
    assert existing.id == first.id
    assert existing.state is JobState.ACTIVE
    assert existing.attempt == 1


async def test_replace_cancels_the_old_job_and_stores_the_new_one(
    store: Store, job_service: JobService, store_redis: Redis
) -> None:
    first, _ = await job_service.enqueue(unique_body(on_conflict="replace"))
    second, deduplicated = await job_service.enqueue(unique_body(on_conflict="replace"))
    assert deduplicated is False
    assert second.id != first.id
    assert second.state is JobState.AVAILABLE
    old = await stored(store, first.id)
    assert old.state is JobState.CANCELLED
    assert old.cancelled_at_ms is not None
    assert (await stored(store, second.id)).state is JobState.AVAILABLE
    assert await available_ids(store, store_redis) == [second.id]
    assert "job.cancelled" in await event_types(store, job_id=first.id)
    assert await lock_holder(store, store_redis, new_job(unique_body(on_conflict="replace"))) == second.id


async def test_replace_of_an_active_job_cancels_it(store: Store, job_service: JobService, store_redis: Redis) -> None:
    first, _ = await job_service.enqueue(unique_body(on_conflict="replace"))
    [active] = await fetch(store)
    assert active.id == first.id
    second, _ = await job_service.enqueue(unique_body(on_conflict="replace"))
    assert (await stored(store, first.id)).state is JobState.CANCELLED
    assert await store_redis.zscore(store.keys.active, first.id) is None
    error = await expect_error(ErrorCode.CONFLICT, ack(store, first.id))
    assert error.details["current_state"] == "cancelled"
    [next_job] = await fetch(store)
    assert next_job.id == second.id


async def test_replace_except_schedule_keeps_the_old_scheduled_at(
    store: Store, job_service: JobService, store_redis: Redis
) -> None:
    in_an_hour = "+PT1H"
    first, _ = await job_service.enqueue(unique_body(on_conflict="replace_except_schedule", scheduled_at=in_an_hour))
    assert first.state is JobState.SCHEDULED
    assert first.scheduled_at_ms is not None
    second = unique_body(on_conflict="replace_except_schedule", scheduled_at="+PT5H")
    second["args"][0]["note"] = "updated"
    replacement, deduplicated = await job_service.enqueue(second)
    assert deduplicated is False
    assert (await stored(store, first.id)).state is JobState.CANCELLED
    kept = await stored(store, replacement.id)
    assert kept.state is JobState.SCHEDULED
    assert kept.scheduled_at_ms == first.scheduled_at_ms
    assert orjson.loads(kept.args_json)[0]["note"] == "updated"
    assert await store_redis.zscore(store.keys.delayed(QUEUE), replacement.id) == first.scheduled_at_ms
    assert await store_redis.zscore(store.keys.delayed(QUEUE), first.id) is None
    # What the caller is told matches what was stored.
    assert replacement.state is JobState.SCHEDULED
    assert replacement.scheduled_at_ms == first.scheduled_at_ms


async def test_replace_except_schedule_schedules_an_immediate_job_at_the_old_time(
    store: Store, job_service: JobService
) -> None:
    first, _ = await job_service.enqueue(unique_body(on_conflict="replace_except_schedule", scheduled_at="+PT1H"))
    replacement, _ = await job_service.enqueue(unique_body(on_conflict="replace_except_schedule"))
    kept = await stored(store, replacement.id)
    assert kept.state is JobState.SCHEDULED
    assert kept.scheduled_at_ms == first.scheduled_at_ms
    assert kept.enqueued_at_ms is None
    assert await fetch(store) == []
    assert replacement.state is JobState.SCHEDULED
    assert replacement.scheduled_at_ms == first.scheduled_at_ms


async def test_replace_except_schedule_of_an_unscheduled_job_is_a_replace(
    store: Store, job_service: JobService
) -> None:
    first, _ = await job_service.enqueue(unique_body(on_conflict="replace_except_schedule"))
    replacement, _ = await job_service.enqueue(unique_body(on_conflict="replace_except_schedule", scheduled_at="+PT1H"))
    assert (await stored(store, first.id)).state is JobState.CANCELLED
    kept = await stored(store, replacement.id)
    assert kept.state is JobState.SCHEDULED
    assert kept.scheduled_at_ms == replacement.scheduled_at_ms
    assert kept.scheduled_at_ms is not None and kept.scheduled_at_ms > now_ms() + 3_000_000


# --------------------------------------------------------------------------- unique: period and states


async def test_period_expiry_admits_a_new_job(store: Store, job_service: JobService) -> None:
    first, _ = await job_service.enqueue(unique_body(policy={"period": "PT1S"}))
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body(policy={"period": "PT1S"})))
    assert error.details["existing_job_id"] == first.id
    await asyncio.sleep(1.2)
    assert (await stored(store, first.id)).state is JobState.AVAILABLE
    second, deduplicated = await job_service.enqueue(unique_body(policy={"period": "PT1S"}))
    assert deduplicated is False
    assert second.id != first.id
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 2
    # The new job holds the key for its own period.
    await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body(policy={"period": "PT1S"})))


async def test_period_lock_has_the_period_as_ttl(store: Store, job_service: JobService, store_redis: Redis) -> None:
    envelope = unique_body(policy={"period": "PT30S"})
    await job_service.enqueue(envelope)
    job = new_job(envelope)
    assert job.unique_fingerprint is not None
    ttl = await store_redis.pttl(store.keys.unique_prefix + job.unique_fingerprint)
    assert 25_000 < ttl <= 30_000


async def test_states_filter_admits_a_new_job_once_the_old_one_left_them(store: Store, job_service: JobService) -> None:
    policy = {"states": ["available"]}
    first, _ = await job_service.enqueue(unique_body(policy=policy))
    await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body(policy=policy)))
    [fetched] = await fetch(store)
    assert fetched.id == first.id
    second, deduplicated = await job_service.enqueue(unique_body(policy=policy))
    assert deduplicated is False
    assert second.state is JobState.AVAILABLE
    # The new job is now the one in "available".
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body(policy=policy)))
    assert error.details["existing_job_id"] == second.id


async def test_lock_is_released_when_the_job_completes(
    store: Store, job_service: JobService, store_redis: Redis
) -> None:
    first, _ = await job_service.enqueue(unique_body())
    await fetch(store)
    await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body()))
    await ack(store, first.id)
    assert await lock_holder(store, store_redis, new_job(unique_body())) is None
    second, deduplicated = await job_service.enqueue(unique_body())
    assert deduplicated is False
    assert second.id != first.id


async def test_lock_is_kept_when_completed_is_a_checked_state(
    store: Store, job_service: JobService, store_redis: Redis
) -> None:
    policy = {"states": ["available", "active", "completed"]}
    first, _ = await job_service.enqueue(unique_body(policy=policy))
    await fetch(store)
    await ack(store, first.id)
    assert await lock_holder(store, store_redis, new_job(unique_body(policy=policy))) == first.id
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body(policy=policy)))
    assert error.details["existing_job_id"] == first.id
    assert error.details["existing_job_state"] == "completed"
    existing, deduplicated = await job_service.enqueue(unique_body(on_conflict="ignore", policy=policy))
    assert deduplicated is True
    assert existing.id == first.id
    assert existing.state is JobState.COMPLETED


async def test_retryable_job_keeps_the_lock_and_discarding_releases_it(store: Store, job_service: JobService) -> None:
    first, _ = await job_service.enqueue(unique_body(retry={"max_attempts": 2, "initial_interval": "PT0.01S"}))
    await fetch(store)
    assert (await nack(store, first.id)).state is JobState.RETRYABLE
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body()))
    assert error.details["existing_job_state"] == "retryable"
    # Past the 10 ms backoff, without waiting for it.
    [again] = await fetch(store, at=now_ms() + 1_000)
    assert again.id == first.id
    assert (await nack(store, first.id)).state is JobState.DISCARDED
    second, deduplicated = await job_service.enqueue(unique_body())
    assert deduplicated is False
    assert second.id != first.id


async def test_cancelling_releases_the_lock(store: Store, job_service: JobService) -> None:
    first, _ = await job_service.enqueue(unique_body())
    await store.jobs.cancel(first.id, reason="", now_ms=now_ms())
    second, _ = await job_service.enqueue(unique_body())
    assert second.id != first.id


async def test_queue_dimension_scopes_uniqueness(store: Store, job_service: JobService) -> None:
    policy = {"keys": ["type", "queue", "args"]}
    await job_service.enqueue(unique_body(queue="qa", policy=policy))
    await job_service.enqueue(unique_body(queue="qb", policy=policy))
    await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body(queue="qa", policy=policy)))
    await job_service.enqueue(unique_body(queue="qc"))
    await expect_error(ErrorCode.DUPLICATE, job_service.enqueue(unique_body(queue="qd")))


# --------------------------------------------------------------------------- unique: concurrency


async def test_concurrent_replace_leaves_exactly_one_live_job(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    envelopes = []
    for _ in range(20):
        envelope = unique_body(on_conflict="replace")
        envelope["id"] = new_uuid7()
        envelopes.append(envelope)
    results = await asyncio.gather(*(job_service.enqueue(e) for e in envelopes))
    assert all(deduplicated is False for _, deduplicated in results)
    jobs = await store.jobs.get_many([e["id"] for e in envelopes])
    assert len(jobs) == 20
    states = collections.Counter(job.state for job in jobs)
    assert states == {JobState.AVAILABLE: 1, JobState.CANCELLED: 19}
    [live] = [job for job in jobs if job.state is not JobState.CANCELLED]
    assert await available_ids(store, store_redis) == [live.id]
    assert await lock_holder(store, store_redis, new_job(envelopes[0])) == live.id
    stats = await store.queues.queue_stats(QUEUE, now_ms=now_ms())
    assert (stats.available, stats.cancelled) == (1, 19)


async def test_concurrent_reject_lets_exactly_one_through(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    outcomes = await asyncio.gather(*(job_service.enqueue(unique_body()) for _ in range(20)), return_exceptions=True)
    winners = [o[0] for o in outcomes if isinstance(o, tuple)]
    losers = [o for o in outcomes if isinstance(o, OJSError)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert {e.code for e in losers} == {ErrorCode.DUPLICATE}
    assert {e.details["existing_job_id"] for e in losers} == {winners[0].id}
    assert await available_ids(store, store_redis) == [winners[0].id]


async def test_concurrent_ignore_hands_everyone_the_same_job(store: Store, job_service: JobService) -> None:
    outcomes = await asyncio.gather(*(job_service.enqueue(unique_body(on_conflict="ignore")) for _ in range(20)))
    assert len({job.id for job, _ in outcomes}) == 1
    assert sorted(deduplicated for _, deduplicated in outcomes) == [False] + [True] * 19
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 1
