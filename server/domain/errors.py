"""OJS error codes and the exception every layer raises for an expected failure.

The code is the wire vocabulary of the HTTP binding (§16.3): it becomes
`ErrorInfo.reason` over gRPC and `error.code` over HTTP.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class ErrorCode(enum.StrEnum):
    INVALID_PAYLOAD = "invalid_payload"
    INVALID_REQUEST = "invalid_request"
    SCHEMA_VALIDATION = "schema_validation"
    # Well-formed but semantically invalid (openapi: 422), e.g. a bad retry policy.
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    QUEUE_PAUSED = "queue_paused"
    UNSUPPORTED = "unsupported"
    UNIMPLEMENTED = "unimplemented"
    RATE_LIMITED = "rate_limited"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    BACKEND_ERROR = "backend_error"
    BACKEND_UNAVAILABLE = "backend_unavailable"


# Whether a client may retry the same request unchanged.
RETRYABLE: Mapping[ErrorCode, bool] = {
    ErrorCode.INVALID_PAYLOAD: False,
    ErrorCode.INVALID_REQUEST: False,
    ErrorCode.SCHEMA_VALIDATION: False,
    ErrorCode.VALIDATION_ERROR: False,
    ErrorCode.NOT_FOUND: False,
    ErrorCode.DUPLICATE: False,
    ErrorCode.CONFLICT: False,
    ErrorCode.QUEUE_PAUSED: True,
    ErrorCode.UNSUPPORTED: False,
    ErrorCode.UNIMPLEMENTED: False,
    ErrorCode.RATE_LIMITED: True,
    ErrorCode.PAYLOAD_TOO_LARGE: False,
    ErrorCode.UNAUTHENTICATED: False,
    ErrorCode.PERMISSION_DENIED: False,
    ErrorCode.BACKEND_ERROR: True,
    ErrorCode.BACKEND_UNAVAILABLE: True,
}


class OJSError(Exception):
    """An expected failure with a wire code, a safe message and optional details.

    `error_type` is the coarse class the HTTP binding shows as `error.type`
    (e.g. "validation_error"); details values must be JSON-compatible.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.error_type = error_type

    @property
    def retryable(self) -> bool:
        return RETRYABLE[self.code]

    def __repr__(self) -> str:
        return f"OJSError({self.code.value!r}, {self.message!r})"


def invalid(message: str, *, field: str | None = None, **details: Any) -> OJSError:
    """A request that fails validation (400 / INVALID_ARGUMENT)."""
    if field is not None:
        details = {"field": field, **details}
    return OJSError(ErrorCode.INVALID_REQUEST, message, details=details, error_type="validation_error")


def unprocessable(message: str, *, field: str, **details: Any) -> OJSError:
    """Valid JSON whose meaning cannot be accepted (422 / INVALID_ARGUMENT)."""
    return OJSError(
        ErrorCode.VALIDATION_ERROR, message, details={"field": field, **details}, error_type="validation_error"
    )


def not_found(what: str, ident: str) -> OJSError:
    return OJSError(ErrorCode.NOT_FOUND, f"{what} '{ident}' not found", details={"resource": what, "id": ident})


def conflict(message: str, **details: Any) -> OJSError:
    return OJSError(ErrorCode.CONFLICT, message, details=details)
