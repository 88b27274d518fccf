"""Cluster-wide job metrics as the scripts keep them in Redis, read for a Prometheus scrape.

Every process serving one Redis counts into the same hashes inside its scripts
(see "Metrics" in lua/lib.lua), so any process's scrape shows exact figures for
all of them: two round trips per scrape (the queue registry, then one pipeline).
"""

from __future__ import annotations

from typing import cast

from server.model.metrics import (
    DURATION_BOUNDS_MS,
    QUEUE_TIME_BOUNDS_MS,
    STATE_GAUGES,
    WORKER_ACTIVE_WINDOW_MS,
    ClusterMetrics,
    Histogram,
    Overview,
    QueueMetrics,
)
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors


def _histogram(table: dict[tuple[str, ...], Histogram], label: tuple[str, ...], size: int) -> Histogram:
    found = table.get(label)
    if found is None:
        found = table[label] = Histogram([0] * (size + 1))
    return found


def decode_queue_metrics(
    queue: str, available: int, counts: dict[bytes, bytes], raw: dict[bytes, bytes]
) -> QueueMetrics:
    depth = {"available": available}
    for state in STATE_GAUGES:
        depth[state] = max(0, int(counts.get(state.encode(), b"0")))
    counters: dict[tuple[str, str], int] = {}
    durations: dict[tuple[str, ...], Histogram] = {}
    queue_times: dict[tuple[str, ...], Histogram] = {}
    for field, value in raw.items():
        parts = field.decode().split("|")
        amount = int(value)
        kind = parts[0]
        if kind == "c" and len(parts) == 3:
            counters[(parts[1], parts[2])] = amount
        elif kind == "d" and len(parts) == 4:
            histogram = _histogram(durations, (parts[1], parts[2]), len(DURATION_BOUNDS_MS))
            histogram.buckets[min(int(parts[3]), len(histogram.buckets)) - 1] += amount
        elif kind == "ds" and len(parts) == 3:
            _histogram(durations, (parts[1], parts[2]), len(DURATION_BOUNDS_MS)).sum_ms = amount
        elif kind == "q" and len(parts) == 3:
            histogram = _histogram(queue_times, (parts[1],), len(QUEUE_TIME_BOUNDS_MS))
            histogram.buckets[min(int(parts[2]), len(histogram.buckets)) - 1] += amount
        elif kind == "qs" and len(parts) == 2:
            _histogram(queue_times, (parts[1],), len(QUEUE_TIME_BOUNDS_MS)).sum_ms = amount
    return QueueMetrics(
        queue=queue,
        depth=depth,
        counters=counters,
        durations={(label[0], label[1]): h for label, h in durations.items()},
        queue_times={label[0]: h for label, h in queue_times.items()},
    )


class MetricsStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def overview(self, *, now_ms: int) -> Overview:
        k = self._ctx.keys
        cutoff = now_ms - WORKER_ACTIVE_WINDOW_MS
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(k.queues)
            pipe.hlen(k.paused)
            pipe.zcount(k.workers, cutoff, "+inf")
            pipe.zcount(k.workers, "-inf", f"({cutoff}")
            queues, paused, connected, stale = await pipe.execute()
        return Overview(int(queues) - int(paused), int(paused), int(connected), int(stale))

    @translate_redis_errors
    async def read(self, *, now_ms: int) -> ClusterMetrics:
        k = self._ctx.keys
        names = sorted(name.decode() for name in cast(list[bytes], await self._ctx.redis.hkeys(k.queues)))
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(k.workers, now_ms - WORKER_ACTIVE_WINDOW_MS, "+inf")
            for name in names:
                pipe.zcard(k.available(name))
                pipe.hgetall(k.queue_counts(name))
                pipe.hgetall(k.queue_metrics(name))
            workers, *rows = await pipe.execute()
        queues = [
            decode_queue_metrics(name, int(rows[3 * i]), rows[3 * i + 1], rows[3 * i + 2])
            for i, name in enumerate(names)
        ]
        return ClusterMetrics(queues=queues, workers_active=int(workers))
