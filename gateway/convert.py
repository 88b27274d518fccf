"""OJS JSON <-> request/response messages, with the HTTP binding's quirks.

Rendering builds plain dicts for `orjson.dumps`. Raw JSON carried in the
extension bytes fields (`args_json`, `meta_json`, ...) is embedded with
`orjson.Fragment`, so job arguments reach the client byte for byte as they
were enqueued and are never decoded on this hot path.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NoReturn, TypeVar

import orjson
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from multidict import MultiMapping
from ojs.v1 import events_pb2, job_pb2, queue_pb2, service_pb2, worker_pb2, workflow_pb2

from gateway.errors import invalid_payload, invalid_request

__all__ = [
    "EVENT_SOURCE",
    "ack_request",
    "cron_to_json",
    "enqueue_options_to_json",
    "event_to_json",
    "fetch_request",
    "heartbeat_request",
    "iso_duration",
    "job_to_json",
    "json_object",
    "list_events_request",
    "nack_request",
    "queue_status",
    "queue_to_json",
    "render_ack",
    "render_batch",
    "render_cancelled_workflow",
    "render_crons",
    "render_dead_letter",
    "render_events",
    "render_health",
    "render_heartbeat",
    "render_manifest",
    "render_nack",
    "render_queue_state",
    "render_queue_stats",
    "render_queues",
    "render_workers",
    "sse_frame",
    "stream_events_request",
    "timestamp",
    "worker_state",
    "worker_to_json",
    "workflow_state",
    "workflow_step_state",
    "workflow_step_to_json",
    "workflow_to_json",
]

# Events carry no source in the proto; CloudEvents-style consumers need one.
EVENT_SOURCE = "ojs://ojs-server/events"

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _enum_names(items: Sequence[tuple[str, int]], prefix: str) -> dict[int, str]:
    return {number: name.removeprefix(prefix).lower() for name, number in items}


_JOB_STATES = _enum_names(job_pb2.JobState.items(), "JOB_STATE_")
_WORKER_STATES = _enum_names(worker_pb2.WorkerState.items(), "WORKER_STATE_")
# Worker JSON says "unknown" where the proto has UNSPECIFIED (a worker that never reported a state).
_WORKER_STATE_WORDS = {**_WORKER_STATES, worker_pb2.WORKER_STATE_UNSPECIFIED: "unknown"}
_WORKER_STATE_BY_NAME: dict[str, worker_pb2.WorkerState.ValueType] = {
    name.removeprefix("WORKER_STATE_").lower(): number for name, number in worker_pb2.WorkerState.items() if number
}
_WORKFLOW_STATES = _enum_names(workflow_pb2.WorkflowState.items(), "WORKFLOW_STATE_")
_WORKFLOW_STEP_STATES = _enum_names(workflow_pb2.WorkflowStepState.items(), "WORKFLOW_STEP_STATE_")
_CONFLICT_ACTIONS = _enum_names(job_pb2.UniqueConflictAction.items(), "UNIQUE_CONFLICT_ACTION_")

# Keys of the job object; unknown envelope fields (extra_json) never replace them.
_JOB_KEYS = frozenset(
    {
        "id",
        "type",
        "queue",
        "args",
        "meta",
        "priority",
        "state",
        "attempt",
        "max_attempts",
        "created_at",
        "enqueued_at",
        "specversion",
        "scheduled_at",
        "expires_at",
        "started_at",
        "completed_at",
        "cancelled_at",
        "discarded_at",
        "next_attempt_at",
        "lease_expires_at",
        "timeout_ms",
        "visibility_timeout_ms",
        "tags",
        "retry",
        "unique",
        "result",
        "error",
        "errors",
        "retry_delay_ms",
        "parent_results",
        "workflow_id",
        "worker_id",
        "schema",
        "trace_id",
        "lease_token",
        "previous_state",
    }
)


T = TypeVar("T")


# ---------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------


def timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 UTC, e.g. 2026-02-12T10:30:00.123Z; whole seconds drop the fraction.

    A time given in whole seconds (`"expires_at": "2099-12-31T23:59:59Z"`) thus
    round-trips exactly as the client wrote it.
    """
    t = time.gmtime(ts.seconds)
    stamp = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    millis = ts.nanos // 1_000_000
    return f"{stamp}.{millis:03d}Z" if millis else f"{stamp}Z"


