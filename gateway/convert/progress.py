"""Progress (urn:ojs:ext:progress): report bodies, the progress object, and the progress stream's frames."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from ojs.v1 import events_pb2, progress_pb2

from gateway.convert.events import KEEPALIVE_EVENT, sse_frame
from gateway.convert.jobs import job_state
from gateway.errors import invalid_request
from ojs_json.scalars import timestamp

# Job states after which a progress stream has nothing more to say, and the SSE event that says so.
_TERMINAL_EVENTS = {"completed": "completed", "discarded": "failed", "cancelled": "cancelled"}


def _number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid_request(f"'{key}' must be a number", field=key)
    return float(value)


def report_request(body: Mapping[str, Any], job_id: str) -> progress_pb2.ReportProgressRequest:
    """`progress` is a fraction (0..1), `percentage` a percent (0..100, as the SDKs send)."""
    request = progress_pb2.ReportProgressRequest(job_id=job_id)
    progress = _number(body, "progress")
    if progress is not None:
        request.progress = progress
    percentage = _number(body, "percentage")
    if percentage is not None:
        request.percentage = percentage
    message = body.get("message")
    if message is not None:
        if not isinstance(message, str):
            raise invalid_request("'message' must be a string", field="message")
        request.message = message
    # Checked to be objects by the server, which validates every report alike.
    if body.get("data") is not None:
        request.data_json = orjson.dumps(body["data"])
    if body.get("checkpoint") is not None:
        request.checkpoint_json = orjson.dumps(body["checkpoint"])
    worker_id = body.get("worker_id")
    if worker_id is not None:
        if not isinstance(worker_id, str):
            raise invalid_request("'worker_id' must be a string", field="worker_id")
        request.worker_id = worker_id
    lease_token = body.get("lease_token")
    if lease_token is not None:
        if isinstance(lease_token, bool) or not isinstance(lease_token, int):
            raise invalid_request("'lease_token' must be an integer", field="lease_token")
        request.lease_token = lease_token
    return request


def progress_to_json(progress: progress_pb2.JobProgress) -> dict[str, Any]:
    """GET /jobs/{id}/progress: progress and data are null (not absent) when nothing was reported (§7.1)."""
    out: dict[str, Any] = {
        "job_id": progress.job_id,
        "state": job_state(progress.state),
        "attempt": progress.attempt,
        "progress": progress.progress if progress.HasField("progress") else None,
        "data": orjson.Fragment(progress.data_json) if progress.data_json else None,
        "message": progress.message or None,
        "updated_at": timestamp(progress.updated_at) if progress.HasField("updated_at") else None,
    }
    if progress.type:
        out["type"] = progress.type
    return out


def progress_headers(progress: progress_pb2.JobProgress) -> dict[str, str]:
    headers = {"Cache-Control": "no-cache"}
    if progress.HasField("progress"):
        headers["X-OJS-Progress"] = repr(progress.progress)
    return headers


def render_workflow_progress(response: progress_pb2.GetWorkflowProgressResponse) -> dict[str, Any]:
    return {
        "workflow_id": response.workflow_id,
        "type": response.type,
        "progress": response.progress,
        "steps": [
            {"step_id": step.step_id, "kind": step.kind, **progress_to_json(step.job)} for step in response.steps
        ],
    }


def _frame(event: str, payload: Mapping[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ProgressFrames:
    """One job's events as the extension's SSE frames (§7.2), remembering the last progress."""

    def __init__(self) -> None:
        self.last: float | None = None

    def opening(self, progress: progress_pb2.JobProgress) -> tuple[bytes, bool]:
        """The first frame, from the progress read when the stream opens; a finished job's is also the last."""
        state = job_state(progress.state)
        if progress.HasField("progress"):
            self.last = progress.progress
        updated_at = timestamp(progress.updated_at) if progress.HasField("updated_at") else None
        if state in _TERMINAL_EVENTS:
            return self._terminal(state, updated_at), True
        if not progress.HasField("updated_at"):
            return b"", False
        payload = {
            "progress": self.last,
            "data": orjson.Fragment(progress.data_json) if progress.data_json else None,
            "message": progress.message or None,
            "updated_at": updated_at,
        }
        return _frame("progress", payload), False

    def _terminal(self, state: str, updated_at: str | None) -> bytes:
        progress = 1.0 if state == "completed" and self.last is not None else self.last
        return _frame(_TERMINAL_EVENTS[state], {"progress": progress, "state": state, "updated_at": updated_at})

    def render(self, event: events_pb2.Event) -> tuple[bytes, bool]:
        if event.type == KEEPALIVE_EVENT:
            return sse_frame(event), False
        updated_at = timestamp(event.timestamp) if event.HasField("timestamp") else None
        if event.state in _TERMINAL_EVENTS:
            return self._terminal(event.state, updated_at), True
        if event.type != "job.progress":
            return b"", False
        data = orjson.loads(event.data_json) if event.data_json else {}
        value = data.get("progress")
        if isinstance(value, int | float):
            self.last = float(value)
        payload = {
            "progress": self.last,
            "data": data.get("data"),
            "message": data.get("progress_message"),
            "updated_at": updated_at,
        }
        return _frame("progress", payload), False
