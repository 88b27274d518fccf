"""Error statuses always fit in gRPC trailing metadata, however large the error's message and details."""

from __future__ import annotations

from typing import Any

import orjson
from google.rpc import error_details_pb2, status_pb2

from server.domain.errors import ErrorCode, OJSError
from server.rpc.errors import MAX_MESSAGE_BYTES, MAX_STATUS_BYTES, to_status

# gRPC's default soft limit on a peer's metadata; above it a client may refuse the reply.
SOFT_LIMIT = 8 * 1024


def _metadata_size(status: Any) -> int:
    return sum(len(key) + len(value) for key, value in status.trailing_metadata)


def _info(status: Any) -> error_details_pb2.ErrorInfo:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    info = error_details_pb2.ErrorInfo()
    status_pb2.Status.FromString(raw).details[0].Unpack(info)
    return info


def test_a_small_error_keeps_every_detail_twice() -> None:
    status = to_status(OJSError(ErrorCode.INVALID_REQUEST, "bad", details={"field": "queue", "limit": [1, 2]}))
    info = _info(status)
    assert info.metadata["field"] == "queue"
    assert orjson.loads(info.metadata["limit"]) == [1, 2]
    assert orjson.loads(info.metadata["details_json"]) == {"field": "queue", "limit": [1, 2]}


def test_large_details_are_given_once_then_dropped_keeping_the_field() -> None:
    errors = [{"index": i, "message": "é" * 300} for i in range(300)]
    error = OJSError(ErrorCode.INVALID_REQUEST, "x" * 100_000, details={"field": "jobs", "errors": errors})
    status = to_status(error, request_id="r" * 10_000)
    assert _metadata_size(status) < SOFT_LIMIT
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert len(raw) <= MAX_STATUS_BYTES
    assert len(status.details.encode()) <= MAX_MESSAGE_BYTES
    info = _info(status)
    details = orjson.loads(info.metadata["details_json"])
    assert details == {"field": "jobs", "details_truncated": True}


def test_a_lone_surrogate_in_a_message_cannot_break_the_status() -> None:
    status = to_status(OJSError(ErrorCode.INVALID_REQUEST, "bad \ud800 value", details={"field": "\udfff"}))
    assert "?" in status.details
