"""One error table, three views (ARCHITECTURE §5): domain codes, gRPC statuses, HTTP statuses."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import grpc
import orjson
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from server.domain.errors import RETRYABLE, ErrorCode, OJSError, conflict, invalid, not_found, unprocessable
from server.rpc.errors import ERROR_DOMAIN, GRPC_STATUS, to_status

DETAILS_KEY = "grpc-status-details-bin"

# HTTP binding §16.3 and SPEC-GUIDE §0.8 (validation_error is the 422 of an invalid retry policy).
SPEC_HTTP_STATUS = {
    ErrorCode.INVALID_PAYLOAD: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.SCHEMA_VALIDATION: 400,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.DUPLICATE: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.QUEUE_PAUSED: 422,
    ErrorCode.UNSUPPORTED: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.BACKEND_ERROR: 500,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
}

SPEC_RETRYABLE = {
    ErrorCode.INVALID_PAYLOAD: False,
    ErrorCode.INVALID_REQUEST: False,
    ErrorCode.SCHEMA_VALIDATION: False,
    ErrorCode.NOT_FOUND: False,
    ErrorCode.DUPLICATE: False,
    ErrorCode.CONFLICT: False,
    ErrorCode.QUEUE_PAUSED: True,
    ErrorCode.UNSUPPORTED: False,
    ErrorCode.RATE_LIMITED: True,
    ErrorCode.BACKEND_ERROR: True,
    ErrorCode.BACKEND_UNAVAILABLE: True,
}

SPEC_GRPC_STATUS = {
    ErrorCode.INVALID_PAYLOAD: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.VALIDATION_ERROR: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.DUPLICATE: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorCode.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.BACKEND_ERROR: grpc.StatusCode.INTERNAL,
    ErrorCode.BACKEND_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def gateway_errors() -> Any:
    if importlib.util.find_spec("gateway.errors") is None:
        pytest.skip("gateway/errors.py does not exist yet")
    return importlib.import_module("gateway.errors")


def decode(status: grpc.Status) -> status_pb2.Status:
    trailers = dict(status.trailing_metadata)
    assert DETAILS_KEY in trailers
    raw = trailers[DETAILS_KEY]
    assert isinstance(raw, bytes)
    return status_pb2.Status.FromString(raw)


def unpack_all(rich: status_pb2.Status) -> tuple[Any, Any]:
    info = bad_request = None
    for detail in rich.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            assert info is None, "more than one ErrorInfo"
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            assert bad_request is None, "more than one BadRequest"
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
    return info, bad_request


# --------------------------------------------------------------------------- the tables


def test_every_code_has_a_retryable_row() -> None:
    assert set(RETRYABLE) == set(ErrorCode)
    assert all(isinstance(v, bool) for v in RETRYABLE.values())


def test_every_code_has_a_grpc_status_row() -> None:
    assert set(GRPC_STATUS) == set(ErrorCode)
    assert all(isinstance(v, grpc.StatusCode) for v in GRPC_STATUS.values())
    assert grpc.StatusCode.OK not in GRPC_STATUS.values()


def test_codes_are_lowercase_snake_case_and_distinct() -> None:
    values = [code.value for code in ErrorCode]
    assert len(set(values)) == len(values)
    for value in values:
        assert value == value.lower()
        assert value.replace("_", "").isalpha()


@pytest.mark.parametrize(("code", "retryable"), sorted(SPEC_RETRYABLE.items()))
def test_retryable_matches_the_binding(code: ErrorCode, retryable: bool) -> None:
    assert RETRYABLE[code] is retryable
    assert OJSError(code, "m").retryable is retryable


@pytest.mark.parametrize(("code", "status"), sorted(SPEC_GRPC_STATUS.items()))
def test_grpc_status_of_the_main_codes(code: ErrorCode, status: grpc.StatusCode) -> None:
    assert GRPC_STATUS[code] is status


def test_every_code_has_an_http_status_in_the_gateway() -> None:
    module = gateway_errors()
    table: Mapping[str, int] = module.STATUS_BY_CODE
    missing = sorted(code.value for code in ErrorCode if code.value not in table)
    assert missing == [], f"gateway STATUS_BY_CODE lacks {missing}"
    for code in ErrorCode:
        assert 400 <= table[code.value] <= 599


@pytest.mark.parametrize(("code", "status"), sorted(SPEC_HTTP_STATUS.items()))
def test_gateway_http_status_matches_the_binding(code: ErrorCode, status: int) -> None:
    table: Mapping[str, int] = gateway_errors().STATUS_BY_CODE
    assert table.get(code.value) == status


def test_gateway_retryable_defaults_agree_with_the_domain() -> None:
    module = gateway_errors()
    table: Mapping[str, bool] | None = getattr(module, "RETRYABLE_BY_CODE", None)
    if table is None:
        pytest.skip("the gateway has no retryable table of its own")
    disagreements = {
        code.value: (RETRYABLE[code], table.get(code.value))
        for code in ErrorCode
        if table.get(code.value) is not RETRYABLE[code]
    }
    assert disagreements == {}


def test_http_and_grpc_views_agree_on_the_class_of_error() -> None:
    table: Mapping[str, int] = gateway_errors().STATUS_BY_CODE
    expected_http = {
        grpc.StatusCode.INVALID_ARGUMENT: {400, 422},
        grpc.StatusCode.NOT_FOUND: {404},
        grpc.StatusCode.ALREADY_EXISTS: {409},
        grpc.StatusCode.FAILED_PRECONDITION: {409, 422},
        grpc.StatusCode.UNIMPLEMENTED: {501},
        grpc.StatusCode.RESOURCE_EXHAUSTED: {413, 429},
        grpc.StatusCode.UNAUTHENTICATED: {401},
        grpc.StatusCode.PERMISSION_DENIED: {403},
        grpc.StatusCode.INTERNAL: {500},
        grpc.StatusCode.UNAVAILABLE: {503},
    }
    for code in ErrorCode:
        if code.value in table:
            assert table[code.value] in expected_http[GRPC_STATUS[code]], code


# --------------------------------------------------------------------------- helpers


def test_error_helpers() -> None:
    error = invalid("bad type", field="type")
    assert error.code is ErrorCode.INVALID_REQUEST
    assert error.details == {"field": "type"}
    assert error.error_type == "validation_error"
    error = unprocessable("bad coefficient", field="retry.backoff_coefficient", got=0.5)
    assert error.code is ErrorCode.VALIDATION_ERROR
    assert error.details == {"field": "retry.backoff_coefficient", "got": 0.5}
    error = not_found("job", "abc")
    assert error.code is ErrorCode.NOT_FOUND
    assert "abc" in error.message
    error = conflict("nope", current_state="completed")
    assert error.code is ErrorCode.CONFLICT
    assert error.details == {"current_state": "completed"}
    assert str(error) == "nope"


# --------------------------------------------------------------------------- to_status


@pytest.mark.parametrize("code", list(ErrorCode))
def test_to_status_for_every_code(code: ErrorCode) -> None:
    status = to_status(OJSError(code, f"message for {code.value}"))
    assert status.code is GRPC_STATUS[code]
    assert status.details == f"message for {code.value}"
    rich = decode(status)
    assert rich.code == status.code.value[0]
    assert rich.code != code_pb2.OK
    assert rich.message == status.details
    info, bad_request = unpack_all(rich)
    assert info is not None
    assert info.reason == code.value
    assert info.domain == ERROR_DOMAIN == "openjobspec.org"
    assert info.metadata["retryable"] == ("true" if RETRYABLE[code] else "false")
    assert "request_id" not in info.metadata
    assert bad_request is None


def test_to_status_with_a_field_adds_bad_request() -> None:
    error = invalid("type 'Email.Send' does not match", field="type")
    rich = decode(to_status(error))
    info, bad_request = unpack_all(rich)
    assert info.reason == "invalid_request"
    assert info.metadata["type"] == "validation_error"
    assert info.metadata["field"] == "type"
    assert info.metadata["retryable"] == "false"
    assert bad_request is not None
    assert len(bad_request.field_violations) == 1
    assert bad_request.field_violations[0].field == "type"
    assert bad_request.field_violations[0].description == error.message


def test_to_status_carries_the_request_id() -> None:
    info, _ = unpack_all(decode(to_status(not_found("job", "x"), request_id="req-123")))
    assert info.metadata["request_id"] == "req-123"


def test_to_status_encodes_non_string_details_as_json() -> None:
    details = {"count": 3, "flag": True, "nested": {"a": [1, "b"]}, "name": "plain"}
    error = OJSError(ErrorCode.CONFLICT, "m", details=details)
    info, bad_request = unpack_all(decode(to_status(error)))
    assert info.metadata["count"] == "3"
    assert info.metadata["flag"] == "true"
    assert orjson.loads(info.metadata["nested"]) == {"a": [1, "b"]}
    assert info.metadata["name"] == "plain"
    assert orjson.loads(info.metadata["details_json"]) == details
    assert bad_request is None


def test_to_status_of_a_conflict_names_the_current_state() -> None:
    error = conflict("cannot acknowledge", job_id="j", current_state="completed", expected_state="active")
    status = to_status(error)
    assert status.code is grpc.StatusCode.FAILED_PRECONDITION
    info, _ = unpack_all(decode(status))
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "completed"
    assert info.metadata["expected_state"] == "active"
