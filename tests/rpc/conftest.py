"""A stub of the running application's gRPC service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from ojs.v1 import service_pb2_grpc


@pytest.fixture
async def stub(grpc_target: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield service_pb2_grpc.OJSServiceStub(channel)
