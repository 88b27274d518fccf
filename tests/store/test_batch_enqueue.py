"""Batch enqueue on a real redis-server: all or nothing, per-index errors, defaults, uniqueness inside a batch."""

from __future__ import annotations

from typing import Any

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
    LEASE_MS,
    QUEUE,
    available_ids,
    body,
    event_types,
    expect_error,
    fetch,
    stored,
    unique_body,
)
from tests.store.round_trips import count_round_trips


def batch_entries(count: int, *, queue: str = QUEUE) -> list[dict[str, Any]]:
    return [{"id": new_uuid7(), "type": "batch.job", "args": [i], "options": {"queue": queue}} for i in range(count)]


async def nothing_stored(store: Store, store_redis: Redis, ids: list[str], queue: str = QUEUE) -> None:
    assert await store_redis.exists(*[store.keys.job(i) for i in ids]) == 0
    assert await store_redis.zcard(store.keys.available(queue)) == 0
    stats = await store.queues.queue_stats(queue, now_ms=now_ms())
    assert stats.available == 0
    assert await event_types(store, queue=queue) == []


async def test_batch_of_10000_with_one_invalid_job_stores_nothing(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    entries = batch_entries(10_000)
    del entries[7777]["type"]
    error = await expect_error(ErrorCode.INVALID_REQUEST, job_service.enqueue_batch({"jobs": entries}))
    errors = error.details["errors"]
    assert len(errors) == 1
    assert errors[0]["index"] == 7777
    assert errors[0]["field"] == "type"
    assert error.details["index"] == 7777
    assert "7777" in error.message
    await nothing_stored(store, store_redis, [e["id"] for e in entries])
    assert await fetch(store, count=10) == []


async def test_batch_reports_every_invalid_index(store: Store, store_redis: Redis, job_service: JobService) -> None:
    entries: list[Any] = batch_entries(10)
    entries[2]["args"] = "not-a-list"
    entries[5]["options"]["priority"] = 1000
    entries[9] = "not an object"
    error = await expect_error(ErrorCode.INVALID_REQUEST, job_service.enqueue_batch({"jobs": entries}))
    assert [e["index"] for e in error.details["errors"]] == [2, 5, 9]
    assert error.details["errors"][1]["field"] == "options.priority"
    await nothing_stored(store, store_redis, [e["id"] for e in entries[:9]])


async def test_valid_batch_of_10000_is_stored_in_one_round_trip(
    store: Store, store_redis: Redis, job_service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = batch_entries(10_000)
    calls = count_round_trips(monkeypatch, store_redis)
    results = await job_service.enqueue_batch({"jobs": entries})
    monkeypatch.undo()
    assert calls in (["FCALL"], ["EVALSHA"])  # one script call: FCALL on Redis 7, EVALSHA on 6.2
    assert [job.id for job, _ in results] == [e["id"] for e in entries]
    assert all(deduplicated is False and job.state is JobState.AVAILABLE for job, deduplicated in results)
    stats = await store.queues.queue_stats(QUEUE, now_ms=now_ms())
    assert stats.available == 10_000
    assert await store_redis.exists(*[store.keys.job(e["id"]) for e in entries]) == 10_000
    first = await fetch(store, count=3)
    assert [orjson.loads(j.args_json) for j in first] == [[0], [1], [2]]


async def test_duplicate_ids_inside_a_batch_are_rejected(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    entries = batch_entries(4)
    entries[3]["id"] = entries[1]["id"]
    error = await expect_error(ErrorCode.INVALID_REQUEST, job_service.enqueue_batch({"jobs": entries}))
    [only] = error.details["errors"]
    assert only["index"] == 3
    assert only["field"] == "id"
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_batch_id_already_stored_aborts_the_whole_batch(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    existing, _ = await job_service.enqueue(body(queue="elsewhere"))
    entries = batch_entries(3)
    entries[2]["id"] = existing.id
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue_batch({"jobs": entries}))
    assert error.details["index"] == 2
    assert error.details["existing_job_id"] == existing.id
    await nothing_stored(store, store_redis, [e["id"] for e in entries[:2]])


async def test_default_options_apply_and_per_job_options_win(store: Store, job_service: JobService) -> None:
    defaults = {"queue": "dq", "priority": 5, "tags": ["from-default"], "retry": {"max_attempts": 7}}
    entries = [
        {"type": "batch.job", "args": [0]},
        {"type": "batch.job", "args": [1], "options": {"priority": 9}},
        {"type": "batch.job", "args": [2], "options": {"queue": "own", "tags": ["mine"]}},
        {"type": "batch.job", "args": [3], "options": {"retry": {"max_attempts": 2}}},
    ]
    results = await job_service.enqueue_batch({"jobs": entries, "default_options": defaults})
    jobs = [await stored(store, job.id) for job, _ in results]
    assert [(j.queue, j.priority, j.tags, j.max_attempts) for j in jobs] == [
        ("dq", 5, ("from-default",), 7),
        ("dq", 9, ("from-default",), 7),
        ("own", 5, ("mine",), 7),
        ("dq", 5, ("from-default",), 2),
    ]
    assert [(j.queue, j.priority) for j, _ in results] == [(j.queue, j.priority) for j in jobs]


async def test_job_level_fields_win_over_default_options(store: Store, job_service: JobService) -> None:
    # The core envelope's top-level queue/priority are the job's own settings.
    entries = [{"type": "batch.job", "args": [], "queue": "own", "priority": 9}]
    [(job, _)] = await job_service.enqueue_batch({"jobs": entries, "default_options": {"queue": "dq", "priority": 5}})
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


async def test_default_max_batch_is_10000(store: Store, job_service: JobService) -> None:
    error = await expect_error(
        ErrorCode.PAYLOAD_TOO_LARGE, job_service.enqueue_batch({"jobs": [{"type": "x", "args": []}] * 10_001})
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
async def test_malformed_batches_are_rejected(job_service: JobService, batch: Any, code: ErrorCode) -> None:
    await expect_error(code, job_service.enqueue_batch(batch))


async def test_unique_reject_conflict_inside_a_batch_aborts_it(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    existing, _ = await job_service.enqueue(unique_body(queue="held"))
    entries = batch_entries(3)
    entries[1] = {**unique_body(), "id": new_uuid7()}
    error = await expect_error(ErrorCode.DUPLICATE, job_service.enqueue_batch({"jobs": entries}))
    assert error.details["index"] == 1
    assert error.details["existing_job_id"] == existing.id
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_two_rejecting_jobs_with_one_fingerprint_in_a_batch(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    entries = [{**unique_body(), "id": new_uuid7()}, *batch_entries(1), {**unique_body(), "id": new_uuid7()}]
    error = await expect_error(ErrorCode.INVALID_REQUEST, job_service.enqueue_batch({"jobs": entries}))
    [only] = error.details["errors"]
    assert only["index"] == 2
    assert only["code"] == "duplicate"
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_rejecting_job_after_a_batch_job_with_its_fingerprint_aborts_the_batch(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    entries = [
        {**unique_body(on_conflict="ignore"), "id": new_uuid7()},
        {**unique_body(on_conflict="reject"), "id": new_uuid7()},
    ]
    with pytest.raises(OJSError) as caught:
        await job_service.enqueue_batch({"jobs": entries})
    assert caught.value.code in (ErrorCode.DUPLICATE, ErrorCode.INVALID_REQUEST)
    await nothing_stored(store, store_redis, [e["id"] for e in entries])


async def test_ignore_inside_a_batch_returns_the_existing_job(
    store: Store, store_redis: Redis, job_service: JobService
) -> None:
    existing, _ = await job_service.enqueue(unique_body(on_conflict="ignore"))
    entries = [*batch_entries(1), {**unique_body(on_conflict="ignore"), "id": new_uuid7()}]
    results = await job_service.enqueue_batch({"jobs": entries})
    assert [(job.id, deduplicated) for job, deduplicated in results] == [
        (entries[0]["id"], False),
        (existing.id, True),
    ]
    assert await store.jobs.get(entries[1]["id"]) is None
    assert sorted(await available_ids(store, store_redis)) == sorted([existing.id, entries[0]["id"]])


async def test_replace_inside_a_batch_cancels_the_existing_job(store: Store, job_service: JobService) -> None:
    existing, _ = await job_service.enqueue(unique_body(on_conflict="replace"))
    [(job, deduplicated)] = await job_service.enqueue_batch({"jobs": [unique_body(on_conflict="replace")]})
    assert deduplicated is False
    assert (await stored(store, existing.id)).state is JobState.CANCELLED
    assert (await stored(store, job.id)).state is JobState.AVAILABLE
