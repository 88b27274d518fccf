"""Jobs that must start before expires_at, on a real redis-server."""

from __future__ import annotations

from typing import Any

import orjson

from server.domain.clock import now_ms
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.store.facade import Store


async def enqueue(store: Store, at: int, **options: Any) -> str:
    job = parse_enqueue({"type": "ttl.test", "args": [], "options": options}, now_ms=at)
    await store.jobs.enqueue(job)
    return job.id


async def fetch(store: Store, at: int) -> list[str]:
    jobs = await store.leases.fetch(
        ["default"], count=10, worker_id="w", lease_ms=None, default_lease_ms=60_000, now_ms=at
    )
    return [j.id for j in jobs]


async def test_fetch_discards_an_expired_job_instead_of_delivering_it(store: Store) -> None:
    t0 = now_ms()
    expired = await enqueue(store, t0, expires_at="+PT2S")
    fresh = await enqueue(store, t0, expires_at="+PT1H")
    assert await fetch(store, t0 + 2_000) == [fresh]
    job = await store.jobs.get(expired)
    assert job is not None and job.state is JobState.DISCARDED
    assert job.completed_at_ms is None and job.discarded_at_ms == t0 + 2_000
    assert job.error is not None and job.error.code == "expired"
    events = [e for e in await store.events.read_events(after=None, count=100) if e.job_id == expired]
    assert events[-1].type == "job.expired"
    assert orjson.loads(events[-1].data_json)["expired_at"] == t0 + 2_000


async def test_sweeper_expires_jobs_nobody_fetches(store: Store) -> None:
    t0 = now_ms()
    waiting = await enqueue(store, t0, expires_at="+PT1S")
    scheduled = await enqueue(store, t0, expires_at="+PT1S", scheduled_at="+PT5S")
    pending = await enqueue(store, t0, expires_at="+PT1S", pending=True)
    later = await enqueue(store, t0, expires_at="+PT10S")
    assert await store.leases.expire(now_ms=t0 + 999, batch=100) == (0, 0)
    assert await store.leases.expire(now_ms=t0 + 1_000, batch=100) == (3, 3)
    for job_id in (waiting, scheduled, pending):
        job = await store.jobs.get(job_id)
        assert job is not None and job.state is JobState.DISCARDED
    assert await fetch(store, t0 + 6_000) == [later]


async def test_a_started_job_no_longer_expires(store: Store) -> None:
    t0 = now_ms()
    job_id = await enqueue(store, t0, expires_at="+PT1S")
    assert await fetch(store, t0) == [job_id]
    assert await store.leases.expire(now_ms=t0 + 5_000, batch=100) == (0, 0)
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.ACTIVE


async def test_cancelled_job_leaves_the_expiring_set(store: Store) -> None:
    t0 = now_ms()
    job_id = await enqueue(store, t0, expires_at="+PT1S")
    await store.jobs.cancel(job_id, reason="", now_ms=t0)
    assert await store.leases.expire(now_ms=t0 + 5_000, batch=100) == (0, 0)
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.CANCELLED
