"""Register, list, read and unregister cron entries."""

from __future__ import annotations

from aiohttp import web
from ojs.v1 import service_pb2

from gateway.convert.common import json_object
from gateway.convert.cron import cron_to_json, render_crons
from gateway.routes.base import RouteGroup, json_response, rpc_metadata


class CronRoutes(RouteGroup):
    """Register, list, read and unregister cron entries."""

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ojs/v1/cron", self.list_cron)
        router.add_post("/ojs/v1/cron", self.register_cron)
        router.add_get("/ojs/v1/cron/{name}", self.get_cron)
        router.add_delete("/ojs/v1/cron/{name}", self.unregister_cron)

    async def register_cron(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # Only checked for shape; the server reads either dialect and validates it.
        json_object(raw)
        rpc = service_pb2.RegisterCronRequest(cron_json=raw)
        response = await self._client.RegisterCron(rpc, metadata=rpc_metadata(request))
        entry = (
            response.entry
            if response.HasField("entry")
            else service_pb2.CronEntry(name=response.name, next_run_at=response.next_run_at)
        )
        cron = cron_to_json(entry)
        return json_response({"cron": cron, "cron_job": cron}, status=201 if response.created else 200)

    async def list_cron(self, request: web.Request) -> web.Response:
        response = await self._client.ListCron(service_pb2.ListCronRequest(), metadata=rpc_metadata(request))
        return json_response(render_crons(response))

    async def get_cron(self, request: web.Request) -> web.Response:
        rpc = service_pb2.GetCronRequest(name=request.match_info["name"])
        response = await self._client.GetCron(rpc, metadata=rpc_metadata(request))
        cron = cron_to_json(response.entry)
        return json_response({"cron": cron, "cron_job": cron})

    async def unregister_cron(self, request: web.Request) -> web.Response:
        rpc = service_pb2.UnregisterCronRequest(name=request.match_info["name"])
        response = await self._client.UnregisterCron(rpc, metadata=rpc_metadata(request))
        # The call failing is what reports a missing entry; success means it is gone.
        name = response.name or rpc.name
        return json_response({"deleted": True, "name": name, "cron": {"name": name}})
