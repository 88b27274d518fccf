"""GET /ojs/manifest and GET /ojs/v1/health."""

from __future__ import annotations

import grpc
from aiohttp import web
from ojs.v1 import service_pb2

from gateway.convert.system import render_health, render_manifest
from gateway.errors import from_rpc_error
from gateway.routes.base import RouteGroup, json_response, rpc_metadata


class SystemRoutes(RouteGroup):
    """GET /ojs/manifest and GET /ojs/v1/health."""

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ojs/manifest", self.manifest)
        router.add_get("/ojs/v1/health", self.health)

    async def manifest(self, request: web.Request) -> web.Response:
        response = await self._client.Manifest(service_pb2.ManifestRequest(), metadata=rpc_metadata(request))
        return json_response(render_manifest(response))

    async def health(self, request: web.Request) -> web.Response:
        try:
            response = await self._client.Health(service_pb2.HealthRequest(), metadata=rpc_metadata(request))
        except grpc.RpcError as exc:
            # Health must answer even when the service cannot: report it degraded, not an error envelope.
            error = from_rpc_error(exc)
            body = {
                "status": "degraded",
                "backend": {"type": "redis", "status": "disconnected", "error": error.message},
            }
            return json_response(body, status=503, headers={"Retry-After": error.headers.get("Retry-After", "5")})
        status, body = render_health(response)
        return json_response(body, status=status)
