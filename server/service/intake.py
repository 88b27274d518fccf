"""What a job must satisfy to be taken in beyond its own fields: its size, a batch's defaults; and how a refused
batch reports its entries so the error fits any transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from server.domain.errors import ErrorCode, OJSError
from server.domain.job import NewJob
from server.domain.limits import MAX_META_BYTES
from server.domain.validation import parse_enqueue

# Entries of a refused batch listed in the error, each message clipped; the rest are counted, so the error
# fits any transport (gRPC trailing metadata above all).
MAX_REPORTED_ERRORS = 10
MAX_REPORTED_MESSAGE_CHARS = 160


def batch_entry_error(index: int, exc: OJSError) -> dict[str, Any]:
    """One refused entry of a batch: its index, code, clipped message and field."""
    message = exc.message
    if len(message) > MAX_REPORTED_MESSAGE_CHARS:
        message = message[: MAX_REPORTED_MESSAGE_CHARS - 1] + "\u2026"
    error: dict[str, Any] = {"index": index, "code": exc.code.value, "message": message}
    if "field" in exc.details:
        error["field"] = exc.details["field"]
    return error


def check_job_size(job: NewJob, max_job_bytes: int) -> None:
    """ojs-payload-limits.md: meta at most 64 KiB, the whole job at most `max_job_bytes` (413)."""
    meta_bytes = len(orjson.dumps(job.meta))
    if meta_bytes > MAX_META_BYTES:
        raise _too_large("meta", meta_bytes, MAX_META_BYTES)
    size = len(orjson.dumps(job.args)) + meta_bytes + (len(orjson.dumps(job.extra)) if job.extra else 0)
    if size > max_job_bytes:
        raise _too_large("envelope", size, max_job_bytes)


def _too_large(field: str, actual: int, maximum: int) -> OJSError:
    what = "job" if field == "envelope" else field
    return OJSError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"the {what} takes {actual} bytes as JSON, more than the limit of {maximum} bytes",
        details={"field": field, "actual_bytes": actual, "max_bytes": maximum},
    )


def check_defaults(defaults: Mapping[str, Any], now: int) -> None:
    """The batch's default options must be valid on their own, even where every job overrides them."""
    try:
        parse_enqueue({"type": "default", "args": [], "options": dict(defaults)}, now_ms=now)
    except OJSError as exc:
        field = exc.details.get("field")
        if isinstance(field, str):
            field = "default_options." + field.removeprefix("options.")
            exc.details["field"] = field
        exc.message = f"default_options: {exc.message}"
        exc.args = (exc.message,)
        raise


def batch_error(errors: list[dict[str, Any]], total: int) -> OJSError:
    """One error for a refused batch, listing at most MAX_REPORTED_ERRORS entries and counting the rest."""
    first = errors[0]
    shown = errors[:MAX_REPORTED_ERRORS]
    omitted = len(errors) - len(shown)
    details: dict[str, Any] = {"errors": shown, "index": first["index"]}
    more = ""
    if omitted:
        details["errors_omitted"] = omitted
        more = f" ({omitted} more errors not listed)"
    return OJSError(
        ErrorCode.INVALID_REQUEST,
        f"{len(errors)} of {total} jobs are invalid; nothing was enqueued. "
        f"jobs[{first['index']}]: {first['message']}{more}",
        details=details,
        error_type="validation_error",
    )
