"""Queued jobs are stored without their default values, and read back as if they had them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from server.domain.clock import now_ms
from server.domain.retry import RetryPolicy
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.model.records import FailureReport, Settlement
from server.store.facade import Store

LEASE_MS = 30_000


async def enqueue(store: Store, queue: str, **options: Any) -> str:
    job = parse_enqueue({"type": "compact.test", "args": [1], "options": {"queue": queue, **options}}, now_ms=now_ms())
    await store.jobs.enqueue(job)
    return job.id


async def fetch_one(store: Store, queue: str) -> Any:
    (job,) = await store.leases.fetch(
        [queue], count=1, worker_id="w", lease_ms=None, default_lease_ms=LEASE_MS, now_ms=now_ms()
    )
    return job


def boom() -> FailureReport:
    return FailureReport(
        code="boom", message="failed", error_type="boom", details=None, backtrace=None, retryable=None, requeue=False
    )


async def test_a_default_job_stores_no_default_fields(store: Store, store_redis: Redis) -> None:
    job_id = await enqueue(store, "compact-a")
    stored: dict[Any, Any] = await store_redis.hgetall(store.keys.job(job_id))
    assert not {b"priority", b"attempt", b"meta"} & stored.keys()
    assert not [field for field in stored if field.startswith(b"r_")]
    job = await store.jobs.get(job_id)
    assert job is not None
    assert job.retry == RetryPolicy() and job.max_attempts == 3
    assert (job.priority, job.attempt, job.meta_json) == (0, 0, b"{}")


async def test_the_default_policy_still_retries_with_jitter_then_discards(store: Store) -> None:
    job_id = await enqueue(store, "compact-b")
    delays: list[int] = []
    for attempt in range(1, 4):
        if attempt > 1:
            # Make the retry due now instead of waiting for its backoff.
            await store.leases.promote(["compact-b"], now_ms=now_ms() + 10 * 60_000, batch=10)
        job = await fetch_one(store, "compact-b")
        assert job.attempt == attempt
        (reply,) = await store.leases.settle_batch(
            [Settlement(job_id, worker_id="w", failure=boom())], now_ms=now_ms(), return_jobs=True
        )
        assert reply.job is not None
        delays.append(reply.job.retry_delay_ms or 0)
        expected = JobState.DISCARDED if attempt == 3 else JobState.RETRYABLE
        assert reply.job.state is expected
    # Exponential from 1 s with jitter in [0.5, 1.5): 0.5-1.5 s, then 1-3 s.
    assert 500 <= delays[0] < 1500 and 1000 <= delays[1] < 3000


async def test_a_custom_policy_is_stored_and_honoured(store: Store, store_redis: Redis) -> None:
    policy = {"max_attempts": 1, "initial_interval": "PT2S", "jitter": False}
    job_id = await enqueue(store, "compact-c", retry=policy, priority=7)
    stored = await store_redis.hgetall(store.keys.job(job_id))
    assert stored[b"r_max"] == b"1" and stored[b"r_jit"] == b"0" and stored[b"priority"] == b"7"
    job = await fetch_one(store, "compact-c")
    assert job.retry.max_attempts == 1 and job.retry.jitter is False and job.priority == 7
    failed = await store.leases.nack(job_id, boom(), worker_id="w", now_ms=now_ms())
    assert failed.state is JobState.DISCARDED


async def test_a_queued_job_stores_no_enqueued_at_equal_to_created_at_and_reads_without_its_id_field(
    store: Store, store_redis: Redis
) -> None:
    job_id = await enqueue(store, "compact-d")
    stored: dict[Any, Any] = await store_redis.hgetall(store.keys.job(job_id))
    assert b"enqueued_at" not in stored
    # The id field is written only for earlier versions sharing the Redis; this one reads the id from the key.
    assert stored[b"id"] == job_id.encode()
    await store_redis.hdel(store.keys.job(job_id), "id")
    job = await store.jobs.get(job_id)
    assert job is not None and job.id == job_id
    assert job.enqueued_at_ms == job.created_at_ms == int(stored[b"created_at"])
    fetched = await fetch_one(store, "compact-d")
    assert (fetched.id, fetched.enqueued_at_ms) == (job_id, job.created_at_ms)


async def test_a_scheduled_job_has_no_enqueued_at_until_it_is_available(store: Store) -> None:
    later = (now_ms() // 1000 + 60) * 1000
    job_id = await enqueue(store, "compact-e", scheduled_at=datetime.fromtimestamp(later / 1000, UTC).isoformat())
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.SCHEDULED and job.enqueued_at_ms is None
    await store.leases.promote(["compact-e"], now_ms=later + 1, batch=10)
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.AVAILABLE and job.enqueued_at_ms == later + 1


async def test_hashes_in_the_earlier_layout_still_read(store: Store, store_redis: Redis) -> None:
    """Earlier versions stored the id in the hash, and enqueued_at only once a job was available."""
    old: dict[FieldT, EncodableT] = {
        "type": "compact.old",
        "queue": "compact-f",
        "args": "[1]",
        "created_at": "1000",
    }
    available, scheduled = "019a0000-0000-7000-8000-000000000001", "019a0000-0000-7000-8000-000000000002"
    await store_redis.hset(
        store.keys.job(available), mapping={**old, "id": available, "state": "available", "enqueued_at": "2000"}
    )
    await store_redis.hset(store.keys.job(scheduled), mapping={**old, "id": scheduled, "state": "scheduled"})
    first, second = await store.jobs.get_many([available, scheduled])
    assert (first.id, first.enqueued_at_ms, first.created_at_ms) == (available, 2000, 1000)
    assert (second.id, second.enqueued_at_ms) == (scheduled, None)
