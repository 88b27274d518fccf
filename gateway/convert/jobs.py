"""The job object J, and the replies of the job routes."""

from __future__ import annotations

from typing import Any, Literal, get_args

import orjson
from ojs.v1 import job_pb2

from gateway.convert.common import loads_exact, struct_to_py, value_to_py
from ojs_json.policies import JOB_STATE_NAMES, retry_policy_to_json, unique_policy_to_json
from ojs_json.scalars import duration_ms, timestamp

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
# The optional times of a job, shown when set.
_JOB_TIMESTAMPS: tuple[_JobTimestamp, ...] = get_args(_JobTimestamp)

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
        *_JOB_TIMESTAMPS,
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
        "progress",
        "progress_message",
        "progress_data",
        "progress_updated_at",
        "last_checkpoint",
    }
)


def job_state(state: int) -> str:
    return JOB_STATE_NAMES.get(state, "unspecified")


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
    if job.HasField("progress_updated_at"):
        _progress_to_json(job, out)
    if job.last_checkpoint_json:
        out["last_checkpoint"] = orjson.Fragment(job.last_checkpoint_json)
    if job.extra_json:
        extra = loads_exact(job.extra_json)
        if isinstance(extra, dict):
            for key, value in extra.items():
                if key not in _JOB_KEYS:
                    out[key] = value
    return out


def _progress_to_json(job: job_pb2.Job, out: dict[str, Any]) -> None:
    """What the current attempt reported (urn:ojs:ext:progress)."""
    out["progress"] = job.progress if job.HasField("progress") else None
    if job.progress_message:
        out["progress_message"] = job.progress_message
    if job.progress_data_json:
        out["progress_data"] = orjson.Fragment(job.progress_data_json)
    out["progress_updated_at"] = timestamp(job.progress_updated_at)


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------


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
