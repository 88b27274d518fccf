"""Worker routes: fetch, ack, nack and heartbeat bodies, their replies, and the worker registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from ojs.v1 import worker_pb2

from gateway.convert.common import (
    INT32,
    INT64,
    boolean_field,
    bounded_integer,
    encode_value,
    enum_names,
    exact_value,
    now,
    optional_integer,
    pagination,
    string_field,
    string_list,
)
from gateway.convert.jobs import job_state, job_to_json
from gateway.errors import invalid_payload, invalid_request
from ojs_json.scalars import timestamp

_WORKER_STATES = enum_names(worker_pb2.WorkerState.items(), "WORKER_STATE_")
# Worker JSON says "unknown" where the proto has UNSPECIFIED (a worker that never reported a state).
_WORKER_STATE_WORDS = {**_WORKER_STATES, worker_pb2.WORKER_STATE_UNSPECIFIED: "unknown"}
_WORKER_STATE_BY_NAME: dict[str, worker_pb2.WorkerState.ValueType] = {
    name.removeprefix("WORKER_STATE_").lower(): number for name, number in worker_pb2.WorkerState.items() if number
}


def fetch_request(body: Mapping[str, Any]) -> worker_pb2.FetchRequest:
    if "queues" not in body:
        raise invalid_request("'queues' is required: an array of queue names", field="queues")
    # The gateway renders jobs from their JSON byte fields, so it skips the Value copies.
    request = worker_pb2.FetchRequest(queues=string_list(body["queues"], "queues"), json_only=True)
    count = optional_integer(body, "count", INT32)
    if count is not None:
        request.count = count
    worker_id = string_field(body, "worker_id")
    if worker_id is not None:
        request.worker_id = worker_id
    visibility_timeout_ms = optional_integer(body, "visibility_timeout_ms", INT64)
    if visibility_timeout_ms is not None:
        request.visibility_timeout_ms = visibility_timeout_ms
    wait_ms = optional_integer(body, "wait_ms", INT32)
    if wait_ms is not None:
        request.wait_ms = wait_ms
    return request


def ack_request(body: Mapping[str, Any], raw_body: bytes) -> worker_pb2.AckRequest:
    request = worker_pb2.AckRequest(job_id=string_field(body, "job_id") or "", json_only=True)
    worker_id = string_field(body, "worker_id")
    if worker_id is not None:
        request.worker_id = worker_id
    if "result" in body:
        request.result_json = encode_value(body["result"], raw_body, "result")
    lease_token = optional_integer(body, "lease_token", INT64)
    if lease_token is not None:
        request.lease_token = lease_token
    return request


def ack_batch_request(body: Mapping[str, Any], raw_body: bytes) -> worker_pb2.AckBatchRequest:
    """`{"worker_id", "acks": [{"job_id", "lease_token"?, "result"?}, ...]}` as one AckBatch call."""
    acks = body.get("acks")
    if not isinstance(acks, list) or not acks:
        raise invalid_request("'acks' is required: a non-empty array of acks", field="acks")
    request = worker_pb2.AckBatchRequest(worker_id=string_field(body, "worker_id") or "", json_only=True)
    # Results keep their numbers as sent (see encode_value); parsed exactly only when one could be rounded.
    exact = exact_value(raw_body, "acks")
    for index, ack in enumerate(acks):
        where = f"acks[{index}]."
        if not isinstance(ack, dict):
            raise invalid_request(f"'acks[{index}]' must be an object", field=f"acks[{index}]")
        entry = request.entries.add(job_id=string_field(ack, "job_id", where=where) or "")
        if ack.get("lease_token") is not None:
            entry.lease_token = bounded_integer(ack["lease_token"], f"{where}lease_token", INT64)
        if "result" in ack:
            try:
                entry.result_json = orjson.dumps(exact[index]["result"] if exact is not None else ack["result"])
            except (TypeError, ValueError, RecursionError):
                raise invalid_payload(f"'{where}result' cannot be represented as JSON text") from None
    return request


def nack_request(body: Mapping[str, Any]) -> worker_pb2.NackRequest:
    request = worker_pb2.NackRequest(job_id=string_field(body, "job_id") or "", json_only=True)
    worker_id = string_field(body, "worker_id")
    if worker_id is not None:
        request.worker_id = worker_id
    requeue = boolean_field(body, "requeue")
    if requeue is not None:
        request.requeue = requeue
    lease_token = optional_integer(body, "lease_token", INT64)
    if lease_token is not None:
        request.lease_token = lease_token
    error = body.get("error")
    if error is None:
        return request
    if isinstance(error, str):
        # The reference server's examples send the error as its message alone.
        request.error.message = error
        return request
    if not isinstance(error, dict):
        raise invalid_request("'error' must be an object or a message string", field="error")
    job_error = request.error
    job_error.SetInParent()
    for key in ("code", "message", "type"):
        text = string_field(error, key, where="error.")
        if text is not None:
            setattr(job_error, key, text)
    retryable = boolean_field(error, "retryable", where="error.")
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
        text = string_field(error, "backtrace", where="error.")
        job_error.backtrace = text or ""
    return request


def heartbeat_request(body: Mapping[str, Any]) -> worker_pb2.HeartbeatRequest:
    """Worker-level heartbeat; accepts the binding's and the worker protocol's shapes."""
    worker_id = string_field(body, "worker_id") or ""
    request = worker_pb2.HeartbeatRequest(id=worker_id, worker_id=worker_id)
    job_ids: list[str] = []
    active_jobs = body.get("active_jobs")
    if isinstance(active_jobs, list):
        job_ids.extend(string_list(active_jobs, "active_jobs"))
    elif active_jobs is not None and (isinstance(active_jobs, bool) or not isinstance(active_jobs, int)):
        # The worker protocol sends a count here, the HTTP binding a list of ids.
        raise invalid_request("'active_jobs' must be an array of job ids or a count", field="active_jobs")
    active_job_ids = body.get("active_job_ids")
    if active_job_ids is not None:
        job_ids.extend(string_list(active_job_ids, "active_job_ids"))
    job_id = string_field(body, "job_id")
    if job_id:
        job_ids.append(job_id)
    request.active_job_ids.extend(dict.fromkeys(job_ids))
    visibility_timeout_ms = optional_integer(body, "visibility_timeout_ms", INT64)
    if visibility_timeout_ms is not None:
        request.extend_by.FromMilliseconds(visibility_timeout_ms)
    state = string_field(body, "state")
    if state:
        # The reported state is informational; an unknown word must not fail the heartbeat.
        request.current_state = _WORKER_STATE_BY_NAME.get(state.lower(), worker_pb2.WORKER_STATE_UNSPECIFIED)
    return request


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


def render_ack_batch(response: worker_pb2.AckBatchResponse) -> dict[str, Any]:
    """Each ack's outcome in request order; a refused one says why, as the error envelope would."""
    results: list[dict[str, Any]] = []
    for result in response.results:
        item: dict[str, Any] = {"job_id": result.job_id, "acknowledged": result.ok}
        if result.state:
            item["state"] = job_state(result.state)
        if not result.ok:
            item["error"] = {"code": result.error_code, "message": result.error_message}
        results.append(item)
    return {"acknowledged": response.settled, "results": results}


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
        "server_time": timestamp(response.server_time) if response.HasField("server_time") else now(),
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
        "pagination": pagination(response.total, limit, response.next_cursor),
    }
