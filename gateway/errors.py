"""HTTP view of the error table: ErrorInfo.reason -> status, and the error envelope.

The server decides what went wrong and says so in `google.rpc.ErrorInfo`
(reason = OJS code, metadata = retryable, type, details, ...); the gateway
only maps the reason to an HTTP status and copies fields into
`{"error": {...}}`. It never looks inside the message text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import grpc
import orjson
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "DOCS_URL",
    "RETRYABLE_BY_CODE",
    "STATUS_BY_CODE",
    "ApiError",
    "backend_error",
    "from_http_status",
    "from_rpc_error",
    "invalid_payload",
    "invalid_request",
    "not_found",
    "payload_too_large",
    "unauthenticated",
    "unsupported",
]

logger = logging.getLogger(__name__)

DOCS_URL = "https://openjobspec.org/spec/v1/ojs-http-binding#errors"
NOT_FOUND_HINT = "Check the identifier; finished jobs are removed once their retention period ends."

_STATUS_DETAILS_KEY = "grpc-status-details-bin"

# HTTP status of each OJS error code (HTTP binding §16.3 plus this server's additions).
STATUS_BY_CODE: Mapping[str, int] = {
    "invalid_payload": 400,
    "invalid_request": 400,
    "schema_validation": 400,
    "validation_error": 422,
    "not_found": 404,
    "duplicate": 409,
    "conflict": 409,
    "queue_paused": 422,
    "unsupported": 422,
    "unimplemented": 501,
    "rate_limited": 429,
    "payload_too_large": 413,
    "unauthenticated": 401,
    "permission_denied": 403,
    "backend_error": 500,
    "backend_unavailable": 503,
}

# Used only when ErrorInfo.metadata carries no "retryable"; unknown codes are not retryable (§16.3).
RETRYABLE_BY_CODE: Mapping[str, bool] = {
    "invalid_payload": False,
    "invalid_request": False,
    "schema_validation": False,
    "validation_error": False,
    "not_found": False,
    "duplicate": False,
    "conflict": False,
    "queue_paused": True,
    "unsupported": False,
    "unimplemented": False,
    "rate_limited": True,
    "payload_too_large": False,
    "unauthenticated": False,
    "permission_denied": False,
    "backend_error": True,
    "backend_unavailable": True,
}

_STATUS_BY_GRPC_CODE: Mapping[Any, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# The code shown when the status carries no ErrorInfo (e.g. a transport failure).
_CODE_BY_GRPC_CODE: Mapping[Any, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_request",
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.ALREADY_EXISTS: "duplicate",
    grpc.StatusCode.FAILED_PRECONDITION: "conflict",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "rate_limited",
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "permission_denied",
    grpc.StatusCode.UNIMPLEMENTED: "unimplemented",
    grpc.StatusCode.UNAVAILABLE: "backend_unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "backend_unavailable",
}

# ErrorInfo.metadata keys with a place of their own in the envelope; every other key is a detail.
_RESERVED_METADATA = frozenset({"retryable", "request_id", "type", "hint", "docs_url", "details_json"})

# Seconds a client should wait before retrying when the server names no delay.
_DEFAULT_RETRY_AFTER_S = {429: 1, 503: 5}

_RATE_LIMIT_HEADERS = {
    "x-ojs-ratelimit-limit": "X-RateLimit-Limit",
    "x-ojs-ratelimit-remaining": "X-RateLimit-Remaining",
    "x-ojs-ratelimit-reset": "X-RateLimit-Reset",
}


class ApiError(Exception):
    """An error response: HTTP status, envelope fields and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retryable: bool | None = None,
        details: Mapping[str, Any] | None = None,
        error_type: str | None = None,
        hint: str | None = None,
        docs_url: str | None = DOCS_URL,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = RETRYABLE_BY_CODE.get(code, False) if retryable is None else retryable
        self.details: dict[str, Any] = dict(details or {})
        self.error_type = error_type
        if hint is None and status == 404:
            hint = NOT_FOUND_HINT
        self.hint = hint
        self.docs_url = docs_url
        self.headers: dict[str, str] = dict(headers or {})
        if status in _DEFAULT_RETRY_AFTER_S and "Retry-After" not in self.headers:
            self.headers["Retry-After"] = str(_DEFAULT_RETRY_AFTER_S[status])

    def body(self, request_id: str) -> bytes:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.details:
            error["details"] = self.details
        error["request_id"] = request_id
        if self.error_type:
            error["type"] = self.error_type
        if self.hint:
            error["hint"] = self.hint
        if self.docs_url:
            error["docs_url"] = self.docs_url
        return orjson.dumps({"error": error})

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


# ---------------------------------------------------------------------------
# Errors the gateway detects itself
# ---------------------------------------------------------------------------


def _error(code: str, message: str, **kwargs: Any) -> ApiError:
    return ApiError(STATUS_BY_CODE[code], code, message, **kwargs)


def invalid_payload(message: str) -> ApiError:
    return _error("invalid_payload", message)


def invalid_request(message: str, *, field: str | None = None) -> ApiError:
    details = {"field": field} if field else None
    return _error("invalid_request", message, details=details, error_type="validation_error")


