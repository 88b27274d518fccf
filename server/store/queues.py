"""Queues: the registry, pause and resume, and statistics from the per-queue counters."""

from __future__ import annotations

from typing import cast

from server.model.records import QueueRow, QueueStatsRow
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors

# Minute buckets summed for the last-hour figures.
_HOUR_MINUTES = 60


class QueueStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def queue_names(self) -> list[str]:
        names = cast(list[bytes], await self._ctx.redis.hkeys(self._ctx.keys.queues))
        return sorted(name.decode() for name in names)

    @translate_redis_errors
    async def list_queues(self) -> list[QueueRow]:
        k = self._ctx.keys
        registry = cast(dict[bytes, bytes], await self._ctx.redis.hgetall(k.queues))
        names = sorted(name.decode() for name in registry)
        if not names:
            return []
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.paused)
            for name in names:
                pipe.zcard(k.available(name))
            paused, *counts = await pipe.execute()
        return [
            QueueRow(
                name=name,
                created_at_ms=int(registry[name.encode()]),
                available=int(count),
                paused=name.encode() in paused,
                paused_at_ms=int(paused[name.encode()]) if name.encode() in paused else None,
            )
            for name, count in zip(names, counts, strict=True)
        ]

    @translate_redis_errors
    async def set_paused(self, queue: str, *, paused: bool, now_ms: int) -> QueueRow:
        c = self._ctx
        k = c.keys
        since = await c.scripts.call(
            "queue_pause",
            [k.paused, k.queues, k.events],
            [now_ms, c.events_maxlen, queue, "1" if paused else "0", c.script_context, k.available(queue)],
        )
        async with c.redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.queues, queue)
            pipe.zcard(k.available(queue))
            created, available = await pipe.execute()
        return QueueRow(
            name=queue,
            created_at_ms=int(created or now_ms),
            available=int(available),
            paused=paused,
            paused_at_ms=int(since) if since else None,
        )

    @translate_redis_errors
    async def queue_stats(self, queue: str, *, now_ms: int) -> QueueStatsRow:
        """Counts from the queue's counters and per-minute buckets: one round trip, no scans."""
        k = self._ctx.keys
        minute = now_ms // 60_000
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.available(queue))
            pipe.hgetall(k.queue_counts(queue))
            pipe.hget(k.paused, queue)
            pipe.hexists(k.queues, queue)
            for back in range(_HOUR_MINUTES):
                pipe.hgetall(k.queue_minute(queue, minute - back))
            available, counts, paused_at, known, *minutes = await pipe.execute()

        def total(buckets: list[dict[bytes, bytes]], field: bytes) -> int:
            return sum(int(bucket.get(field, 0)) for bucket in buckets)

        def count(field: bytes) -> int:
            return max(int(counts.get(field, 0)), 0)

        completed_hour = total(minutes, b"completed")
        started_hour = total(minutes, b"started")
        return QueueStatsRow(
            name=queue,
            known=bool(known),
            available=int(available),
            active=count(b"active"),
            scheduled=count(b"scheduled"),
            retryable=count(b"retryable"),
            pending=count(b"pending"),
            dead=count(b"dead"),
            completed=count(b"completed"),
            discarded=count(b"discarded"),
            cancelled=count(b"cancelled"),
            paused=paused_at is not None,
            completed_last_hour=completed_hour,
            failed_last_hour=total(minutes, b"failed"),
            avg_duration_ms=total(minutes, b"duration_ms") / completed_hour if completed_hour else 0.0,
            avg_wait_ms=total(minutes, b"wait_ms") / started_hour if started_hour else 0.0,
            # The last complete minute: the current one is still filling.
            throughput_per_second=total(minutes[1:2], b"completed") / 60.0,
        )
