"""Queue listings, stats and pause state."""

from __future__ import annotations

from typing import Any

from ojs.v1 import queue_pb2

from gateway.convert.common import now, pagination
from ojs_json.scalars import timestamp


def queue_status(paused: bool) -> str:
    return "paused" if paused else "active"


def queue_to_json(queue: queue_pb2.QueueInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": queue.name,
        "status": queue_status(queue.paused),
        "paused": queue.paused,
        "available_count": queue.available_count,
    }
    if queue.HasField("created_at"):
        out["created_at"] = timestamp(queue.created_at)
    if queue.HasField("paused_at"):
        out["paused_at"] = timestamp(queue.paused_at)
    return out


def render_queues(response: queue_pb2.ListQueuesResponse, limit: int) -> dict[str, Any]:
    return {
        "queues": [queue_to_json(queue) for queue in response.queues],
        "pagination": pagination(response.total, limit, response.next_cursor),
    }


def render_queue_state(info: queue_pb2.QueueInfo | None, name: str, paused: bool) -> dict[str, Any]:
    """Reply of pause and resume: the queue as the server reports it, else what the call implies."""
    if info is None:
        return {"queue": {"name": name, "paused": paused, "status": queue_status(paused)}}
    queue = queue_to_json(info)
    queue["name"] = info.name or name
    return {"queue": queue}


def render_queue_stats(response: queue_pb2.QueueStatsResponse, name: str) -> dict[str, Any]:
    stats = response.stats
    counts: dict[str, Any] = {
        "available": stats.available,
        "active": stats.active,
        "scheduled": stats.scheduled,
        "retryable": stats.retryable,
        "pending": stats.pending,
        "dead": stats.dead,
        "completed": stats.completed,
        "discarded": stats.discarded,
        "cancelled": stats.cancelled,
        "paused": stats.paused,
        "status": queue_status(stats.paused),
        "completed_last_hour": stats.completed_last_hour,
        "failed_last_hour": stats.failed_last_hour,
        "avg_duration_ms": stats.avg_duration_ms,
        "avg_wait_ms": stats.avg_wait_ms,
        "throughput_per_second": stats.throughput_per_second,
    }
    return {
        "queue": {"name": response.queue or name, **counts},
        "status": counts["status"],
        "stats": counts,
        "computed_at": now(),
    }
