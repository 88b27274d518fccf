"""Store tests run against every Redis major line the scripts must support.

`store` is a Store under a fresh key prefix on a shared redis-server; `job_service` and `queue_service` are the
services over it. Job bodies and short forms of the store calls are in helpers.py."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.service.jobs import JobService
from server.service.queues import QueueService
from server.store.facade import Store
from server.store.keys import KeySchema
from tests.store.helpers import LEASE_MS

_prefixes = itertools.count()


@pytest.fixture(params=["redis_url", "redis62_url"], ids=["redis-7", "redis-6.2"])
def store_redis_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.fixture
async def store_redis(store_redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(store_redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# The servers whose script cache already holds every script (nothing in the tests flushes it).
_scripts_loaded: set[str] = set()


@pytest.fixture
async def store(store_redis: Redis, store_redis_url: str) -> Store:
    # A fresh prefix per test isolates it without flushing the shared server.
    job_store = Store(store_redis, KeySchema(f"t{next(_prefixes)}"), events_maxlen=1000)
    if store_redis_url not in _scripts_loaded:
        await job_store.load_scripts()
        _scripts_loaded.add(store_redis_url)
    return job_store


@pytest.fixture
def job_service(store: Store) -> JobService:
    return JobService(store, default_visibility_timeout_ms=LEASE_MS)


@pytest.fixture
def queue_service(store: Store) -> QueueService:
    return QueueService(store)
