"""ErrorCode -> gRPC status with google.rpc.ErrorInfo (domain openjobspec.org)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import orjson
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.domain.errors import ErrorCode, OJSError

ERROR_DOMAIN = "openjobspec.org"

GRPC_STATUS: Mapping[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_PAYLOAD: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.SCHEMA_VALIDATION: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.VALIDATION_ERROR: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.DUPLICATE: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.QUEUE_PAUSED: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.UNSUPPORTED: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorCode.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.PAYLOAD_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.BACKEND_ERROR: grpc.StatusCode.INTERNAL,
    ErrorCode.BACKEND_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}

_CODE_NUMBER: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
}


# Trailing metadata past 8 KiB may be refused by the peer (gRPC's default soft limit; 16 KiB is the hard one):
# the status (sent base64-encoded) and the message (percent-encoded) stay well below it.
MAX_STATUS_BYTES = 4096
MAX_MESSAGE_BYTES = 400
# Longest single metadata value kept as is.
_MAX_VALUE_BYTES = 256


def _metadata_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _clip(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, marked with an ellipsis when cut."""
    raw = text.encode("utf-8", "replace")  # a lone surrogate becomes "?" rather than an error
    if len(raw) <= limit:
        return raw.decode()
    return raw[: limit - 3].decode("utf-8", "ignore") + "\u2026"


def _build(error: OJSError, message: str, details: dict[str, Any], request_id: str, *, per_key: bool) -> Any:
    metadata: dict[str, str] = {"retryable": "true" if error.retryable else "false"}
    if request_id:
        metadata["request_id"] = _clip(request_id, _MAX_VALUE_BYTES)
    if error.error_type:
        metadata["type"] = error.error_type
    for key, value in details.items():
        if per_key or isinstance(value, str | int | bool):
            metadata[key] = _metadata_value(value)
    if details:
        # Exact JSON types, for clients that want more than strings.
        metadata["details_json"] = orjson.dumps(details).decode()
    info = error_details_pb2.ErrorInfo(reason=error.code.value, domain=ERROR_DOMAIN, metadata=metadata)
    packed = [_pack(info)]
    field = details.get("field")
    if isinstance(field, str):
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        packed.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    retry_after_s = details.get("retry_after_s")
    if isinstance(retry_after_s, int):
        delay = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after_s))
        packed.append(_pack(delay))
    code = _CODE_NUMBER[GRPC_STATUS[error.code]]
    return status_pb2.Status(code=code, message=message, details=packed)


def to_status(error: OJSError, *, request_id: str = "") -> grpc.Status:
    """A rich status: ErrorInfo always, BadRequest for a validation error naming a field.

    It always fits in trailing metadata: a long message is clipped, and details that
    would outgrow MAX_STATUS_BYTES are given once (details_json) or, failing that,
    replaced by `details_truncated` with the field name kept.
    """
    message = _clip(error.message, MAX_MESSAGE_BYTES)
    details = {
        key: _clip(value, _MAX_VALUE_BYTES) if isinstance(value, str) else value for key, value in error.details.items()
    }
    status = _build(error, message, details, request_id, per_key=True)
    if status.ByteSize() > MAX_STATUS_BYTES:
        status = _build(error, message, details, request_id, per_key=False)
    if status.ByteSize() > MAX_STATUS_BYTES:
        kept: dict[str, Any] = {
            key: details[key] for key in ("field", "index", "errors_omitted", "retry_after_s") if key in details
        }
        status = _build(error, message, {**kept, "details_truncated": True}, request_id, per_key=True)
    converted = rpc_status.to_status(status)
    retry_after_s = error.details.get("retry_after_s")
    if isinstance(retry_after_s, int):
        # Shed load: the delay also as plain trailing metadata, the gRPC counterpart of HTTP's Retry-After.
        trailing = (*converted.trailing_metadata, ("retry-after", str(retry_after_s)))
        return _Status(converted.code, converted.details, trailing)
    return converted


class _Status(grpc.Status):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, str | bytes], ...]):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
