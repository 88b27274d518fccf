"""The grpc.aio server: OJSService plus standard health checking and reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from ojs.v1 import service_pb2, service_pb2_grpc

from server.rpc.interceptors import ApiKeyInterceptor
from server.rpc.servicer import OJSServicer

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["OJSService"].full_name


class GrpcServer:
    def __init__(self, servicer: OJSServicer, *, api_key: str | None, reuse_port: bool = False) -> None:
        interceptors = [ApiKeyInterceptor(api_key)] if api_key else []
        # Several processes of `ojs-server --workers N` listen on one port; the kernel spreads connections.
        shared_port = [("grpc.so_reuseport", 1)] if reuse_port else []
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                *shared_port,
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # HTTP/2 pings keep idle streams (StreamJobs, StreamEvents) alive through proxies.
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
        )
        service_pb2_grpc.add_OJSServiceServicer_to_server(servicer, self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )

    def bind(self, host: str, port: int) -> int:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        bound: int = self.server.add_insecure_port(address)
        if bound == 0:
            raise OSError(f"cannot bind gRPC to {address}")
        return bound

    async def start(self, *, serving: bool = True) -> None:
        """`serving` False: health says NOT_SERVING until the caller turns it on (the application's readiness)."""
        await self.set_serving(serving)
        await self.server.start()

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set("", status)
        await self.health.set(SERVICE_NAME, status)

    async def stop(self, grace_s: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace_s)
