"""Admin API JSON (ojs-admin-api.md) <-> `ojs.v1.admin_pb2` messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2
from ojs.v1 import admin_pb2, job_pb2

from gateway.convert.common import loads_exact, query_int
from gateway.convert.jobs import job_state
from gateway.errors import invalid_request
from ojs_json.scalars import timestamp

__all__ = [
    "bulk_request",
    "history_request",
    "job_filter_from_json",
    "job_filter_from_query",
    "limit_of",
    "parse_state",
    "parse_time",
    "render_bulk",
    "render_job_rows",
    "render_queue",
    "render_queues",
    "render_stats",
    "render_stats_history",
    "render_worker",
    "render_workflows",
]

_STATES = {name.removeprefix("JOB_STATE_").lower(): value for name, value in job_pb2.JobState.items() if value}
_BULK_ACTIONS = {
    "retry": admin_pb2.BULK_ACTION_RETRY,
    "cancel": admin_pb2.BULK_ACTION_CANCEL,
    "delete": admin_pb2.BULK_ACTION_DELETE,
}
_BULK_NAMES = {v: k for k, v in _BULK_ACTIONS.items()}
_PERIODS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}


def parse_state(value: Any, *, field: str) -> job_pb2.JobState.ValueType:
    if not isinstance(value, str) or value not in _STATES:
        raise invalid_request(f"{field} must be one of {', '.join(_STATES)}", field=field)
    return _STATES[value]


def parse_time(value: Any, *, field: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    try:
        if not isinstance(value, str):
            raise ValueError
        stamp.FromJsonString(value)
    except ValueError:
        raise invalid_request(f"{field} must be an RFC 3339 time, e.g. 2026-02-13T00:00:00Z", field=field) from None
    return stamp


def _filter(source: Mapping[str, Any], *, where: str) -> admin_pb2.JobFilter:
    message = admin_pb2.JobFilter()
    state = source.get("state")
    if state is None or state == "":
        raise invalid_request(f"{where}state is required (jobs are indexed by state)", field=f"{where}state")
    message.state = parse_state(state, field=f"{where}state")
    for key in ("queue", "type"):
        value = source.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise invalid_request(f"{where}{key} must be a string", field=f"{where}{key}")
            setattr(message, key, value)
    for key in ("since", "until"):
        value = source.get(key)
        if value:
            getattr(message, key).CopyFrom(parse_time(value, field=f"{where}{key}"))
    return message


def job_filter_from_query(query: Mapping[str, str]) -> admin_pb2.JobFilter:
    return _filter(query, where="")


def job_filter_from_json(body: Mapping[str, Any]) -> admin_pb2.JobFilter:
    raw = body.get("filter")
    if not isinstance(raw, dict):
        raise invalid_request("filter must be an object with at least a state", field="filter")
    return _filter(raw, where="filter.")


def bulk_request(action: str, body: Mapping[str, Any]) -> admin_pb2.BulkJobsRequest:
    if action not in _BULK_ACTIONS:
        raise invalid_request("bulk action must be retry, cancel or delete", field="action")
    limit = body.get("limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise invalid_request("limit must be a non-negative integer", field="limit")
    flags = {}
    for key in ("dry_run", "confirm"):
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise invalid_request(f"{key} must be a boolean", field=key)
        flags[key] = value
    return admin_pb2.BulkJobsRequest(
        action=_BULK_ACTIONS[action], filter=job_filter_from_json(body), limit=limit, **flags
    )


def history_request(query: Mapping[str, str]) -> admin_pb2.GetStatsHistoryRequest:
    period = query.get("period", "1m")
    if period not in _PERIODS:
        raise invalid_request(f"period must be one of {', '.join(_PERIODS)}", field="period")
    request = admin_pb2.GetStatsHistoryRequest(period_minutes=_PERIODS[period], queue=query.get("queue", ""))
    for key in ("since", "until"):
        if query.get(key):
            getattr(request, key).CopyFrom(parse_time(query[key], field=key))
    return request


def _counts(counts: admin_pb2.StateCounts) -> dict[str, int]:
    return {field.name: getattr(counts, field.name) for field in counts.DESCRIPTOR.fields}


def _throughput(t: admin_pb2.Throughput) -> dict[str, Any]:
    return {field.name: getattr(t, field.name) for field in t.DESCRIPTOR.fields}


def render_queue(queue: admin_pb2.QueueSummary) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": queue.name,
        "state": queue.state,
        "paused": queue.paused,
        "counts": _counts(queue.counts),
        "throughput": _throughput(queue.throughput),
        "configuration": {"concurrency": queue.config.concurrency, "max_per_second": queue.config.max_per_second},
        "totals": {
            "completed": queue.total_completed,
            "discarded": queue.total_discarded,
            "cancelled": queue.total_cancelled,
        },
        "created_at": timestamp(queue.created_at),
    }
    if queue.HasField("paused_at"):
        out["paused_at"] = timestamp(queue.paused_at)
    return out


def _pagination(total: int, limit: int, next_cursor: str) -> dict[str, Any]:
    out: dict[str, Any] = {"total": total, "limit": limit, "has_more": bool(next_cursor)}
    if next_cursor:
        out["next_cursor"] = next_cursor
    return out


def render_queues(response: admin_pb2.ListQueueSummariesResponse, limit: int) -> dict[str, Any]:
    return {
        "items": [render_queue(q) for q in response.queues],
        "pagination": _pagination(response.total, limit, response.next_cursor),
    }


def job_row_to_json(row: admin_pb2.JobRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "type": row.type,
        "queue": row.queue,
        "state": job_state(row.state),
        "priority": row.priority,
        "attempt": row.attempt,
        "max_attempts": row.max_attempts,
        "created_at": timestamp(row.created_at),
        "state_at": timestamp(row.state_at),
        "args": loads_exact(row.args_json) if row.args_json else [],
    }
    for key in ("error_message", "workflow_id", "worker_id"):
        value = getattr(row, key)
        if value:
            out[key] = value
    return out


def render_job_rows(response: admin_pb2.ListJobsResponse, limit: int) -> dict[str, Any]:
    pagination = _pagination(response.total, limit, response.next_cursor)
    pagination["scanned"] = response.scanned
    return {"items": [job_row_to_json(r) for r in response.jobs], "pagination": pagination}


def render_bulk(response: admin_pb2.BulkJobsResponse) -> dict[str, Any]:
    return {
        "action": _BULK_NAMES.get(response.action, "unspecified"),
        "dry_run": response.dry_run,
        "matched": response.matched,
        "succeeded": response.succeeded,
        "failed": response.failed,
        "truncated": response.truncated,
        "errors": [{"job_id": e.job_id, "error": e.error} for e in response.errors],
    }


def render_worker(worker: admin_pb2.WorkerDetail) -> dict[str, Any]:
    return {
        "id": worker.worker_id,
        "state": worker.state,
        "directive": worker.directive,
        "last_heartbeat_at": timestamp(worker.last_heartbeat_at),
        "active_jobs": worker.active_jobs,
        "stale": worker.stale,
        "jobs": [job_row_to_json(r) for r in worker.jobs],
    }


def render_stats(response: admin_pb2.GetStatsResponse) -> dict[str, Any]:
    return {
        "queues": response.queues,
        "workers": response.workers,
        "jobs": _counts(response.jobs),
        "dead_letter": response.dead_letter,
        "throughput": _throughput(response.throughput),
        "uptime_seconds": response.uptime_seconds,
    }


def render_stats_history(response: admin_pb2.GetStatsHistoryResponse) -> dict[str, Any]:
    names = {v: k for k, v in _PERIODS.items()}
    return {
        "period": names.get(response.period_minutes, f"{response.period_minutes}m"),
        "data": [
            {
                "timestamp": timestamp(p.timestamp),
                "processed": p.processed,
                "failed": p.failed,
                "enqueued": p.enqueued,
                "avg_duration_ms": round(p.avg_duration_ms, 3),
            }
            for p in response.points
        ],
    }


def render_workflows(response: admin_pb2.ListWorkflowsResponse, limit: int) -> dict[str, Any]:
    return {
        "items": [
            {
                "id": w.id,
                "name": w.name,
                "state": w.state,
                "steps_total": w.steps_total,
                "steps_completed": w.steps_completed,
                "steps_failed": w.steps_failed,
                "created_at": timestamp(w.created_at),
            }
            for w in response.workflows
        ],
        "pagination": _pagination(response.total, limit, response.next_cursor),
    }


def limit_of(query: Mapping[str, str]) -> int:
    return query_int(query, "limit") or 0
