"""Leases, fencing, the reaper, heartbeats and execution timeouts, on a real redis-server.

Time is passed into every store call, so expiry is tested by moving `now`
forward instead of sleeping.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.retry import DEFAULT_RETRY_POLICY
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.model.records import FailureReport
from server.service.maintenance import REAP_BATCH, MaintenanceService
from server.store.facade import Store

LEASE_MS = 1_000


async def enqueue(store: Store, **options: Any) -> str:
    job = parse_enqueue({"type": "lease.test", "args": [], "options": options}, now_ms=now_ms())
    await store.jobs.enqueue(job)
    return job.id


async def fetch(store: Store, worker: str, at: int, *, count: int = 1, lease_ms: int | None = LEASE_MS):
    return await store.leases.fetch(
        ["default"], count=count, worker_id=worker, lease_ms=lease_ms, default_lease_ms=LEASE_MS, now_ms=at
    )


def failure(code: str = "handler_error") -> FailureReport:
    return FailureReport(
        code=code, message="boom", error_type=code, details=None, backtrace=None, retryable=None, requeue=False
    )


async def test_late_ack_after_the_lease_moved_on_is_rejected(store: Store) -> None:
    job_id = await enqueue(store)
    t0 = now_ms()
    [first] = await fetch(store, "worker-a", t0)
    reaped = await store.leases.reap(now_ms=t0 + LEASE_MS, batch=100)
    assert reaped.requeued == 1
    [second] = await fetch(store, "worker-b", t0 + LEASE_MS + 1)
    assert second.id == job_id and second.lease_token == first.lease_token + 1

    with pytest.raises(OJSError) as by_worker:
        await store.leases.ack(job_id, result_json=None, worker_id="worker-a", now_ms=t0 + 1500)
    assert by_worker.value.code is ErrorCode.CONFLICT
    with pytest.raises(OJSError) as by_token:
        await store.leases.ack(job_id, result_json=None, worker_id="", lease_token=first.lease_token, now_ms=t0 + 1500)
    assert by_token.value.code is ErrorCode.CONFLICT
    with pytest.raises(OJSError):
        await store.leases.nack(job_id, failure(), worker_id="", lease_token=first.lease_token, now_ms=t0 + 1500)
    assert (await store.jobs.get(job_id)).state is JobState.ACTIVE  # type: ignore[union-attr]

    done = await store.leases.ack(
        job_id, result_json=b"1", worker_id="worker-b", lease_token=second.lease_token, now_ms=t0 + 1600
    )
    assert done.state is JobState.COMPLETED


async def test_a_dead_workers_job_is_fetched_again_after_its_lease(store: Store) -> None:
    job_id = await enqueue(store)
    t0 = now_ms()
    await fetch(store, "crashed", t0)
    assert await fetch(store, "rescuer", t0 + LEASE_MS - 1) == []
    assert (await store.leases.reap(now_ms=t0 + LEASE_MS - 1, batch=100)).requeued == 0
    await store.leases.reap(now_ms=t0 + LEASE_MS, batch=100)
    requeued = await store.jobs.get(job_id)
    assert requeued is not None and requeued.state is JobState.AVAILABLE
    assert requeued.error is not None and requeued.error.type == "visibility_timeout"
    [again] = await fetch(store, "rescuer", t0 + LEASE_MS + 1)
    assert again.id == job_id and again.attempt == 2 and again.worker_id == "rescuer"


async def test_a_job_that_keeps_losing_its_worker_ends_per_on_exhaustion(store: Store) -> None:
    job_id = await enqueue(store, retry={"max_attempts": 2, "on_exhaustion": "dead_letter"})
    clock = now_ms()
    for _ in range(2):
        await fetch(store, "flaky", clock)
        clock += LEASE_MS
        await store.leases.reap(now_ms=clock, batch=100)
    final = await store.jobs.get(job_id)
    assert final is not None and final.state is JobState.DISCARDED
    assert [e.type for e in final.errors] == ["visibility_timeout", "visibility_timeout"]
    assert job_id in await store.dead_letter.dead_letter_ids()


async def test_a_default_policy_job_that_keeps_losing_its_worker_is_discarded_after_the_default_attempts(
    store: Store,
) -> None:
    job_id = await enqueue(store)
    clock = now_ms()
    for attempt in range(1, DEFAULT_RETRY_POLICY.max_attempts + 1):
        [leased] = await fetch(store, "flaky", clock)
        assert leased.attempt == attempt
        clock += LEASE_MS
        await store.leases.reap(now_ms=clock, batch=100)
    final = await store.jobs.get(job_id)
    assert final is not None and final.state is JobState.DISCARDED
    assert [e.type for e in final.errors] == ["visibility_timeout"] * DEFAULT_RETRY_POLICY.max_attempts
    assert await fetch(store, "flaky", clock + 1) == []


async def test_always_failing_job_reaches_the_dead_letter_queue_with_its_history(store: Store) -> None:
    job_id = await enqueue(
        store, retry={"max_attempts": 4, "initial_interval": "PT1S", "jitter": False, "on_exhaustion": "dead_letter"}
    )
    clock = now_ms()
    for attempt in range(1, 5):
        [job] = await fetch(store, "w", clock)
        assert job.attempt == attempt
        failed = await store.leases.nack(job_id, failure(f"E{attempt}"), worker_id="w", now_ms=clock)
        clock = failed.next_attempt_at_ms or clock
    assert failed.state is JobState.DISCARDED
    assert [e.code for e in failed.errors] == ["E1", "E2", "E3", "E4"]
    assert [e.attempt for e in failed.errors] == [1, 2, 3, 4]
    [listed] = await store.jobs.get_many(await store.dead_letter.dead_letter_ids())
    assert listed.id == job_id and len(listed.errors) == 4


async def test_reaper_works_through_ten_thousand_expired_leases_in_bounded_batches(
    store: Store, store_redis: Redis
) -> None:
    count = 10_000
    # One batch round trip sets the stage; the reaper is what is measured.
    jobs = [parse_enqueue({"type": "bulk", "args": [i]}, now_ms=now_ms()) for i in range(count)]
    await store.jobs.enqueue_batch(jobs, now_ms=now_ms())
    t0 = now_ms()
    fetched = 0
    while fetched < count:
        fetched += len(await fetch(store, "doomed", t0, count=1000))
    assert await store_redis.zcard(store.keys.active) == count

    calls = []
    while True:
        outcome = await store.leases.reap(now_ms=t0 + LEASE_MS, batch=REAP_BATCH)
        calls.append(outcome.examined)
        if outcome.examined < REAP_BATCH:
            break
    assert max(calls) == REAP_BATCH
    assert sum(calls) == count
    assert len(calls) == count // REAP_BATCH + 1
    assert await store_redis.zcard(store.keys.active) == 0
    assert await store_redis.zcard(store.keys.available("default")) == count


async def test_maintenance_reaps_in_bounded_calls(store: Store) -> None:
    jobs = [parse_enqueue({"type": "bulk", "args": [i]}, now_ms=now_ms()) for i in range(1200)]
    await store.jobs.enqueue_batch(jobs, now_ms=now_ms())
    t0 = now_ms() - 10_000
    for _ in range(2):
        await fetch(store, "doomed", t0, count=1000)
    totals = await MaintenanceService(store, worker_retention_ms=60_000).reap_expired()
    assert totals.requeued == 1200
    assert totals.calls == 3


async def test_execution_timeout_fails_the_job_and_follows_the_retry_policy(store: Store) -> None:
    job_id = await enqueue(
        store, timeout_ms=2_000, retry={"max_attempts": 2, "initial_interval": "PT1S", "jitter": False}
    )
    t0 = now_ms()
    # The lease outlives the timeout, so only the timeout can end this attempt.
    await fetch(store, "slow", t0, lease_ms=60_000)
    assert (await store.leases.reap(now_ms=t0 + 1_999, batch=100)).timed_out == 0
    assert (await store.leases.reap(now_ms=t0 + 2_000, batch=100)).timed_out == 1
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.RETRYABLE
    assert job.error is not None and job.error.type == "timeout" and job.error.code == "timeout"
    assert job.retry_delay_ms == 1_000
    await fetch(store, "slow", t0 + 3_000, lease_ms=60_000)
    await store.leases.reap(now_ms=t0 + 5_000, batch=100)
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.DISCARDED


async def test_default_execution_timeout_applies_when_the_job_sets_none(store: Store) -> None:
    job_id = await enqueue(store, retry={"max_attempts": 1})
    t0 = now_ms()
    await store.leases.fetch(
        ["default"],
        count=1,
        worker_id="w",
        lease_ms=60_000,
        default_lease_ms=60_000,
        now_ms=t0,
        default_timeout_ms=500,
    )
    await store.leases.reap(now_ms=t0 + 500, batch=100)
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.DISCARDED and job.error is not None
    assert job.error.type == "timeout"


async def heartbeat(store: Store, worker: str, ids: list[str], at: int, **kwargs: Any):
    return await store.leases.heartbeat(
        worker_id=worker,
        job_ids=ids,
        lease_ms=kwargs.get("lease_ms"),
        default_lease_ms=LEASE_MS,
        reported_state=kwargs.get("state", ""),
        lease_token=kwargs.get("lease_token"),
        now_ms=at,
    )


async def test_heartbeat_extends_the_lease(store: Store) -> None:
    job_id = await enqueue(store, visibility_timeout_ms=3_000)
    t0 = now_ms()
    await fetch(store, "w", t0, lease_ms=None)
    beat = await heartbeat(store, "w", [job_id], t0 + 2_000)
    assert beat.extended == [job_id] and beat.new_deadline_ms == t0 + 5_000 and beat.directive == "running"
    await store.leases.reap(now_ms=t0 + 4_000, batch=100)
    assert (await store.jobs.get(job_id)).state is JobState.ACTIVE  # type: ignore[union-attr]
    await store.leases.reap(now_ms=t0 + 5_000, batch=100)
    assert (await store.jobs.get(job_id)).state is JobState.AVAILABLE  # type: ignore[union-attr]


async def test_heartbeat_reports_cancelled_and_foreign_jobs(store: Store) -> None:
    mine, cancelled, theirs = [await enqueue(store) for _ in range(3)]
    t0 = now_ms()
    by_id = {j.id: j for j in await fetch(store, "me", t0, count=2)}
    assert set(by_id) == {mine, cancelled}
    await fetch(store, "other", t0)
    await store.jobs.cancel(cancelled, reason="", now_ms=t0 + 1)
    beat = await heartbeat(store, "me", [mine, cancelled, theirs], t0 + 10, lease_ms=5_000)
    assert beat.extended == [mine]
    assert beat.cancelled == [cancelled]
    assert beat.not_held == [theirs]
    stale = await heartbeat(store, "me", [mine], t0 + 20, lease_token=by_id[mine].lease_token + 1)
    assert stale.not_held == [mine]


async def test_directives_come_from_the_job_and_from_the_operator(store: Store) -> None:
    quiet_job = parse_enqueue(
        {"type": "d", "args": [], "options": {"metadata": {"test_directive": "quiet"}}}, now_ms=now_ms()
    )
    await store.jobs.enqueue(quiet_job)
    t0 = now_ms()
    await fetch(store, "w1", t0)
    assert (await heartbeat(store, "w1", [quiet_job.id], t0 + 1)).directive == "quiet"
    await store.workers.set_worker_directive("w1", "terminate", now_ms=t0 + 2)
    assert (await heartbeat(store, "w1", [quiet_job.id], t0 + 2)).directive == "terminate"
    await store.workers.set_worker_directive("w1", "running", now_ms=t0 + 3)
    assert (await heartbeat(store, "w1", [], t0 + 3, state="quiet")).directive == "running"
    [row] = await store.workers.list_workers()
    assert row.worker_id == "w1" and row.state == "quiet" and row.last_heartbeat_ms == t0 + 3


async def test_silent_workers_are_pruned(store: Store) -> None:
    t0 = now_ms()
    await heartbeat(store, "old", [], t0 - 10_000)
    await heartbeat(store, "fresh", [], t0)
    assert await store.workers.prune_workers(cutoff_ms=t0 - 5_000, batch=100) == 1
    assert [row.worker_id for row in await store.workers.list_workers()] == ["fresh"]
