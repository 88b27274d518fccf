"""Dead letter operations, terminal-job retention and the promoter, on a real redis-server."""

from __future__ import annotations

from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.model.records import FailureReport
from server.store.facade import Store

DAY_MS = 86_400_000


async def dead_job(store: Store, at: int, **envelope: object) -> str:
    body: dict[str, object] = {
        "type": "dead.test",
        "args": [],
        "options": {"retry": {"max_attempts": 1, "on_exhaustion": "dead_letter"}},
    }
    body.update(envelope)
    job = parse_enqueue(body, now_ms=at)
    await store.jobs.enqueue(job)
    await store.leases.fetch(["default"], count=1, worker_id="w", lease_ms=None, default_lease_ms=60_000, now_ms=at)
    failure = FailureReport(
        code="handler_error", message="x", error_type="", details=None, backtrace=None, retryable=None, requeue=False
    )
    await store.leases.nack(job.id, failure, worker_id="w", now_ms=at)
    return job.id


async def test_retry_from_the_dead_letter_queue_resets_attempts_and_keeps_history(
    store: Store, store_redis: Redis
) -> None:
    job_id = await dead_job(store, now_ms())
    assert await store_redis.pttl(store.keys.job(job_id)) > 0
    retried = await store.dead_letter.retry_dead(job_id, now_ms=now_ms())
    assert retried.state is JobState.AVAILABLE and retried.attempt == 0 and len(retried.errors) == 1
    assert await store_redis.pttl(store.keys.job(job_id)) == -1
    assert await store.dead_letter.dead_letter_ids() == []
    [again] = await store.leases.fetch(
        ["default"], count=1, worker_id="w", lease_ms=None, default_lease_ms=1, now_ms=now_ms()
    )
    assert again.id == job_id and again.attempt == 1


async def test_delete_removes_the_job_data(store: Store, store_redis: Redis) -> None:
    job_id = await dead_job(store, now_ms())
    assert await store.dead_letter.delete_dead(job_id) is True
    assert await store.jobs.get(job_id) is None
    assert await store_redis.exists(store.keys.errors(job_id)) == 0
    assert await store.dead_letter.delete_dead(job_id) is False


async def test_dead_letter_retention_by_age_and_count(store: Store) -> None:
    now = now_ms()
    max_age = store.retention.dead_letter_ms
    old = await dead_job(store, now - max_age - 1)
    kept = [await dead_job(store, now - i) for i in range(3)]
    assert await store.dead_letter.prune_dead(now_ms=now, batch=100) == 1
    assert old not in await store.dead_letter.dead_letter_ids()
    assert await store.jobs.get(old) is None
    assert set(await store.dead_letter.dead_letter_ids()) == set(kept)


async def test_dead_letter_count_cap_removes_the_oldest(store_redis: Redis) -> None:
    from server.model.records import Retention
    from server.store.keys import KeySchema

    store = Store(store_redis, KeySchema(f"cap{now_ms()}"), retention=Retention(dead_letter_max_count=2))
    await store.load_scripts()
    now = now_ms()
    ids = [await dead_job(store, now - 100 + i) for i in range(5)]
    assert await store.dead_letter.prune_dead(now_ms=now, batch=100) == 3
    assert await store.dead_letter.dead_letter_ids() == [ids[4], ids[3]]


async def test_terminal_jobs_expire_and_live_ones_never_do(store: Store, store_redis: Redis) -> None:
    now = now_ms()
    jobs = [parse_enqueue({"type": "r", "args": [i]}, now_ms=now) for i in range(3)]
    for job in jobs:
        await store.jobs.enqueue(job)
    completed, cancelled, waiting = (j.id for j in jobs)
    await store.leases.fetch(["default"], count=1, worker_id="w", lease_ms=None, default_lease_ms=60_000, now_ms=now)
    await store.leases.ack(completed, result_json=None, worker_id="w", now_ms=now)
    await store.jobs.cancel(cancelled, reason="", now_ms=now)
    completed_ttl = await store_redis.pttl(store.keys.job(completed))
    assert 0 < completed_ttl <= store.retention.completed_ms
    assert completed_ttl > store.retention.completed_ms - 60_000
    assert 0 < await store_redis.pttl(store.keys.job(cancelled)) <= store.retention.cancelled_ms
    assert await store_redis.pttl(store.keys.job(waiting)) == -1


async def test_promoter_makes_due_jobs_available_in_every_queue(store: Store) -> None:
    now = now_ms()
    jobs = [
        parse_enqueue({"type": "p", "args": [], "options": {"queue": q, "scheduled_at": "+PT1S"}}, now_ms=now)
        for q in ("alpha", "beta")
    ]
    for job in jobs:
        await store.jobs.enqueue(job)
    queues = await store.queues.queue_names()
    assert await store.leases.promote(queues, now_ms=now + 999, batch=10) == 0
    assert await store.leases.promote(queues, now_ms=now + 1000, batch=10) == 2
    for job in jobs:
        stored = await store.jobs.get(job.id)
        assert stored is not None and stored.state is JobState.AVAILABLE