def not_found(message: str, *, hint: str | None = None) -> ApiError:
    return _error("not_found", message, hint=hint)


def payload_too_large(max_bytes: int) -> ApiError:
    return _error(
        "payload_too_large",
        f"request body exceeds the limit of {max_bytes} bytes",
        details={"max_bytes": max_bytes},
    )


def unauthenticated() -> ApiError:
    return _error(
        "unauthenticated",
        "missing or invalid credentials; send 'Authorization: Bearer <api key>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def unsupported(message: str, **details: Any) -> ApiError:
    return _error("unsupported", message, details=details)


def backend_error() -> ApiError:
    return _error("backend_error", "internal server error")


def from_http_status(status: int, message: str | None = None) -> ApiError:
    """An envelope for an HTTP-level failure raised by aiohttp itself."""
    if status == 404:
        return not_found(message or "not found")
    if status == 413:
        return _error("payload_too_large", message or "request body too large")
    code = "backend_error" if status >= 500 else "invalid_request"
    return ApiError(status, code, message or _phrase(status))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


# ---------------------------------------------------------------------------
# Errors from the service
# ---------------------------------------------------------------------------


def _call(err: object, name: str) -> Any:
    method = getattr(err, name, None)
    return method() if callable(method) else None


def _rich_status(trailing_metadata: Iterable[tuple[str, str | bytes]] | None) -> Any:
    for key, value in trailing_metadata or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:
                logger.warning("undecodable %s trailer ignored", _STATUS_DETAILS_KEY)
                return None
    return None


def _metadata_value(trailing_metadata: Iterable[tuple[str, str | bytes]] | None, name: str) -> str | None:
    for key, value in trailing_metadata or ():
        if key == name and isinstance(value, str):
            return value
    return None


def _retry_after(retry_info: Any, trailing_metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    if retry_info is not None and retry_info.HasField("retry_delay"):
        seconds = retry_info.retry_delay.seconds + retry_info.retry_delay.nanos / 1e9
        return str(max(1, math.ceil(seconds)))
    value = _metadata_value(trailing_metadata, "retry-after")
    if value is not None and value.strip().isdigit():
        return value.strip()
    return None


def from_rpc_error(err: BaseException) -> ApiError:
    """Map a failed RPC (a `grpc.RpcError` with a rich status) to an HTTP error."""
    grpc_code = _call(err, "code")
    message = _call(err, "details") or ""
    trailing = _call(err, "trailing_metadata")
    info = bad_request = retry_info = help_ = None
    rich = _rich_status(trailing)
    if rich is not None:
        for detail in rich.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry_info = error_details_pb2.RetryInfo()
                detail.Unpack(retry_info)
            elif detail.Is(error_details_pb2.Help.DESCRIPTOR):
                help_ = error_details_pb2.Help()
                detail.Unpack(help_)

    if info is not None and info.reason:
        code: str = info.reason
        status = STATUS_BY_CODE.get(code) or _STATUS_BY_GRPC_CODE.get(grpc_code, 500)
    else:
        # Not from the servicer's error table (a transport failure, a proxy): its text
        # is grpc's, not ours, so log it and answer with a neutral message.
        code = _CODE_BY_GRPC_CODE.get(grpc_code, "backend_error")
        status = _STATUS_BY_GRPC_CODE.get(grpc_code, 500)
        logger.warning("RPC failed without ErrorInfo: %s %s", grpc_code, message)
        message = "the job service is unavailable" if status in (503, 504) else _phrase(status)

    metadata: Mapping[str, str] = info.metadata if info is not None else {}
    retryable_text = metadata.get("retryable")
    retryable = retryable_text.lower() == "true" if retryable_text is not None else None

    details: dict[str, Any] = {key: value for key, value in metadata.items() if key not in _RESERVED_METADATA}
    details_json = metadata.get("details_json")
    if details_json:
        try:
            parsed = orjson.loads(details_json)
        except orjson.JSONDecodeError:
            logger.warning("ErrorInfo details_json is not JSON; ignored")
        else:
            if isinstance(parsed, dict):
                details.update(parsed)
    if bad_request is not None and bad_request.field_violations and "field_violations" not in details:
        details["field_violations"] = [
            {"field": violation.field, "description": violation.description}
            for violation in bad_request.field_violations
        ]

    docs_url = metadata.get("docs_url") or DOCS_URL
    if help_ is not None and help_.links and not metadata.get("docs_url"):
        docs_url = help_.links[0].url or docs_url

    headers: dict[str, str] = {}
    if status in (429, 503):
        retry_after = _retry_after(retry_info, trailing)
        if retry_after is not None:
            headers["Retry-After"] = retry_after
    for key, header in _RATE_LIMIT_HEADERS.items():
        value = _metadata_value(trailing, key)
        if value is not None:
            headers[header] = value

    return ApiError(
        status,
        code,
        message or _phrase(status),
        retryable=retryable,
        details=details,
        error_type=metadata.get("type") or None,
        hint=metadata.get("hint") or None,
        docs_url=docs_url,
        headers=headers,
    )
