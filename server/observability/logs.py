"""Log records: one JSON object per line (ojs-logging.md §5) and the job lifecycle records.

Job fields travel as `extra=` attributes of the record (see `job_fields`), so the
plain format (the default, for a terminal) and the JSON one read the same records.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import orjson
from opentelemetry import trace

from server.domain.job import StoredJob
from server.domain.states import JobState

# OpenTelemetry severity names and numbers (ojs-logging.md §5.4).
_SEVERITY = {
    logging.DEBUG: ("DEBUG", 5),
    logging.INFO: ("INFO", 9),
    logging.WARNING: ("WARN", 13),
    logging.ERROR: ("ERROR", 17),
    logging.CRITICAL: ("FATAL", 21),
}
# Record attributes (set through `extra=`) that go in the "ojs" object, by their name there.
_OJS_FIELDS = ("job_id", "job_type", "queue", "attempt", "state", "worker_id", "workflow_id")
# Record attributes that go in "attributes".
_ATTRIBUTE_FIELDS = ("duration_ms", "queue_wait_ms", "error_type", "next_retry_at", "count", "route", "status")

lifecycle = logging.getLogger("server.lifecycle")


def _timestamp(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def __init__(self, process_tag: str = "") -> None:
        super().__init__()
        self._tag = process_tag

    def format(self, record: logging.LogRecord) -> str:
        severity, number = _SEVERITY.get(record.levelno, (record.levelname, 9))
        out: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "severity": severity,
            "severity_number": number,
            "message": record.getMessage(),
            "component": "server",
            "logger": record.name,
        }
        category = "lifecycle" if record.name == lifecycle.name else "error" if record.levelno >= logging.ERROR else ""
        if category:
            out["category"] = category
        if self._tag:
            out["process"] = self._tag
        fields = record.__dict__
        ojs = {name: fields[name] for name in _OJS_FIELDS if fields.get(name) is not None}
        if ojs:
            out["ojs"] = ojs
        request_id = fields.get("request_id")
        if request_id:
            out["request_id"] = request_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            out["trace"] = {"trace_id": f"{span_context.trace_id:032x}", "span_id": f"{span_context.span_id:016x}"}
        elif fields.get("trace_id"):
            out["trace"] = {"trace_id": fields["trace_id"]}
        attributes = {name: fields[name] for name in _ATTRIBUTE_FIELDS if fields.get(name) is not None}
        if attributes:
            out["attributes"] = attributes
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["error"] = {
                "type": type(exc).__name__,
                "message": str(exc),
                "backtrace": "".join(traceback.format_exception(exc)),
            }
        return orjson.dumps(out, default=str).decode()


def job_fields(job: StoredJob, **extra: Any) -> dict[str, Any]:
    """`extra=` for a record about a job."""
    fields: dict[str, Any] = {
        "job_id": job.id,
        "job_type": job.type,
        "queue": job.queue,
        "state": job.state.value,
        "attempt": job.attempt or None,
        "worker_id": job.worker_id or None,
        "workflow_id": job.workflow_id,
        "trace_id": _trace_id(job.meta_json),
    }
    fields.update(extra)
    return fields


def _trace_id(meta_json: bytes) -> str | None:
    """The trace id of meta.traceparent ("00-<trace id>-<span id>-<flags>"), without decoding the whole meta."""
    at = meta_json.find(b'"traceparent":"')
    if at < 0:
        return None
    value = meta_json[at + 15 : at + 15 + 55].decode(errors="replace").split("-")
    return value[1] if len(value) == 4 and len(value[1]) == 32 else None


def log_jobs(level: int, message: str, jobs: list[StoredJob], request_id: str, **extra: Any) -> None:
    """Lifecycle records (ojs-logging.md §6.1); success records are DEBUG, to keep the volume a choice."""
    for job in jobs:
        lifecycle.log(level, message, extra=job_fields(job, request_id=request_id or None, **extra))


def settled_record(job: StoredJob) -> tuple[int, str, dict[str, Any]]:
    """Level, message and attributes of the record for an ack or nack's outcome."""
    duration = (job.completed_at_ms or job.discarded_at_ms or 0) - (job.started_at_ms or 0)
    attributes: dict[str, Any] = {"duration_ms": duration} if job.started_at_ms and duration >= 0 else {}
    if job.error is not None:
        attributes["error_type"] = job.error.type or job.error.code
    if job.state is JobState.COMPLETED:
        return logging.DEBUG, "Job completed successfully", attributes
    if job.state is JobState.RETRYABLE:
        return logging.WARNING, "Job failed, will retry", {**attributes, "next_retry_at": job.next_attempt_at_ms}
    if job.state is JobState.DISCARDED:
        return logging.ERROR, f"Job discarded after {job.attempt} attempts", attributes
    return logging.DEBUG, "Job requeued", attributes
