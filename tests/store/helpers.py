"""Job bodies and short forms of the store calls the store and service tests make (see also conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.job import NewJob, StoredJob
from server.domain.validation import parse_enqueue
from server.model.records import FailureReport
from server.store.facade import Store

LEASE_MS = 30_000
WORKER = "store-worker"
QUEUE = "jobs"
BY_USER = {"keys": ["type", "args"], "args_keys": ["user_id"]}
DEAD_LETTER = {"max_attempts": 1, "on_exhaustion": "dead_letter"}


def body(
    *, queue: str = QUEUE, args: list[Any] | None = None, job_type: str = "store.job", **options: Any
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
