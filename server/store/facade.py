"""The store as the composition root builds it: one object holding each part of the store."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from redis.asyncio import Redis

from server.model.records import Retention
from server.store.admin import AdminStore
from server.store.context import StoreContext, draw_jitter, script_context
from server.store.cron import CronStore
from server.store.dead_letter import DeadLetterStore
from server.store.errors import RoundTripObserver, translate_redis_errors
from server.store.events import EventStore
from server.store.jobs import JobStore
from server.store.keys import KeySchema
from server.store.leases import LeaseStore
from server.store.metrics import MetricsStore
from server.store.progress import ProgressStore
from server.store.queues import QueueStore
from server.store.scripts import Scripts
from server.store.workers import WorkerStore
from server.store.workflows import WorkflowStore


class Store:
    """Every Redis read and write of the server, by concern; each state transition is one Lua script."""

    def __init__(
        self,
        redis: Redis,
        keys: KeySchema,
        *,
        events_maxlen: int = 100_000,
        retention: Retention | None = None,
        jitter: Callable[[], float] = draw_jitter,
    ) -> None:
        retention = retention or Retention()
        # Marks the notifications of this store's enqueues (see StoreContext.origin_script_context).
        self.origin = secrets.token_hex(8)
        self._ctx = StoreContext(
            redis=redis,
            keys=keys,
            scripts=Scripts(redis),
            events_maxlen=events_maxlen,
            retention=retention,
            script_context=script_context(keys, retention),
            origin_script_context=script_context(keys, retention, origin=self.origin),
            jitter=jitter,
        )
        self.jobs = JobStore(self._ctx)
        self.leases = LeaseStore(self._ctx)
        self.queues = QueueStore(self._ctx)
        self.events = EventStore(self._ctx)
        self.dead_letter = DeadLetterStore(self._ctx)
        self.workflows = WorkflowStore(self._ctx, self.jobs)
        self.cron = CronStore(self._ctx)
        self.workers = WorkerStore(self._ctx)
        self.progress = ProgressStore(self._ctx)
        self.admin = AdminStore(self._ctx)
        self.metrics = MetricsStore(self._ctx)

    @property
    def keys(self) -> KeySchema:
        return self._ctx.keys

    @property
    def retention(self) -> Retention:
        return self._ctx.retention

    def observe_round_trips(self, observer: RoundTripObserver | None) -> None:
        """Report every round trip (store operation, seconds, error) to `observer`, for metrics."""
        self._ctx.round_trips.observer = observer

    @translate_redis_errors
    async def load_scripts(self) -> None:
        await self._ctx.scripts.preload(self._ctx.redis)

    @translate_redis_errors
    async def ping_ms(self) -> float:
        started = time.perf_counter()
        await self._ctx.redis.ping()
        return (time.perf_counter() - started) * 1000
