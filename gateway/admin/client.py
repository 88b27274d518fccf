"""The admin service as the gateway calls it: the generated async stub's interface, in process or over a channel.

Built from the service descriptor like `gateway.client`'s adapters, with the
same context, error shape and deadlines, so a new admin RPC needs no code here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import grpc
from ojs.v1 import admin_pb2, admin_pb2_grpc

from gateway.client import Metadata, bind_channel, bind_in_process

__all__ = ["ADMIN_SERVICE", "AdminClient", "ChannelAdminClient", "InProcessAdminClient"]

AdminClient: TypeAlias = "admin_pb2_grpc.OJSAdminServiceAsyncStub"
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["OJSAdminService"]

if TYPE_CHECKING:
    _StubShaped: TypeAlias = admin_pb2_grpc.OJSAdminServiceAsyncStub
else:
    _StubShaped = object


class InProcessAdminClient(_StubShaped):
    """The admin servicer called directly: no serialization, no socket (see `gateway.client.InProcessClient`)."""

    def __init__(self, servicer: admin_pb2_grpc.OJSAdminServiceServicer, *, metadata: Metadata = ()) -> None:
        bind_in_process(self, servicer, ADMIN_SERVICE, metadata=metadata)


class ChannelAdminClient(_StubShaped):
    """The admin service over a `grpc.aio.Channel` (the standalone gateway)."""

    def __init__(self, channel: grpc.aio.Channel, *, metadata: Metadata = (), timeout_s: float | None = 30.0) -> None:
        stub = admin_pb2_grpc.OJSAdminServiceStub(channel)
        bind_channel(self, stub, ADMIN_SERVICE, metadata=metadata, timeout_s=timeout_s)
