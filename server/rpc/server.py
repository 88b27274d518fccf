"""The grpc.aio server: OJSService plus standard health checking and reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from ojs.v1 import admin_pb2, admin_pb2_grpc, service_pb2, service_pb2_grpc

from server.rpc.admin_servicer import AdminServicer
from server.rpc.interceptors import ApiKeyInterceptor
from server.rpc.malformed import MalformedRequestInterceptor
from server.rpc.servicer import OJSServicer

# Smallest receive limit: a batch of jobs sent as protobuf Values needs room beyond their JSON size.
MIN_RECEIVE_BYTES = 16 * 1024 * 1024
SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["OJSService"].full_name
# grpcio-reflection ships only v1alpha. grpc.reflection.v1 has the same messages (same fields and numbers,
# another package), so one servicer serves both; newer clients (grpcurl, Postman) ask for v1 first.
REFLECTION_V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
ADMIN_SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["OJSAdminService"].full_name


def _add_reflection(server: grpc.aio.Server, service_names: tuple[str, ...]) -> None:
    names = (*service_names, reflection.SERVICE_NAME, REFLECTION_V1_SERVICE_NAME)
    servicer = reflection.aio.ReflectionServicer(names)
    for service in (reflection.SERVICE_NAME, REFLECTION_V1_SERVICE_NAME):
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"ServerReflectionInfo": handler}),)
        )


class GrpcServer:
    def __init__(
        self,
        servicer: OJSServicer,
        *,
        admin: AdminServicer | None = None,
        api_key: str | None,
        reuse_port: bool = False,
        max_receive_bytes: int = MIN_RECEIVE_BYTES,
    ) -> None:
        interceptors: list[grpc.aio.ServerInterceptor] = [ApiKeyInterceptor(api_key)] if api_key else []
        interceptors.append(MalformedRequestInterceptor())
        # Several processes of `ojs-server --workers N` listen on one port; the kernel spreads connections.
        shared_port = [("grpc.so_reuseport", 1)] if reuse_port else []
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                *shared_port,
                # Requests as large as the HTTP gateway accepts, and more (the Value form of a job is bigger).
                ("grpc.max_receive_message_length", max(max_receive_bytes, MIN_RECEIVE_BYTES)),
                # Fetch replies keep within 4 MiB themselves; list replies may be larger.
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # HTTP/2 pings keep idle streams (StreamJobs, StreamEvents) alive through proxies.
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
        )
        service_pb2_grpc.add_OJSServiceServicer_to_server(servicer, self.server)
        names = [SERVICE_NAME]
        if admin is not None:
            admin_pb2_grpc.add_OJSAdminServiceServicer_to_server(admin, self.server)
            names.append(ADMIN_SERVICE_NAME)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        _add_reflection(self.server, (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))

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
