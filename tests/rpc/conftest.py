"""`stub`: the gRPC service of the session's running application; `clocked`: the same over an application whose
clock the test steps. Short forms of the RPCs are in calls.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from ojs.v1 import service_pb2_grpc

from server.domain.clock import ManualClock
from tests.rpc.calls import Clocked

if TYPE_CHECKING:
    from server.app import Application


@pytest.fixture
async def stub(grpc_target: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield service_pb2_grpc.OJSServiceStub(channel)


@pytest.fixture
async def clocked(clocked_app: Application) -> AsyncIterator[Clocked]:
    assert isinstance(clocked_app.clock, ManualClock)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{clocked_app.grpc_port}") as channel:
        yield Clocked(service_pb2_grpc.OJSServiceStub(channel), clocked_app.clock)