def _now() -> str:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return timestamp(ts)


def duration_ms(d: duration_pb2.Duration) -> int:
    return d.seconds * 1000 + int(d.nanos / 1_000_000)


def iso_duration(d: duration_pb2.Duration) -> str:
    """ISO 8601 duration in hours/minutes/seconds: PT1S, PT0.5S, PT5M, PT1H30M."""
    total = d.seconds * 1_000_000_000 + d.nanos
    sign = "-" if total < 0 else ""
    seconds, nanos = divmod(abs(total), 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if nanos:
        text += f"{seconds}.{nanos:09d}".rstrip("0") + "S"
    elif seconds or not (hours or minutes):
        text += f"{seconds}S"
    return text


def value_to_py(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        # Value holds doubles; show whole numbers as JSON integers, as they were most likely sent.
        if number.is_integer() and abs(number) <= 2**53:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_py(value.struct_value)
    if kind == "list_value":
        return [value_to_py(item) for item in value.list_value.values]
    return None


def struct_to_py(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: value_to_py(value) for key, value in struct.fields.items()}


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(data: bytes | str) -> Any:
    """Parse JSON keeping every number's original text (as orjson.Fragment).

    Slower than orjson.loads; used where numbers must survive a re-encode
    unchanged (integers beyond 64 bits, float spellings).
    """
    return json.loads(data, parse_int=orjson.Fragment, parse_float=orjson.Fragment, parse_constant=_reject_constant)


# Numbers orjson.loads could round (long digit runs, exponents); only then pay for loads_exact.
_INEXACT_NUMBER = re.compile(rb"\d{16,}|\d[eE][-+]?\d")


def encode_value(value: Any, raw_body: bytes, key: str) -> bytes:
    """JSON for `value` (found under `key` of the body object), numbers kept as sent."""
    try:
        if _INEXACT_NUMBER.search(raw_body):
            exact = loads_exact(raw_body)
            if isinstance(exact, dict) and key in exact:
                return orjson.dumps(exact[key])
        return orjson.dumps(value)
    except (TypeError, ValueError, RecursionError):
        raise invalid_payload(f"'{key}' cannot be represented as JSON text") from None


# ---------------------------------------------------------------------------
# Job
# ---------------------------------------------------------------------------


def job_state(state: int) -> str:
    return _JOB_STATES.get(state, "unspecified")


def job_error_to_json(error: job_pb2.JobError) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "type": error.type or error.code,
        "retryable": error.retryable,
        "attempt": error.attempt,
    }
    if error.HasField("occurred_at"):
        out["occurred_at"] = timestamp(error.occurred_at)
    if error.HasField("details"):
        out["details"] = struct_to_py(error.details)
    if error.backtrace:
        out["backtrace"] = error.backtrace
    return out


def retry_policy_to_json(policy: job_pb2.RetryPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {"max_attempts": policy.max_attempts}
    if policy.HasField("initial_interval"):
        out["initial_interval"] = iso_duration(policy.initial_interval)
    out["backoff_coefficient"] = policy.backoff_coefficient
    if policy.HasField("max_interval"):
        out["max_interval"] = iso_duration(policy.max_interval)
    out["jitter"] = policy.jitter
    out["non_retryable_errors"] = list(policy.non_retryable_errors)
    if policy.on_exhaustion:
        out["on_exhaustion"] = policy.on_exhaustion
    if policy.backoff_strategy:
        out["backoff_strategy"] = policy.backoff_strategy
    return out


def unique_policy_to_json(policy: job_pb2.UniquePolicy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if policy.keys:
        out["keys"] = list(policy.keys)
    if policy.key:
        out["key"] = list(policy.key)
    if policy.args_keys:
        out["args_keys"] = list(policy.args_keys)
    if policy.meta_keys:
        out["meta_keys"] = list(policy.meta_keys)
    if policy.HasField("period"):
        out["period"] = iso_duration(policy.period)
    if policy.on_conflict:
        out["on_conflict"] = _CONFLICT_ACTIONS.get(policy.on_conflict, "unspecified")
    if policy.states:
        out["states"] = [job_state(state) for state in policy.states]
    return out


_JobTimestamp = Literal[
    "scheduled_at",
    "expires_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "discarded_at",
    "next_attempt_at",
    "lease_expires_at",
]
_JOB_TIMESTAMPS: tuple[_JobTimestamp, ...] = (
    "scheduled_at",
    "expires_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "discarded_at",
    "next_attempt_at",
    "lease_expires_at",
)


def job_to_json(job: job_pb2.Job) -> dict[str, Any]:
    """The job object J of the HTTP binding; unset fields are omitted."""
    out: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "queue": job.queue,
        "args": orjson.Fragment(job.args_json) if job.args_json else [value_to_py(v) for v in job.args],
        "meta": (
            orjson.Fragment(job.meta_json) if job.meta_json else struct_to_py(job.meta) if job.HasField("meta") else {}
        ),
        "priority": job.priority,
        "state": job_state(job.state),
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
    }
    if job.HasField("created_at"):
        out["created_at"] = timestamp(job.created_at)
    if job.HasField("enqueued_at"):
        out["enqueued_at"] = timestamp(job.enqueued_at)
    out["specversion"] = job.specversion or "1.0"
    for name in _JOB_TIMESTAMPS:
        if job.HasField(name):
            out[name] = timestamp(getattr(job, name))
    if job.HasField("timeout"):
        out["timeout_ms"] = duration_ms(job.timeout)
    if job.HasField("visibility_timeout"):
        out["visibility_timeout_ms"] = duration_ms(job.visibility_timeout)
    if job.tags:
        out["tags"] = list(job.tags)
    if job.HasField("retry_policy"):
        out["retry"] = retry_policy_to_json(job.retry_policy)
    if job.HasField("unique_policy"):
        out["unique"] = unique_policy_to_json(job.unique_policy)
    if job.result_json:
        out["result"] = orjson.Fragment(job.result_json)
    elif job.HasField("result"):
        out["result"] = struct_to_py(job.result)
    if job.HasField("error"):
        out["error"] = job_error_to_json(job.error)
    if job.errors:
        out["errors"] = [job_error_to_json(error) for error in job.errors]
    if job.HasField("retry_delay_ms"):
        out["retry_delay_ms"] = job.retry_delay_ms
    if job.parent_results_json:
        out["parent_results"] = orjson.Fragment(job.parent_results_json)
    if job.workflow_id:
        out["workflow_id"] = job.workflow_id
    if job.worker_id:
        out["worker_id"] = job.worker_id
    if job.schema:
        out["schema"] = job.schema
    if job.trace_id:
        out["trace_id"] = job.trace_id
    if job.lease_token:
        out["lease_token"] = job.lease_token
    if job.extra_json:
        extra = loads_exact(job.extra_json)
        if isinstance(extra, dict):
            for key, value in extra.items():
                if key not in _JOB_KEYS:
                    out[key] = value
    return out


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or 400 invalid_payload."""
    if not body.strip():
        raise invalid_payload("request body is empty; expected a JSON object")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses some valid JSON (numbers beyond double range); judge by the grammar alone.
        try:
            parsed = loads_exact(body)
        except (ValueError, RecursionError):
            raise invalid_payload(f"request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise invalid_payload("request body must be a JSON object")
    return parsed


def _typed(body: Mapping[str, Any], key: str, kind: type[T], noun: str, where: str) -> T | None:
    """body[key] when present and of `kind`; None when absent or null; else 400 naming the field."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise invalid_request(f"'{where}{key}' must be {noun}", field=f"{where}{key}")
    return value


def _string(body: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
    return _typed(body, key, str, "a string", where)


def _boolean(body: Mapping[str, Any], key: str, *, where: str = "") -> bool | None:
    return _typed(body, key, bool, "a boolean", where)


def _integer(value: Any, name: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_request(f"'{name}' must be an integer", field=name)
    if not bounds[0] <= value <= bounds[1]:
        raise invalid_request(f"'{name}' is out of range", field=name)
    return value


def _optional_integer(body: Mapping[str, Any], key: str, bounds: tuple[int, int]) -> int | None:
    value = body.get(key)
    return None if value is None else _integer(value, key, bounds)


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_request(f"'{name}' must be an array of strings", field=name)
    return value


def fetch_request(body: Mapping[str, Any]) -> worker_pb2.FetchRequest:
    if "queues" not in body:
        raise invalid_request("'queues' is required: an array of queue names", field="queues")
    # The gateway renders jobs from their JSON byte fields, so it skips the Value copies.
    request = worker_pb2.FetchRequest(queues=_string_list(body["queues"], "queues"), json_only=True)
    count = _optional_integer(body, "count", _INT32)
    if count is not None:
        request.count = count
    worker_id = _string(body, "worker_id")
    if worker_id is not None:
        request.worker_id = worker_id
    visibility_timeout_ms = _optional_integer(body, "visibility_timeout_ms", _INT64)
    if visibility_timeout_ms is not None:
        request.visibility_timeout_ms = visibility_timeout_ms
    wait_ms = _optional_integer(body, "wait_ms", _INT32)
    if wait_ms is not None:
        request.wait_ms = wait_ms
    return request


def ack_request(body: Mapping[str, Any], raw_body: bytes) -> worker_pb2.AckRequest:
    request = worker_pb2.AckRequest(job_id=_string(body, "job_id") or "", json_only=True)
    worker_id = _string(body, "worker_id")
    if worker_id is not None:
        request.worker_id = worker_id
    if "result" in body:
        request.result_json = encode_value(body["result"], raw_body, "result")
    lease_token = _optional_integer(body, "lease_token", _INT64)
    if lease_token is not None:
        request.lease_token = lease_token
    return request


def nack_request(body: Mapping[str, Any]) -> worker_pb2.NackRequest:
    request = worker_pb2.NackRequest(job_id=_string(body, "job_id") or "", json_only=True)
    worker_id = _string(body, "worker_id")
    if worker_id is not None:
        request.worker_id = worker_id
    requeue = _boolean(body, "requeue")
    if requeue is not None:
        request.requeue = requeue
    lease_token = _optional_integer(body, "lease_token", _INT64)
    if lease_token is not None:
        request.lease_token = lease_token
    error = body.get("error")
    if error is None:
        return request
    if not isinstance(error, dict):
        raise invalid_request("'error' must be an object", field="error")
    job_error = request.error
    job_error.SetInParent()
    for key in ("code", "message", "type"):
        text = _string(error, key, where="error.")
        if text is not None:
            setattr(job_error, key, text)
    retryable = _boolean(error, "retryable", where="error.")
    if retryable is not None:
        job_error.retryable = retryable
        request.retryable = retryable
    details = error.get("details")
    if details is not None:
        if not isinstance(details, dict):
            raise invalid_request("'error.details' must be an object", field="error.details")
        job_error.details.update(details)
    backtrace = error.get("backtrace")
    if isinstance(backtrace, list) and all(isinstance(line, str) for line in backtrace):
        # Some SDKs send the stack as a list of frames.
        job_error.backtrace = "\n".join(backtrace)
    elif backtrace is not None:
        text = _string(error, "backtrace", where="error.")
        job_error.backtrace = text or ""
    return request


def heartbeat_request(body: Mapping[str, Any]) -> worker_pb2.HeartbeatRequest:
    """Worker-level heartbeat; accepts the binding's and the worker protocol's shapes."""
    worker_id = _string(body, "worker_id") or ""
    request = worker_pb2.HeartbeatRequest(id=worker_id, worker_id=worker_id)
    job_ids: list[str] = []
    active_jobs = body.get("active_jobs")
    if isinstance(active_jobs, list):
        job_ids.extend(_string_list(active_jobs, "active_jobs"))
    elif active_jobs is not None and (isinstance(active_jobs, bool) or not isinstance(active_jobs, int)):
        # The worker protocol sends a count here, the HTTP binding a list of ids.
        raise invalid_request("'active_jobs' must be an array of job ids or a count", field="active_jobs")
    active_job_ids = body.get("active_job_ids")
    if active_job_ids is not None:
        job_ids.extend(_string_list(active_job_ids, "active_job_ids"))
    job_id = _string(body, "job_id")
    if job_id:
        job_ids.append(job_id)
    request.active_job_ids.extend(dict.fromkeys(job_ids))
    visibility_timeout_ms = _optional_integer(body, "visibility_timeout_ms", _INT64)
    if visibility_timeout_ms is not None:
        request.extend_by.FromMilliseconds(visibility_timeout_ms)
    state = _string(body, "state")
    if state:
        # The reported state is informational; an unknown word must not fail the heartbeat.
        request.current_state = _WORKER_STATE_BY_NAME.get(state.lower(), worker_pb2.WORKER_STATE_UNSPECIFIED)
    return request


def _query_values(query: MultiMapping[str], key: str) -> list[str]:
    """Values of a list parameter, given as repeats (?a=x&a=y) and/or comma-separated (?a=x,y)."""
    values: list[str] = []
    for raw in query.getall(key, ()):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def query_int(query: Mapping[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid_request(f"query parameter '{key}' must be an integer", field=key) from None
    return _integer(value, key, _INT32)


def list_events_request(query: MultiMapping[str]) -> events_pb2.ListEventsRequest:
    request = events_pb2.ListEventsRequest(
        types=_query_values(query, "types"),
        queues=_query_values(query, "queues"),
        job_types=_query_values(query, "job_types"),
        after=query.get("after", ""),
        job_id=query.get("job_id", ""),
    )
    limit = query_int(query, "limit")
    if limit is not None:
        request.limit = limit
    return request


def stream_events_request(
    query: MultiMapping[str], last_event_id: str | None, *, job_id: str = "", queue: str = ""
) -> events_pb2.StreamEventsRequest:
    """The subscription of an SSE route; a reconnecting client's Last-Event-ID wins over `?after=`."""
    after = last_event_id.strip() if last_event_id is not None else ""
    return events_pb2.StreamEventsRequest(
        job_id=job_id,
        queues=[queue] if queue else [],
        event_types=_query_values(query, "types"),
        after=after or query.get("after", ""),
    )


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


def render_ack(response: worker_pb2.AckResponse, job_id: str) -> dict[str, Any]:
    if not response.HasField("job"):
        return {"acknowledged": response.acknowledged, "id": job_id, "job_id": job_id, "state": "completed"}
    job = response.job
    out: dict[str, Any] = {
        "acknowledged": response.acknowledged,
        "id": job.id,
        "job_id": job.id,
        "state": job_state(job.state),
    }
    if job.HasField("completed_at"):
        out["completed_at"] = timestamp(job.completed_at)
    out["job"] = job_to_json(job)
    return out


def render_nack(response: worker_pb2.NackResponse, job_id: str) -> dict[str, Any]:
    job = response.job if response.HasField("job") else None
    state = response.state or (job.state if job is not None else 0)
    out: dict[str, Any] = {"id": job.id if job is not None else job_id}
    out["job_id"] = out["id"]
    out["state"] = job_state(state)
    if job is not None:
        out["attempt"] = job.attempt
        out["max_attempts"] = job.max_attempts
    if response.HasField("next_attempt_at"):
        out["next_attempt_at"] = timestamp(response.next_attempt_at)
    elif job is not None and job.HasField("next_attempt_at"):
        out["next_attempt_at"] = timestamp(job.next_attempt_at)
    if job is not None:
        if job.HasField("retry_delay_ms"):
            out["retry_delay_ms"] = job.retry_delay_ms
        if job.HasField("discarded_at"):
            out["discarded_at"] = timestamp(job.discarded_at)
        if job.HasField("completed_at"):
            out["completed_at"] = timestamp(job.completed_at)
        out["job"] = job_to_json(job)
    return out


def render_heartbeat(response: worker_pb2.HeartbeatResponse) -> dict[str, Any]:
    state = _WORKER_STATES.get(response.directed_state) if response.directed_state else None
    state = state or "running"
    return {
        "state": state,
        "directive": state,
        "jobs_extended": list(response.jobs_extended),
        "jobs_cancelled": list(response.jobs_cancelled),
        "jobs_not_held": list(response.jobs_not_held),
        "server_time": timestamp(response.server_time) if response.HasField("server_time") else _now(),
    }


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
        "pagination": _pagination(response.total, limit, response.next_cursor),
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
    return {"queue": {"name": response.queue or name, **counts}, "stats": counts, "computed_at": _now()}


def render_batch(response: job_pb2.EnqueueBatchResponse) -> dict[str, Any]:
    body: dict[str, Any] = {
        "jobs": [job_to_json(job) for job in response.jobs],
        "count": response.count or len(response.jobs),
    }
    if response.errors:
        body["errors"] = [
            {"index": index, "code": error.code, "message": error.message}
            for index, error in sorted(response.errors.items())
        ]
    return body


def _pagination(total: int, limit: int, next_cursor: str) -> dict[str, Any]:
    pagination: dict[str, Any] = {"total": total, "limit": limit, "has_more": bool(next_cursor)}
    if next_cursor:
        pagination["next_cursor"] = next_cursor
    return pagination


def render_dead_letter(response: queue_pb2.ListDeadLetterResponse, limit: int) -> dict[str, Any]:
    return {
        "jobs": [job_to_json(job) for job in response.jobs],
        "pagination": _pagination(response.total_count, limit, response.next_cursor),
    }


def worker_state(state: int) -> str:
    return _WORKER_STATE_WORDS.get(state, "unknown")


def worker_to_json(worker: worker_pb2.WorkerInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        # Admin API readers look for `id`, worker-protocol readers for `worker_id`.
        "id": worker.worker_id,
        "worker_id": worker.worker_id,
        "state": worker_state(worker.state),
        "directive": worker_state(worker.directive),
    }
    if worker.HasField("last_heartbeat_at"):
        out["last_heartbeat_at"] = timestamp(worker.last_heartbeat_at)
    out["active_jobs"] = worker.active_jobs
    return out


def render_workers(response: worker_pb2.ListWorkersResponse, limit: int) -> dict[str, Any]:
    return {
        "items": [worker_to_json(worker) for worker in response.workers],
        "summary": {"total": response.total},
        "pagination": _pagination(response.total, limit, response.next_cursor),
    }


def event_to_json(event: events_pb2.Event) -> dict[str, Any]:
    out: dict[str, Any] = {"id": event.id, "type": event.type}
    if event.HasField("timestamp"):
        out["time"] = timestamp(event.timestamp)
    out["specversion"] = "1.0"
    out["source"] = EVENT_SOURCE
    if event.job_id:
        out["subject"] = event.job_id
        out["job_id"] = event.job_id
    if event.job_type:
        out["job_type"] = event.job_type
    if event.queue:
        out["queue"] = event.queue
    if event.workflow_id:
        out["workflow_id"] = event.workflow_id
    if event.state:
        out["state"] = event.state
    if event.data_json:
        out["data"] = orjson.Fragment(event.data_json)
    else:
        out["data"] = struct_to_py(event.data) if event.HasField("data") else {}
    return out


KEEPALIVE_EVENT = "stream.keepalive"
DROPPED_EVENT = "system.events_dropped"
_KEEPALIVE_FRAME = b": keepalive\n\n"


def _dropped_count(event: events_pb2.Event) -> int:
    data: Any = None
    if event.data_json:
        try:
            data = orjson.loads(event.data_json)
        except orjson.JSONDecodeError:
            data = None
    elif event.HasField("data"):
        data = struct_to_py(event.data)
    value = data.get("dropped") if isinstance(data, dict) else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _data_lines(payload: bytes) -> bytes:
    if b"\n" not in payload and b"\r" not in payload:
        return b"data: " + payload + b"\n"
    # A line break inside JSON is whitespace; SSE joins the data lines back with one.
    return b"".join(b"data: " + line + b"\n" for line in payload.splitlines())


def sse_frame(event: events_pb2.Event) -> bytes:
    """One event of a text/event-stream: the object GET /ojs/v1/events lists, keyed by its cursor."""
    if event.type == KEEPALIVE_EVENT:
        return _KEEPALIVE_FRAME
    if event.type == DROPPED_EVENT:
        payload = orjson.dumps({"dropped": _dropped_count(event)})
        return b"event: " + DROPPED_EVENT.encode() + b"\n" + _data_lines(payload) + b"\n"
    # Without a cursor, no id line: an empty one would reset the client's Last-Event-ID.
    frame = b"id: " + event.cursor.encode() + b"\n" if event.cursor else b""
    if event.type:
        frame += b"event: " + event.type.encode() + b"\n"
    return frame + _data_lines(orjson.dumps(event_to_json(event))) + b"\n"


def render_events(response: events_pb2.ListEventsResponse) -> dict[str, Any]:
    return {
        "events": [event_to_json(event) for event in response.events],
        "cursor": response.cursor,
        "has_more": response.has_more,
    }


def workflow_state(state: int) -> str:
    return _WORKFLOW_STATES.get(state, "unspecified")


def workflow_step_state(state: int) -> str:
    return _WORKFLOW_STEP_STATES.get(state, "unspecified")


def workflow_step_to_json(index: int, step: workflow_pb2.WorkflowStepStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": index,
        "id": step.id,
        "type": step.type,
        "kind": step.kind,
        "state": workflow_step_state(step.state),
        # A step not enqueued yet has no job: null, so readers can test for it.
        "job_id": step.job_id or None,
        "depends_on": list(step.depends_on),
    }
    if step.result_json:
        out["result"] = orjson.Fragment(step.result_json)
    return out


_WorkflowTimestamp = Literal["started_at", "completed_at", "cancelled_at"]
_WORKFLOW_TIMESTAMPS: tuple[_WorkflowTimestamp, ...] = ("started_at", "completed_at", "cancelled_at")


def workflow_to_json(workflow: workflow_pb2.Workflow) -> dict[str, Any]:
    """The workflow object W: counters under both the chain (`steps_*`) and group/batch (`jobs_*`) names."""
    created_at = timestamp(workflow.created_at) if workflow.HasField("created_at") else None
    out: dict[str, Any] = {
        "id": workflow.id,
        "name": workflow.name,
        "type": workflow.type,
        "state": workflow_state(workflow.state),
        "steps_total": workflow.steps_total,
        "steps_completed": workflow.steps_completed,
        "steps_failed": workflow.steps_failed,
        "jobs_total": workflow.steps_total,
        "jobs_completed": workflow.steps_completed,
        "created_at": created_at,
    }
    for name in _WORKFLOW_TIMESTAMPS:
        if workflow.HasField(name):
            out[name] = timestamp(getattr(workflow, name))
    out["steps"] = [workflow_step_to_json(index, step) for index, step in enumerate(workflow.steps)]
    metadata: dict[str, Any] = {"created_at": created_at}
    for name in ("started_at", "completed_at"):
        if name in out:
            metadata[name] = out[name]
    metadata["job_count"] = workflow.steps_total
    metadata["completed_count"] = workflow.steps_completed
    metadata["failed_count"] = workflow.steps_failed
    out["metadata"] = metadata
    return out


def render_cancelled_workflow(response: workflow_pb2.CancelWorkflowResponse) -> dict[str, Any]:
    workflow = workflow_to_json(response.workflow)
    workflow["steps_cancelled"] = response.steps_cancelled
    workflow["steps_already_completed"] = response.steps_already_completed
    return {"workflow": workflow}


def enqueue_options_to_json(options: job_pb2.EnqueueOptions) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Official enqueue options as the JSON `options` object, plus the job `meta` they carry (if any)."""
    out: dict[str, Any] = {}
    if options.queue:
        out["queue"] = options.queue
    if options.priority:
        out["priority"] = options.priority
    if options.HasField("delay_until"):
        out["delay_until"] = timestamp(options.delay_until)
    if options.HasField("timeout"):
        out["timeout_ms"] = duration_ms(options.timeout)
    if options.HasField("visibility_timeout"):
        out["visibility_timeout_ms"] = duration_ms(options.visibility_timeout)
    if options.HasField("ttl"):
        out["expires_at"] = "+" + iso_duration(options.ttl)
    if options.tags:
        out["tags"] = list(options.tags)
    if options.max_attempts:
        out["max_attempts"] = options.max_attempts
    if options.HasField("retry"):
        out["retry"] = retry_policy_to_json(options.retry)
    if options.HasField("unique"):
        out["unique"] = unique_policy_to_json(options.unique)
    if options.pending:
        out["pending"] = True
    meta = struct_to_py(options.meta) if options.HasField("meta") else None
    if options.trace_id:
        meta = {**(meta or {}), "trace_id": options.trace_id}
    return out, meta


def _cron_template(entry: service_pb2.CronEntry) -> tuple[Any, Mapping[str, Any]]:
    """The job template to render and its parsed form.

    The server's `job_template_json` is embedded as sent; a template it does not
    carry (or one that is not a JSON object) is assembled from the official fields.
    """
    raw = entry.job_template_json
    if raw:
        try:
            parsed = loads_exact(raw)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return orjson.Fragment(raw), parsed
    template: dict[str, Any] = {"type": entry.type, "args": [value_to_py(value) for value in entry.args]}
    if entry.HasField("options"):
        options, meta = enqueue_options_to_json(entry.options)
        if meta is not None:
            template["meta"] = meta
        template["options"] = options
    return template, template


_CronTimestamp = Literal["next_run_at", "last_run_at", "created_at", "updated_at"]
_CRON_TIMESTAMPS: tuple[_CronTimestamp, ...] = ("next_run_at", "last_run_at", "created_at", "updated_at")


def cron_to_json(entry: service_pb2.CronEntry) -> dict[str, Any]:
    """The cron object C, carrying the field names of both cron dialects."""
    template, parsed = _cron_template(entry)
    out: dict[str, Any] = {
        "name": entry.name,
        "expression": entry.cron,
        "cron": entry.cron,
        "timezone": entry.timezone,
        "overlap_policy": entry.overlap_policy,
        "enabled": entry.enabled,
        "job_template": template,
        "type": parsed.get("type", entry.type),
        "args": parsed.get("args", []),
        "options": parsed.get("options") or {},
        "run_count": entry.run_count,
    }
    # Unset times are null, not absent: a disabled entry has no next run, a new one no last run.
    for name in _CRON_TIMESTAMPS:
        out[name] = timestamp(getattr(entry, name)) if entry.HasField(name) else None
    if entry.last_job_id:
        out["last_job_id"] = entry.last_job_id
    if entry.description:
        out["description"] = entry.description
    return out


def render_crons(response: service_pb2.ListCronResponse) -> dict[str, Any]:
    crons = [cron_to_json(entry) for entry in response.entries]
    count = len(crons)
    return {
        "crons": crons,
        "cron_jobs": crons,
        "count": count,
        "pagination": {"total": count, "limit": count, "has_more": False},
    }


def render_health(response: service_pb2.HealthResponse) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of GET /health."""
    details = struct_to_py(response.details) if response.HasField("details") else {}
    backend = details.get("backend")
    backend = backend if isinstance(backend, dict) else {}
    if response.status == service_pb2.HEALTH_STATUS_OK:
        status, http_status = "ok", 200
    elif response.status == service_pb2.HEALTH_STATUS_UNHEALTHY:
        status, http_status = "degraded", 503
    else:
        status = "degraded"
        http_status = 503 if backend.get("status") == "disconnected" else 200
    body: dict[str, Any] = {"status": status}
    if response.version:
        body["version"] = response.version
    body["uptime_seconds"] = response.uptime_seconds
    body["backend"] = backend
    return http_status, body


def render_manifest(response: service_pb2.ManifestResponse) -> bytes | dict[str, Any]:
    """The server's manifest document as sent, or one assembled from the official fields."""
    if response.manifest_json:
        return response.manifest_json
    version = response.ojs_version or "1.0"
    return {
        "specversion": version,
        "ojs_version": version,
        "implementation": {
            "name": response.implementation.name,
            "version": response.implementation.version,
            "language": response.implementation.language,
        },
        "conformance_level": response.conformance_level,
        "protocols": list(response.protocols),
        "backend": response.backend,
        "extensions": list(response.extensions),
        "schema_validation": response.schema_validation,
    }
