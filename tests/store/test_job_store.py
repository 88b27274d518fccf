"""The Lua transitions, driven directly on a real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.job import NewJob
from server.domain.retry import DEFAULT_RETRY_POLICY, RetryPolicy, backoff_delay_ms
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.model.records import FailureReport
from server.store.facade import Store
from server.store.keys import KeySchema
from tests.store.round_trips import count_round_trips

LEASE_MS = 30_000


def new_job(**envelope: Any) -> NewJob:
    body: dict[str, Any] = {"type": "test.job", "args": []}
    body.update(envelope)
    return parse_enqueue(body, now_ms=envelope.pop("_now", now_ms()))


async def fetch(store: Store, *queues: str, count: int = 1, worker: str = "w1", at: int | None = None):
    return await store.leases.fetch(
        list(queues) or ["default"],
        count=count,
        worker_id=worker,
        lease_ms=None,
        default_lease_ms=LEASE_MS,
        now_ms=at if at is not None else now_ms(),
    )


def failure(
    code: str = "handler_error", *, error_type: str = "", retryable: bool | None = None, requeue: bool = False
) -> FailureReport:
    return FailureReport(
        code=code,
        message="it broke",
        error_type=error_type or code,
        details=None,
        backtrace=None,
        retryable=retryable,
        requeue=requeue,
    )


async def test_enqueue_then_get_keeps_args_byte_exact(store: Store) -> None:
    job = new_job(args=[2**60, 3.14, "x", None, {"b": 1, "a": [True]}], meta={"k": "v"}, x_extra={"n": 1})
    outcome = await store.jobs.enqueue(job)
    assert outcome.state is JobState.AVAILABLE
    stored = await store.jobs.get(job.id)
    assert stored is not None
    assert stored.state is JobState.AVAILABLE
    assert stored.args_json == b'[1152921504606846976,3.14,"x",null,{"b":1,"a":[true]}]'
    assert orjson.loads(stored.meta_json) == {"k": "v"}
    assert orjson.loads(stored.extra_json or b"{}") == {"x_extra": {"n": 1}}
    assert stored.attempt == 0
    assert stored.enqueued_at_ms == outcome.enqueued_at_ms


async def test_duplicate_id_is_rejected(store: Store) -> None:
    job = new_job()
    await store.jobs.enqueue(job)
    with pytest.raises(OJSError) as caught:
        await store.jobs.enqueue(job)
    assert caught.value.code is ErrorCode.DUPLICATE


async def test_priority_first_then_fifo(store: Store) -> None:
    ids_by_priority: dict[int, list[str]] = {}
    for i in range(30):
        priority = (10, 0, -10)[i % 3]
        job = new_job(options={"priority": priority})
        ids_by_priority.setdefault(priority, []).append(job.id)
        await store.jobs.enqueue(job)
    fetched = await fetch(store, count=30)
    assert [j.id for j in fetched] == ids_by_priority[10] + ids_by_priority[0] + ids_by_priority[-10]
    assert all(j.state is JobState.ACTIVE and j.attempt == 1 for j in fetched)


async def test_fetch_walks_queues_in_the_given_order(store: Store) -> None:
    low = new_job(options={"queue": "low"})
    high = new_job(options={"queue": "high"})
    await store.jobs.enqueue(low)
    await store.jobs.enqueue(high)
    first = await fetch(store, "empty", "high", "low")
    assert [j.id for j in first] == [high.id]
    rest = await fetch(store, "high", "low", count=5)
    assert [j.id for j in rest] == [low.id]
    assert await fetch(store, "high", "low") == []


async def test_two_concurrent_fetchers_never_share_a_job(store: Store) -> None:
    job = new_job()
    await store.jobs.enqueue(job)
    results = await asyncio.gather(*(fetch(store, worker=f"w{i}") for i in range(20)))
    winners = [r for r in results if r]
    assert len(winners) == 1
    assert winners[0][0].id == job.id


async def test_many_jobs_many_fetchers_each_delivered_once(store: Store) -> None:
    jobs = [new_job() for _ in range(200)]
    for job in jobs:
        await store.jobs.enqueue(job)
    results = await asyncio.gather(*(fetch(store, count=7, worker=f"w{i}") for i in range(40)))
    delivered = [j.id for batch in results for j in batch]
    assert sorted(delivered) == sorted(j.id for j in jobs)


async def test_ack_completes_and_stores_result(store: Store) -> None:
    job = new_job()
    await store.jobs.enqueue(job)
    [active] = await fetch(store)
    done = await store.leases.ack(job.id, result_json=b'[1,"two"]', worker_id="w1", now_ms=now_ms())
    assert done.state is JobState.COMPLETED
    assert done.result_json == b'[1,"two"]'
    assert done.completed_at_ms is not None and done.completed_at_ms >= (active.started_at_ms or 0)


@pytest.mark.parametrize("setup", ["available", "completed", "scheduled"])
async def test_ack_outside_active_is_a_conflict(store: Store, setup: str) -> None:
    job = new_job(options={"delay_until": "2099-01-01T00:00:00Z"}) if setup == "scheduled" else new_job()
    await store.jobs.enqueue(job)
    if setup == "completed":
        await fetch(store)
        await store.leases.ack(job.id, result_json=None, worker_id="", now_ms=now_ms())
    with pytest.raises(OJSError) as caught:
        await store.leases.ack(job.id, result_json=None, worker_id="", now_ms=now_ms())
    assert caught.value.code is ErrorCode.CONFLICT
    assert caught.value.details["current_state"] == setup


async def test_ack_by_another_worker_is_rejected(store: Store) -> None:
    job = new_job()
    await store.jobs.enqueue(job)
    await fetch(store, worker="owner")
    with pytest.raises(OJSError) as caught:
        await store.leases.ack(job.id, result_json=None, worker_id="intruder", now_ms=now_ms())
    assert caught.value.code is ErrorCode.CONFLICT
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.state is JobState.ACTIVE


async def test_unknown_job_is_not_found(store: Store) -> None:
    with pytest.raises(OJSError) as caught:
        await store.leases.ack("0190c5a0-0000-7000-8000-000000000000", result_json=None, worker_id="", now_ms=now_ms())
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert await store.jobs.get("0190c5a0-0000-7000-8000-000000000000") is None


async def test_nack_schedules_retry_and_fetch_promotes_it_when_due(store: Store) -> None:
    job = new_job(options={"retry": {"initial_interval": "PT10S", "jitter": False}})
    await store.jobs.enqueue(job)
    start = now_ms()
    await fetch(store, at=start)
    failed = await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=start)
    assert failed.state is JobState.RETRYABLE
    assert failed.retry_delay_ms == 10_000
    assert failed.next_attempt_at_ms == start + 10_000
    assert failed.error is not None and failed.error.attempt == 1
    assert len(failed.errors) == 1
    assert await fetch(store, at=start + 9_999) == []
    [again] = await fetch(store, at=start + 10_000)
    assert again.id == job.id and again.attempt == 2
    done = await store.leases.ack(job.id, result_json=None, worker_id="w1", now_ms=start + 10_001)
    assert done.error is None and len(done.errors) == 1


@pytest.mark.parametrize(
    "policy",
    [
        {"backoff_strategy": "exponential", "initial_interval": "PT1S", "backoff_coefficient": 2.0},
        {"backoff_strategy": "linear", "initial_interval": "PT0.5S"},
        {"backoff_strategy": "constant", "initial_interval": "PT2S"},
        {"backoff_strategy": "polynomial", "initial_interval": "PT0.1S", "backoff_coefficient": 3.0},
        {"initial_interval": "PT1S", "backoff_coefficient": 10.0, "max_interval": "PT2S"},
    ],
)
async def test_lua_backoff_matches_the_reference_function(store: Store, policy: dict[str, Any]) -> None:
    job = new_job(options={"retry": {**policy, "jitter": False, "max_attempts": 0}})
    await store.jobs.enqueue(job)
    clock = now_ms()
    for attempt in range(1, 8):
        await fetch(store, at=clock)
        failed = await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=clock)
        assert failed.retry_delay_ms == backoff_delay_ms(job.retry, attempt)
        clock = failed.next_attempt_at_ms or clock


@pytest.mark.parametrize("jitter", [0.5, 1.0, 1.4999])
async def test_lua_backoff_of_a_default_policy_job_matches_the_reference_function(
    store_redis: Redis, jitter: float
) -> None:
    """A job without its own policy stores no retry fields: Lua takes the defaults from the script context."""
    store = Store(store_redis, KeySchema(f"parity-{uuid.uuid4().hex[:8]}"), events_maxlen=1000, jitter=lambda: jitter)
    await store.load_scripts()
    job = new_job()
    assert job.retry == DEFAULT_RETRY_POLICY
    await store.jobs.enqueue(job)
    clock = now_ms()
    for attempt in range(1, DEFAULT_RETRY_POLICY.max_attempts):
        await fetch(store, at=clock)
        failed = await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=clock)
        assert failed.state is JobState.RETRYABLE
        assert failed.retry_delay_ms == backoff_delay_ms(DEFAULT_RETRY_POLICY, attempt, jitter)
        clock = failed.next_attempt_at_ms or clock
    await fetch(store, at=clock)
    last = await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=clock)
    assert last.state is JobState.DISCARDED and last.attempt == DEFAULT_RETRY_POLICY.max_attempts


async def test_jitter_stays_within_half_to_one_and_a_half(store: Store) -> None:
    job = new_job(options={"retry": {"initial_interval": "PT2S", "jitter": True}})
    await store.jobs.enqueue(job)
    await fetch(store)
    failed = await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=now_ms())
    assert failed.retry_delay_ms is not None and 1000 <= failed.retry_delay_ms <= 3000


async def test_exhausted_attempts_discard(store: Store) -> None:
    job = new_job(options={"retry": {"max_attempts": 1}})
    await store.jobs.enqueue(job)
    await fetch(store)
    failed = await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=now_ms())
    assert failed.state is JobState.DISCARDED
    assert failed.discarded_at_ms is not None
    assert await store.dead_letter.dead_letter_ids() == []


async def test_dead_letter_policy_records_the_job(store: Store) -> None:
    job = new_job(options={"retry": {"max_attempts": 1, "on_exhaustion": "dead_letter"}})
    await store.jobs.enqueue(job)
    await fetch(store)
    await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=now_ms())
    assert await store.dead_letter.dead_letter_ids() == [job.id]


@pytest.mark.parametrize(
    ("patterns", "error_type", "discarded"),
    [(["FatalError"], "FatalError", True), (["Auth.*"], "Auth.TokenExpired", True), (["Auth.*"], "Authz", False)],
)
async def test_non_retryable_errors(store: Store, patterns: list[str], error_type: str, discarded: bool) -> None:
    job = new_job(options={"retry": {"non_retryable_errors": patterns}})
    await store.jobs.enqueue(job)
    await fetch(store)
    failed = await store.leases.nack(job.id, failure(error_type=error_type), worker_id="w1", now_ms=now_ms())
    assert (failed.state is JobState.DISCARDED) is discarded


async def test_explicitly_non_retryable_failure_discards(store: Store) -> None:
    job = new_job()
    await store.jobs.enqueue(job)
    await fetch(store)
    failed = await store.leases.nack(job.id, failure(retryable=False), worker_id="w1", now_ms=now_ms())
    assert failed.state is JobState.DISCARDED and failed.attempt == 1


async def test_requeue_returns_the_job_at_once_without_recording_a_failure(store: Store) -> None:
    job = new_job()
    await store.jobs.enqueue(job)
    await fetch(store)
    back = await store.leases.nack(job.id, failure(requeue=True), worker_id="w1", now_ms=now_ms())
    assert back.state is JobState.AVAILABLE and back.errors == ()
    [again] = await fetch(store)
    assert again.id == job.id and again.attempt == 2


@pytest.mark.parametrize("state", ["available", "active", "scheduled", "pending"])
async def test_cancel_non_terminal(store: Store, state: str) -> None:
    options: dict[str, Any] = {}
    if state == "scheduled":
        options["delay_until"] = "2099-01-01T00:00:00Z"
    if state == "pending":
        options["pending"] = True
    job = new_job(options=options)
    await store.jobs.enqueue(job)
    if state == "active":
        await fetch(store)
    previous, cancelled = await store.jobs.cancel(job.id, reason="", now_ms=now_ms())
    assert previous.value == state
    assert cancelled.state is JobState.CANCELLED and cancelled.cancelled_at_ms is not None
    assert cancelled.completed_at_ms is None
    assert await fetch(store, at=now_ms() + 10**12) == []


async def test_cancel_terminal_is_a_conflict(store: Store) -> None:
    job = new_job()
    await store.jobs.enqueue(job)
    await store.jobs.cancel(job.id, reason="", now_ms=now_ms())
    with pytest.raises(OJSError) as caught:
        await store.jobs.cancel(job.id, reason="", now_ms=now_ms())
    assert caught.value.code is ErrorCode.CONFLICT


async def test_scheduled_job_is_invisible_until_due(store: Store) -> None:
    start = now_ms()
    job = new_job(options={"scheduled_at": "+PT30S"}, _now=start)
    outcome = await store.jobs.enqueue(job)
    assert outcome.state is JobState.SCHEDULED
    assert await fetch(store, at=start + 29_000) == []
    [due] = await fetch(store, at=start + 30_000)
    assert due.id == job.id


async def test_activate_releases_a_pending_job(store: Store) -> None:
    job = new_job(options={"pending": True})
    await store.jobs.enqueue(job)
    assert await fetch(store) == []
    released = await store.jobs.activate(job.id, now_ms=now_ms())
    assert released.state is JobState.AVAILABLE
    [got] = await fetch(store)
    assert got.id == job.id
    with pytest.raises(OJSError):
        await store.jobs.activate(job.id, now_ms=now_ms())


async def test_lifecycle_events_are_logged_in_order(store: Store) -> None:
    job = new_job(options={"queue": "events"})
    await store.jobs.enqueue(job)
    await fetch(store, "events")
    await store.leases.ack(job.id, result_json=None, worker_id="w1", now_ms=now_ms())
    events = [e for e in await store.events.read_events(after=None, count=100) if e.job_id == job.id]
    assert [e.type for e in events] == ["job.enqueued", "job.started", "job.completed"]
    completed = orjson.loads(events[-1].data_json)
    assert completed["job_type"] == "test.job" and completed["queue"] == "events"
    assert completed["attempt"] == 1 and "duration_ms" in completed
    later = await store.events.read_events(after=events[0].cursor, count=100)
    assert [e.type for e in later if e.job_id == job.id] == ["job.started", "job.completed"]


async def test_each_transition_is_one_round_trip(
    store: Store, store_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_round_trips(monkeypatch, store_redis)
    jobs = [new_job() for _ in range(3)]
    counts = {}
    actions: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("enqueue", lambda: store.jobs.enqueue(jobs[0])),
        ("fetch", lambda: fetch(store, count=1)),
        ("ack", lambda: store.leases.ack(jobs[0].id, result_json=None, worker_id="w1", now_ms=now_ms())),
        ("enqueue2", lambda: store.jobs.enqueue(jobs[1])),
        ("cancel", lambda: store.jobs.cancel(jobs[1].id, reason="", now_ms=now_ms())),
        ("enqueue3", lambda: store.jobs.enqueue(jobs[2])),
        ("fetch3", lambda: fetch(store, count=5)),
        ("nack", lambda: store.leases.nack(jobs[2].id, failure(), worker_id="w1", now_ms=now_ms())),
    ]
    for name, action in actions:
        calls.clear()
        await action()
        counts[name] = len(calls)
    assert counts == dict.fromkeys(counts, 1), counts


async def test_policy_round_trips_through_the_hash(store: Store) -> None:
    policy = {
        "max_attempts": 7,
        "initial_interval": "PT0.25S",
        "backoff_coefficient": 1.5,
        "max_interval": "PT1M",
        "jitter": False,
        "non_retryable_errors": ["A", "B.*"],
        "on_exhaustion": "dead_letter",
        "backoff_strategy": "polynomial",
    }
    job = new_job(options={"retry": policy})
    await store.jobs.enqueue(job)
    stored = await store.jobs.get(job.id)
    assert stored is not None
    assert stored.retry == job.retry
    assert isinstance(stored.retry, RetryPolicy) and stored.max_attempts == 7


async def test_a_script_call_that_fails_midway_leaves_no_buffered_events_to_the_next(store: Store) -> None:
    # The counters and events a call buffers are written at its end; a call that fails first must not leave
    # them to a later call (a Redis 7 function library keeps its state between calls).
    first, second = new_job(), new_job()
    for job in (first, second):
        await store.jobs.enqueue(job)
    await fetch(store, count=2)
    k = store.keys
    ack_row = ["", "ack", "w1", "", "0", ""]
    keys = [k.active, k.events, k.sequence, k.dead, k.expiring]
    ctx = store._ctx
    args: list[Any] = [now_ms(), ctx.events_maxlen, 0, 0, 0, 50, "0", ctx.script_context]
    # The second entry has no id: the script fails after acking the first.
    with pytest.raises(Exception, match="concatenate"):
        await ctx.scripts.call("settle_batch", keys, [*args, orjson.dumps([[first.id, *ack_row[1:]], [None]])])
    await ctx.scripts.call("settle_batch", keys, [*args, orjson.dumps([[second.id, *ack_row[1:]]])])
    completed = [e.job_id for e in await store.events.read_events(after=None, count=100) if e.type == "job.completed"]
    assert completed == [second.id]


async def test_stores_with_other_prefixes_on_one_server_keep_to_their_own_keys(store_redis: Redis) -> None:
    # A script context is cached by its text between calls (see lua/include/script_context.lua): calls that
    # alternate between two prefixes must each use their own.
    stores = [Store(store_redis, KeySchema(f"ctx{uuid.uuid4().hex[:8]}")) for _ in range(2)]
    jobs = [new_job(), new_job()]
    for _ in range(2):
        for one, job in zip(stores, jobs, strict=True):
            if await one.jobs.get(job.id) is None:
                await one.jobs.enqueue(job)
            else:
                assert [j.id for j in await fetch(one)] == [job.id]
    for one, job in zip(stores, jobs, strict=True):
        assert (await one.jobs.get(job.id)) is not None
        assert await store_redis.exists(one.keys.job(jobs[1 - jobs.index(job)].id)) == 0
