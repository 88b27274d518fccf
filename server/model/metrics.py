"""Cluster-wide job metrics as the store reads them from Redis (see lua/include/mcount.lua)."""

from __future__ import annotations

import dataclasses

# Bucket upper bounds of the two histograms in ms (ojs-observability.md §8.2), as in lua/include/mduration.lua
# and mqueue_time.lua.
DURATION_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000)
QUEUE_TIME_BOUNDS_MS = (10, 50, 100, 500, 1000, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000)
# Job counters the scripts keep, by the name they use.
COUNTERS = ("enqueued", "completed", "failed", "retried", "dead_lettered", "expired", "cancelled")
# State gauges of the per-queue statistics hash (available jobs are counted by their sorted set).
STATE_GAUGES = ("scheduled", "pending", "active", "retryable", "dead")
# A worker seen (fetch or heartbeat) this recently counts as active.
WORKER_ACTIVE_WINDOW_MS = 60_000


@dataclasses.dataclass
class Histogram:
    """Non-cumulative bucket counts (one more than the bounds: the last is +Inf) and the sum in ms."""

    buckets: list[int]
    sum_ms: int = 0


@dataclasses.dataclass(frozen=True)
class QueueMetrics:
    queue: str
    # state -> jobs now in it (available, scheduled, pending, active, retryable, dead).
    depth: dict[str, int]
    # (counter name, job type) -> total.
    counters: dict[tuple[str, str], int]
    # (state, job type) -> run time of attempts that ended in that state.
    durations: dict[tuple[str, str], Histogram]
    # job type -> wait from enqueue to first start.
    queue_times: dict[str, Histogram]


@dataclasses.dataclass(frozen=True)
class ClusterMetrics:
    queues: list[QueueMetrics]
    workers_active: int


@dataclasses.dataclass(frozen=True)
class Overview:
    """The counts of the health report (ojs-observability.md §10)."""

    queues_active: int
    queues_paused: int
    workers_connected: int
    workers_stale: int
