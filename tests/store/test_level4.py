"""Level 4 on a real redis-server: unique jobs, batch enqueue, pause/resume, queue statistics, rate limits."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.ids import new_uuid7
from server.domain.job import NewJob, StoredJob
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.model.records import FailureReport, QueueStatsRow
from server.service.jobs import JobService
from server.service.queues import QueueService
from server.service.workflows import WorkflowService
from server.store.facade import Store
from tests.store.round_trips import count_round_trips

LEASE_MS = 30_000
WORKER = "l4-worker"
QUEUE = "l4"
BY_USER = {"keys": ["type", "args"], "args_keys": ["user_id"]}
DEAD_LETTER = {"max_attempts": 1, "on_exhaustion": "dead_letter"}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def service(store: Store) -> JobService:
    return JobService(store, default_visibility_timeout_ms=LEASE_MS)


@pytest.fixture
def queues(store: Store) -> QueueService:
    return QueueService(store)


def body(
    *, queue: str = QUEUE, args: list[Any] | None = None, job_type: str = "l4.job", **options: Any
) -> dict[str, Any]:
    return {"type": job_type, "args": [] if args is None else args, "options": {"queue": queue, **options}}


def unique_body(user: int = 42, on_conflict: str = "reject", *, queue: str = QUEUE, **extra: Any) -> dict[str, Any]:
    policy = {**BY_USER, "on_conflict": on_conflict, **extra.pop("policy", {})}
    return body(queue=queue, args=[{"user_id": user, "note": f"n{time.monotonic_ns()}"}], unique=policy, **extra)


def new_job(envelope: dict[str, Any]) -> NewJob:
    return parse_enqueue(envelope, now_ms=now_ms())


async def fetch(
    store: Store, *queue_names: str, count: int = 1, at: int | None = None, lease_ms: int | None = None
) -> list[StoredJob]:
    return await store.leases.fetch(
        list(queue_names) or [QUEUE],
        count=count,
        worker_id=WORKER,
        lease_ms=lease_ms,
        default_lease_ms=LEASE_MS,
        now_ms=now_ms() if at is None else at,
    )


async def ack(store: Store, job_id: str, *, at: int | None = None) -> StoredJob:
    return await store.leases.ack(job_id, result_json=None, worker_id=WORKER, now_ms=now_ms() if at is None else at)


def failure(*, retryable: bool | None = None, requeue: bool = False) -> FailureReport:
    return FailureReport(
        code="boom",
        message="it broke",
        error_type="boom",
        details=None,
        backtrace=None,
        retryable=retryable,
        requeue=requeue,
    )


async def nack(store: Store, job_id: str, *, retryable: bool | None = None, requeue: bool = False) -> StoredJob:
    return await store.leases.nack(
        job_id, failure(retryable=retryable, requeue=requeue), worker_id=WORKER, now_ms=now_ms()
    )


async def stored(store: Store, job_id: str) -> StoredJob:
    job = await store.jobs.get(job_id)
    assert job is not None, f"job {job_id} is not stored"
    return job


async def expect_error(code: ErrorCode, call: Awaitable[Any]) -> OJSError:
    with pytest.raises(OJSError) as caught:
        await call
    assert caught.value.code is code, caught.value
    return caught.value


async def available_ids(store: Store, store_redis: Redis, queue: str = QUEUE) -> list[str]:
    members = cast(list[bytes], await store_redis.zrange(store.keys.available(queue), 0, -1))
    return [raw.decode() for raw in members]


async def lock_holder(store: Store, store_redis: Redis, job: NewJob) -> str | None:
    assert job.unique_fingerprint is not None
    raw = cast(bytes | None, await store_redis.get(store.keys.unique_prefix + job.unique_fingerprint))
    return raw.decode() if raw is not None else None


async def event_types(store: Store, job_id: str = "", queue: str = "") -> list[str]:
    events = await store.events.read_events(after=None, count=100_000)
    return [e.type for e in events if (not job_id or e.job_id == job_id) and (not queue or e.queue == queue)]


# --------------------------------------------------------------------------- unique: conflict actions


async def test_reject_names_the_existing_job(store: Store, service: JobService) -> None:
    first, deduplicated = await service.enqueue(unique_body())
    assert deduplicated is False
    second = unique_body()
    second["id"] = new_uuid7()
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue(second))
    assert error.details["existing_job_id"] == first.id
    assert error.details["existing_job_state"] == "available"
    assert error.retryable is False
    assert await store.jobs.get(second["id"]) is None
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 1


async def test_reject_is_per_fingerprint(store: Store, service: JobService) -> None:
    await service.enqueue(unique_body(user=1))
    other_user, _ = await service.enqueue(unique_body(user=2))
    other_type, _ = await service.enqueue({**unique_body(user=1), "type": "l4.other"})
    assert {other_user.state, other_type.state} == {JobState.AVAILABLE}
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 3


async def test_reject_is_the_default_action(service: JobService) -> None:
    first, _ = await service.enqueue(body(args=[{"user_id": 7}], unique=BY_USER))
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue(body(args=[{"user_id": 7}], unique=BY_USER)))
    assert error.details["existing_job_id"] == first.id


@pytest.mark.parametrize("action", ["ignore", "use_existing"])
async def test_ignore_returns_the_existing_job_and_stores_nothing(
    store: Store, service: JobService, store_redis: Redis, action: str
) -> None:
    first, _ = await service.enqueue(unique_body(on_conflict=action))
    second = unique_body(on_conflict=action)
    second["id"] = new_uuid7()
    existing, deduplicated = await service.enqueue(second)
    assert deduplicated is True
    assert existing.id == first.id
    assert existing.state is JobState.AVAILABLE
    assert orjson.loads(existing.args_json) == orjson.loads(first.args_json)
    assert await store.jobs.get(second["id"]) is None
    assert await available_ids(store, store_redis) == [first.id]
    assert await event_types(store, job_id=second["id"]) == []


async def test_ignore_reports_the_existing_jobs_current_state(store: Store, service: JobService) -> None:
    first, _ = await service.enqueue(unique_body(on_conflict="ignore"))
    [fetched] = await fetch(store)
    assert fetched.id == first.id
    existing, deduplicated = await service.enqueue(unique_body(on_conflict="ignore"))
    assert deduplicated is True
    assert existing.id == first.id
    assert existing.state is JobState.ACTIVE
    assert existing.attempt == 1


async def test_replace_cancels_the_old_job_and_stores_the_new_one(
    store: Store, service: JobService, store_redis: Redis
) -> None:
    first, _ = await service.enqueue(unique_body(on_conflict="replace"))
    second, deduplicated = await service.enqueue(unique_body(on_conflict="replace"))
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


async def test_replace_of_an_active_job_cancels_it(store: Store, service: JobService, store_redis: Redis) -> None:
    first, _ = await service.enqueue(unique_body(on_conflict="replace"))
    [active] = await fetch(store)
    assert active.id == first.id
    second, _ = await service.enqueue(unique_body(on_conflict="replace"))
    assert (await stored(store, first.id)).state is JobState.CANCELLED
    assert await store_redis.zscore(store.keys.active, first.id) is None
    error = await expect_error(ErrorCode.CONFLICT, ack(store, first.id))
    assert error.details["current_state"] == "cancelled"
    [next_job] = await fetch(store)
    assert next_job.id == second.id


async def test_replace_except_schedule_keeps_the_old_scheduled_at(
    store: Store, service: JobService, store_redis: Redis
) -> None:
    in_an_hour = "+PT1H"
    first, _ = await service.enqueue(unique_body(on_conflict="replace_except_schedule", scheduled_at=in_an_hour))
    assert first.state is JobState.SCHEDULED
    assert first.scheduled_at_ms is not None
    second = unique_body(on_conflict="replace_except_schedule", scheduled_at="+PT5H")
    second["args"][0]["note"] = "updated"
    replacement, deduplicated = await service.enqueue(second)
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
    store: Store, service: JobService
) -> None:
    first, _ = await service.enqueue(unique_body(on_conflict="replace_except_schedule", scheduled_at="+PT1H"))
    replacement, _ = await service.enqueue(unique_body(on_conflict="replace_except_schedule"))
    kept = await stored(store, replacement.id)
    assert kept.state is JobState.SCHEDULED
    assert kept.scheduled_at_ms == first.scheduled_at_ms
    assert kept.enqueued_at_ms is None
    assert await fetch(store) == []
    assert replacement.state is JobState.SCHEDULED
    assert replacement.scheduled_at_ms == first.scheduled_at_ms


async def test_replace_except_schedule_of_an_unscheduled_job_is_a_replace(store: Store, service: JobService) -> None:
    first, _ = await service.enqueue(unique_body(on_conflict="replace_except_schedule"))
    replacement, _ = await service.enqueue(unique_body(on_conflict="replace_except_schedule", scheduled_at="+PT1H"))
    assert (await stored(store, first.id)).state is JobState.CANCELLED
    kept = await stored(store, replacement.id)
    assert kept.state is JobState.SCHEDULED
    assert kept.scheduled_at_ms == replacement.scheduled_at_ms
    assert kept.scheduled_at_ms is not None and kept.scheduled_at_ms > now_ms() + 3_000_000


# --------------------------------------------------------------------------- unique: period and states


async def test_period_expiry_admits_a_new_job(store: Store, service: JobService) -> None:
    first, _ = await service.enqueue(unique_body(policy={"period": "PT1S"}))
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body(policy={"period": "PT1S"})))
    assert error.details["existing_job_id"] == first.id
    await asyncio.sleep(1.2)
    assert (await stored(store, first.id)).state is JobState.AVAILABLE
    second, deduplicated = await service.enqueue(unique_body(policy={"period": "PT1S"}))
    assert deduplicated is False
    assert second.id != first.id
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 2
    # The new job holds the key for its own period.
    await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body(policy={"period": "PT1S"})))


async def test_period_lock_has_the_period_as_ttl(store: Store, service: JobService, store_redis: Redis) -> None:
    envelope = unique_body(policy={"period": "PT30S"})
    await service.enqueue(envelope)
    job = new_job(envelope)
    assert job.unique_fingerprint is not None
    ttl = await store_redis.pttl(store.keys.unique_prefix + job.unique_fingerprint)
    assert 25_000 < ttl <= 30_000


async def test_states_filter_admits_a_new_job_once_the_old_one_left_them(store: Store, service: JobService) -> None:
    policy = {"states": ["available"]}
    first, _ = await service.enqueue(unique_body(policy=policy))
    await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body(policy=policy)))
    [fetched] = await fetch(store)
    assert fetched.id == first.id
    second, deduplicated = await service.enqueue(unique_body(policy=policy))
    assert deduplicated is False
    assert second.state is JobState.AVAILABLE
    # The new job is now the one in "available".
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body(policy=policy)))
    assert error.details["existing_job_id"] == second.id


async def test_lock_is_released_when_the_job_completes(store: Store, service: JobService, store_redis: Redis) -> None:
    first, _ = await service.enqueue(unique_body())
    await fetch(store)
    await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body()))
    await ack(store, first.id)
    assert await lock_holder(store, store_redis, new_job(unique_body())) is None
    second, deduplicated = await service.enqueue(unique_body())
    assert deduplicated is False
    assert second.id != first.id


async def test_lock_is_kept_when_completed_is_a_checked_state(
    store: Store, service: JobService, store_redis: Redis
) -> None:
    policy = {"states": ["available", "active", "completed"]}
    first, _ = await service.enqueue(unique_body(policy=policy))
    await fetch(store)
    await ack(store, first.id)
    assert await lock_holder(store, store_redis, new_job(unique_body(policy=policy))) == first.id
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body(policy=policy)))
    assert error.details["existing_job_id"] == first.id
    assert error.details["existing_job_state"] == "completed"
    existing, deduplicated = await service.enqueue(unique_body(on_conflict="ignore", policy=policy))
    assert deduplicated is True
    assert existing.id == first.id
    assert existing.state is JobState.COMPLETED


async def test_retryable_job_keeps_the_lock_and_discarding_releases_it(store: Store, service: JobService) -> None:
    first, _ = await service.enqueue(unique_body(retry={"max_attempts": 2, "initial_interval": "PT0.01S"}))
    await fetch(store)
    assert (await nack(store, first.id)).state is JobState.RETRYABLE
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body()))
    assert error.details["existing_job_state"] == "retryable"
    # Past the 10 ms backoff, without waiting for it.
    [again] = await fetch(store, at=now_ms() + 1_000)
    assert again.id == first.id
    assert (await nack(store, first.id)).state is JobState.DISCARDED
    second, deduplicated = await service.enqueue(unique_body())
    assert deduplicated is False
    assert second.id != first.id


async def test_cancelling_releases_the_lock(store: Store, service: JobService) -> None:
    first, _ = await service.enqueue(unique_body())
    await store.jobs.cancel(first.id, reason="", now_ms=now_ms())
    second, _ = await service.enqueue(unique_body())
    assert second.id != first.id


async def test_queue_dimension_scopes_uniqueness(store: Store, service: JobService) -> None:
    policy = {"keys": ["type", "queue", "args"]}
    await service.enqueue(unique_body(queue="qa", policy=policy))
    await service.enqueue(unique_body(queue="qb", policy=policy))
    await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body(queue="qa", policy=policy)))
    await service.enqueue(unique_body(queue="qc"))
    await expect_error(ErrorCode.DUPLICATE, service.enqueue(unique_body(queue="qd")))


# --------------------------------------------------------------------------- unique: concurrency


async def test_concurrent_replace_leaves_exactly_one_live_job(
    store: Store, store_redis: Redis, service: JobService
) -> None:
    envelopes = []
    for _ in range(20):
        envelope = unique_body(on_conflict="replace")
        envelope["id"] = new_uuid7()
        envelopes.append(envelope)
    results = await asyncio.gather(*(service.enqueue(e) for e in envelopes))
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
    store: Store, store_redis: Redis, service: JobService
) -> None:
    outcomes = await asyncio.gather(*(service.enqueue(unique_body()) for _ in range(20)), return_exceptions=True)
    winners = [o[0] for o in outcomes if isinstance(o, tuple)]
    losers = [o for o in outcomes if isinstance(o, OJSError)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert {e.code for e in losers} == {ErrorCode.DUPLICATE}
    assert {e.details["existing_job_id"] for e in losers} == {winners[0].id}
    assert await available_ids(store, store_redis) == [winners[0].id]


async def test_concurrent_ignore_hands_everyone_the_same_job(store: Store, service: JobService) -> None:
    outcomes = await asyncio.gather(*(service.enqueue(unique_body(on_conflict="ignore")) for _ in range(20)))
    assert len({job.id for job, _ in outcomes}) == 1
    assert sorted(deduplicated for _, deduplicated in outcomes) == [False] + [True] * 19
    assert (await store.queues.queue_stats(QUEUE, now_ms=now_ms())).available == 1


# --------------------------------------------------------------------------- batch enqueue


def batch_entries(count: int, *, queue: str = QUEUE) -> list[dict[str, Any]]:
    return [{"id": new_uuid7(), "type": "batch.job", "args": [i], "options": {"queue": queue}} for i in range(count)]


async def nothing_stored(store: Store, store_redis: Redis, ids: list[str], queue: str = QUEUE) -> None:
    assert await store_redis.exists(*[store.keys.job(i) for i in ids]) == 0
    assert await store_redis.zcard(store.keys.available(queue)) == 0
    stats = await store.queues.queue_stats(queue, now_ms=now_ms())
    assert stats.available == 0
    assert await event_types(store, queue=queue) == []


async def test_batch_of_10000_with_one_invalid_job_stores_nothing(
    store: Store, store_redis: Redis, service: JobService
) -> None:
    entries = batch_entries(10_000)
    del entries[7777]["type"]
    error = await expect_error(ErrorCode.INVALID_REQUEST, service.enqueue_batch({"jobs": entries}))
    errors = error.details["errors"]
    assert len(errors) == 1
    assert errors[0]["index"] == 7777
    assert errors[0]["field"] == "type"
    assert error.details["index"] == 7777
    assert "7777" in error.message
    await nothing_stored(store, store_redis, [e["id"] for e in entries])
    assert await fetch(store, count=10) == []


async def test_batch_reports_every_invalid_index(store: Store, store_redis: Redis, service: JobService) -> None:
    entries: list[Any] = batch_entries(10)
    entries[2]["args"] = "not-a-list"
    entries[5]["options"]["priority"] = 1000
    entries[9] = "not an object"
    error = await expect_error(ErrorCode.INVALID_REQUEST, service.enqueue_batch({"jobs": entries}))
    assert [e["index"] for e in error.details["errors"]] == [2, 5, 9]
    assert error.details["errors"][1]["field"] == "options.priority"
    await nothing_stored(store, store_redis, [e["id"] for e in entries[:9]])


async def test_valid_batch_of_10000_is_stored_in_one_round_trip(
    store: Store, store_redis: Redis, service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = batch_entries(10_000)
    calls = count_round_trips(monkeypatch, store_redis)
    results = await service.enqueue_batch({"jobs": entries})
    monkeypatch.undo()
    assert calls == ["EVALSHA"]
    assert [job.id for job, _ in results] == [e["id"] for e in entries]
    assert all(deduplicated is False and job.state is JobState.AVAILABLE for job, deduplicated in results)
    stats = await store.queues.queue_stats(QUEUE, now_ms=now_ms())
    assert stats.available == 10_000
    assert await store_redis.exists(*[store.keys.job(e["id"]) for e in entries]) == 10_000
    first = await fetch(store, count=3)
    assert [orjson.loads(j.args_json) for j in first] == [[0], [1], [2]]


async def test_duplicate_ids_inside_a_batch_are_rejected(store: Store, store_redis: Redis, service: JobService) -> None:
    entries = batch_entries(4)
    entries[3]["id"] = entries[1]["id"]
    error = await expect_error(ErrorCode.INVALID_REQUEST, service.enqueue_batch({"jobs": entries}))
    [only] = error.details["errors"]
    assert only["index"] == 3
    assert only["field"] == "id"
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_batch_id_already_stored_aborts_the_whole_batch(
    store: Store, store_redis: Redis, service: JobService
) -> None:
    existing, _ = await service.enqueue(body(queue="elsewhere"))
    entries = batch_entries(3)
    entries[2]["id"] = existing.id
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue_batch({"jobs": entries}))
    assert error.details["index"] == 2
    assert error.details["existing_job_id"] == existing.id
    await nothing_stored(store, store_redis, [e["id"] for e in entries[:2]])


async def test_default_options_apply_and_per_job_options_win(store: Store, service: JobService) -> None:
    defaults = {"queue": "dq", "priority": 5, "tags": ["from-default"], "retry": {"max_attempts": 7}}
    entries = [
        {"type": "batch.job", "args": [0]},
        {"type": "batch.job", "args": [1], "options": {"priority": 9}},
        {"type": "batch.job", "args": [2], "options": {"queue": "own", "tags": ["mine"]}},
        {"type": "batch.job", "args": [3], "options": {"retry": {"max_attempts": 2}}},
    ]
    results = await service.enqueue_batch({"jobs": entries, "default_options": defaults})
    jobs = [await stored(store, job.id) for job, _ in results]
    assert [(j.queue, j.priority, j.tags, j.max_attempts) for j in jobs] == [
        ("dq", 5, ("from-default",), 7),
        ("dq", 9, ("from-default",), 7),
        ("own", 5, ("mine",), 7),
        ("dq", 5, ("from-default",), 2),
    ]
    assert [(j.queue, j.priority) for j, _ in results] == [(j.queue, j.priority) for j in jobs]


async def test_job_level_fields_win_over_default_options(store: Store, service: JobService) -> None:
    # The core envelope's top-level queue/priority are the job's own settings.
    entries = [{"type": "batch.job", "args": [], "queue": "own", "priority": 9}]
    [(job, _)] = await service.enqueue_batch({"jobs": entries, "default_options": {"queue": "dq", "priority": 5}})
    kept = await stored(store, job.id)
    assert (kept.queue, kept.priority) == ("own", 9)


async def test_batch_over_max_batch_is_payload_too_large(store: Store, store_redis: Redis) -> None:
    small = JobService(store, default_visibility_timeout_ms=LEASE_MS, max_batch=3)
    entries = batch_entries(4)
    error = await expect_error(ErrorCode.PAYLOAD_TOO_LARGE, small.enqueue_batch({"jobs": entries}))
    assert error.details["max_jobs"] == 3
    assert error.details["jobs"] == 4
    await nothing_stored(store, store_redis, [e["id"] for e in entries])
    assert len(await small.enqueue_batch({"jobs": entries[:3]})) == 3


async def test_default_max_batch_is_10000(store: Store, service: JobService) -> None:
    error = await expect_error(
        ErrorCode.PAYLOAD_TOO_LARGE, service.enqueue_batch({"jobs": [{"type": "x", "args": []}] * 10_001})
    )
    assert error.details["max_jobs"] == 10_000


@pytest.mark.parametrize(
    ("batch", "code"),
    [
        ([], ErrorCode.INVALID_PAYLOAD),
        ({"jobs": []}, ErrorCode.INVALID_REQUEST),
        ({"jobs": {"type": "x"}}, ErrorCode.INVALID_REQUEST),
        ({"jobs": [{"type": "x", "args": []}], "default_options": "queue=q"}, ErrorCode.INVALID_REQUEST),
    ],
)
async def test_malformed_batches_are_rejected(service: JobService, batch: Any, code: ErrorCode) -> None:
    await expect_error(code, service.enqueue_batch(batch))


async def test_unique_reject_conflict_inside_a_batch_aborts_it(
    store: Store, store_redis: Redis, service: JobService
) -> None:
    existing, _ = await service.enqueue(unique_body(queue="held"))
    entries = batch_entries(3)
    entries[1] = {**unique_body(), "id": new_uuid7()}
    error = await expect_error(ErrorCode.DUPLICATE, service.enqueue_batch({"jobs": entries}))
    assert error.details["index"] == 1
    assert error.details["existing_job_id"] == existing.id
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_two_rejecting_jobs_with_one_fingerprint_in_a_batch(
    store: Store, store_redis: Redis, service: JobService
) -> None:
    entries = [{**unique_body(), "id": new_uuid7()}, *batch_entries(1), {**unique_body(), "id": new_uuid7()}]
    error = await expect_error(ErrorCode.INVALID_REQUEST, service.enqueue_batch({"jobs": entries}))
    [only] = error.details["errors"]
    assert only["index"] == 2
    assert only["code"] == "duplicate"
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_rejecting_job_after_a_batch_job_with_its_fingerprint_aborts_the_batch(
    store: Store, store_redis: Redis, service: JobService
) -> None:
    entries = [
        {**unique_body(on_conflict="ignore"), "id": new_uuid7()},
        {**unique_body(on_conflict="reject"), "id": new_uuid7()},
    ]
    with pytest.raises(OJSError) as caught:
        await service.enqueue_batch({"jobs": entries})
    assert caught.value.code in (ErrorCode.DUPLICATE, ErrorCode.INVALID_REQUEST)
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_ignore_inside_a_batch_returns_the_existing_job(
    store: Store, store_redis: Redis, service: JobService
) -> None:
    existing, _ = await service.enqueue(unique_body(on_conflict="ignore"))
    entries = [*batch_entries(1), {**unique_body(on_conflict="ignore"), "id": new_uuid7()}]
    results = await service.enqueue_batch({"jobs": entries})
    assert [(job.id, deduplicated) for job, deduplicated in results] == [
        (entries[0]["id"], False),
        (existing.id, True),
    ]
    assert await store.jobs.get(entries[1]["id"]) is None
    assert sorted(await available_ids(store, store_redis)) == sorted([existing.id, entries[0]["id"]])


async def test_replace_inside_a_batch_cancels_the_existing_job(store: Store, service: JobService) -> None:
    existing, _ = await service.enqueue(unique_body(on_conflict="replace"))
    [(job, deduplicated)] = await service.enqueue_batch({"jobs": [unique_body(on_conflict="replace")]})
    assert deduplicated is False
    assert (await stored(store, existing.id)).state is JobState.CANCELLED
    assert (await stored(store, job.id)).state is JobState.AVAILABLE


# --------------------------------------------------------------------------- pause and resume


async def test_paused_queue_accepts_jobs_but_delivers_none(
    store: Store, service: JobService, queues: QueueService
) -> None:
    await service.enqueue(body(queue="paused-q"))
    row = await queues.set_paused("paused-q", paused=True)
    assert row.paused is True
    assert row.available == 1
    late, _ = await service.enqueue(body(queue="paused-q"))
    assert late.state is JobState.AVAILABLE
    other, _ = await service.enqueue(body(queue="open-q"))
    assert await fetch(store, "paused-q", count=10) == []
    delivered = await fetch(store, "paused-q", "open-q", count=10)
    assert [j.id for j in delivered] == [other.id]
    stats = await store.queues.queue_stats("paused-q", now_ms=now_ms())
    assert (stats.available, stats.active, stats.paused) == (2, 0, True)

    resumed = await queues.set_paused("paused-q", paused=False)
    assert resumed.paused is False
    assert resumed.paused_at_ms is None
    assert len(await fetch(store, "paused-q", count=10)) == 2
    assert (await store.queues.queue_stats("paused-q", now_ms=now_ms())).paused is False


async def test_pause_does_not_touch_active_jobs(store: Store, service: JobService, queues: QueueService) -> None:
    job, _ = await service.enqueue(body())
    await fetch(store)
    await queues.set_paused(QUEUE, paused=True)
    assert (await ack(store, job.id)).state is JobState.COMPLETED


async def test_list_queues_shows_pause_and_the_first_pause_time(
    store: Store, service: JobService, queues: QueueService
) -> None:
    await service.enqueue(body(queue="qa"))
    await service.enqueue(body(queue="qb"))
    first = await store.queues.set_paused("qa", paused=True, now_ms=1_700_000_000_000)
    assert first.paused_at_ms == 1_700_000_000_000
    again = await store.queues.set_paused("qa", paused=True, now_ms=1_700_000_999_000)
    assert again.paused is True
    assert again.paused_at_ms == 1_700_000_000_000
    rows = {row.name: row for row in (await queues.page()).items}
    assert rows["qa"].paused is True
    assert rows["qa"].paused_at_ms == 1_700_000_000_000
    assert rows["qa"].available == 1
    assert rows["qb"].paused is False
    assert rows["qb"].paused_at_ms is None
    assert (await event_types(store, queue="qa")).count("queue.paused") == 1

    await store.queues.set_paused("qa", paused=False, now_ms=1_700_001_000_000)
    await store.queues.set_paused("qa", paused=False, now_ms=1_700_001_001_000)
    rows = {row.name: row for row in (await queues.page()).items}
    assert (rows["qa"].paused, rows["qa"].paused_at_ms) == (False, None)
    assert (await event_types(store, queue="qa")).count("queue.resumed") == 1
    paused_again = await store.queues.set_paused("qa", paused=True, now_ms=1_700_002_000_000)
    assert paused_again.paused_at_ms == 1_700_002_000_000


async def test_pausing_an_unknown_queue_registers_it(store: Store, queues: QueueService) -> None:
    row = await queues.set_paused("fresh-q", paused=True)
    assert row.paused is True
    assert row.available == 0
    assert "fresh-q" in [r.name for r in await store.queues.list_queues()]
    stats = await queues.stats("fresh-q")
    assert stats.paused is True


async def test_queue_service_validates_names(queues: QueueService) -> None:
    await expect_error(ErrorCode.INVALID_REQUEST, queues.set_paused("Bad Queue", paused=True))
    await expect_error(ErrorCode.INVALID_REQUEST, queues.stats(""))
    await expect_error(ErrorCode.NOT_FOUND, queues.stats("never-seen"))


# --------------------------------------------------------------------------- queue statistics


STATS_QUEUE = "stats"


class StatsLedger:
    """The jobs of one queue and the transitions the totals must have counted."""

    def __init__(self, store: Store, service: JobService) -> None:
        self.store = store
        self.service = service
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


async def test_queue_stats_follow_every_transition(store: Store, service: JobService) -> None:
    ledger = StatsLedger(store, service)
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


async def test_stats_of_a_fresh_queue(store: Store, service: JobService, queues: QueueService) -> None:
    t0 = now_ms()
    ids = [(await service.enqueue(body(queue="fresh")))[0].id for _ in range(3)]
    stats = await queues.stats("fresh")
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


# --------------------------------------------------------------------------- rate limits


async def test_max_per_second_caps_starts_in_a_sliding_second(store: Store, service: JobService) -> None:
    for _ in range(20):
        await service.enqueue(body(queue="rl", rate_limit={"max_per_second": 5}))
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


async def test_rate_limit_applies_per_queue(store: Store, service: JobService) -> None:
    for _ in range(5):
        await service.enqueue(body(queue="slow", rate_limit={"max_per_second": 1}))
        await service.enqueue(body(queue="fast"))
    t = now_ms()
    delivered = await fetch(store, "slow", "fast", count=10, at=t)
    assert collections.Counter(j.queue for j in delivered) == {"slow": 1, "fast": 5}


async def test_concurrency_caps_active_jobs(store: Store, service: JobService) -> None:
    for _ in range(5):
        await service.enqueue(body(queue="cc", rate_limit={"concurrency": 2}))
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
