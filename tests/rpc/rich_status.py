"""Reading the rich status (google.rpc.Status with ErrorInfo) of a failed gRPC call."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def error_details(error: grpc.aio.AioRpcError) -> tuple[Any, Any]:
    """ErrorInfo and BadRequest (or None) of a failed call's rich status."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    assert status.code == error.code().value[0]
    info = bad_request = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
    assert info is not None, "rich status without ErrorInfo"
    assert info.domain == "openjobspec.org"
    return info, bad_request


def error_info(error: grpc.aio.AioRpcError) -> Any:
    return error_details(error)[0]
