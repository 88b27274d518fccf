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


def _metadata_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def to_status(error: OJSError, *, request_id: str = "") -> grpc.Status:
    """A rich status: ErrorInfo always, BadRequest for a validation error naming a field."""
    metadata: dict[str, str] = {"retryable": "true" if error.retryable else "false"}
    if request_id:
        metadata["request_id"] = request_id
    if error.error_type:
        metadata["type"] = error.error_type
    for key, value in error.details.items():
        metadata[key] = _metadata_value(value)
    if error.details:
        # Exact JSON types, for clients that want more than strings.
        metadata["details_json"] = orjson.dumps(error.details).decode()
    info = error_details_pb2.ErrorInfo(reason=error.code.value, domain=ERROR_DOMAIN, metadata=metadata)
    details = [_pack(info)]
    field = error.details.get("field")
    if isinstance(field, str):
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=error.message)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    retry_after_s = error.details.get("retry_after_s")
    if isinstance(retry_after_s, int):
        delay = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after_s))
        details.append(_pack(delay))
    grpc_code = GRPC_STATUS[error.code]
    status = status_pb2.Status(code=_CODE_NUMBER[grpc_code], message=error.message, details=details)
    converted = rpc_status.to_status(status)
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
