"""The worker protocol (fetch, ack, nack, heartbeat) and the worker registry under /admin/workers."""

from __future__ import annotations

from aiohttp import web
from ojs.v1 import worker_pb2

from gateway.convert.common import json_object, query_int
from gateway.convert.jobs import job_to_json
from gateway.convert.workers import (
    ack_batch_request,
    ack_request,
    fetch_request,
    heartbeat_request,
    nack_request,
    render_ack,
    render_ack_batch,
    render_heartbeat,
    render_nack,
    render_workers,
    worker_to_json,
)
from gateway.routes.base import RouteGroup, json_response, optional_body, rpc_metadata

# Documented default of ListWorkers (worker.proto); echoed as pagination.limit when the client sent none.
_LIST_WORKERS_DEFAULT_LIMIT = 100


class WorkerRoutes(RouteGroup):
    """The worker protocol (fetch, ack, nack, heartbeat) and the worker registry under /admin/workers."""

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/ojs/v1/workers/fetch", self.fetch)
        router.add_post("/ojs/v1/workers/ack", self.ack)
        router.add_post("/ojs/v1/workers/ack/batch", self.ack_batch)
        router.add_post("/ojs/v1/workers/nack", self.nack)
        router.add_post("/ojs/v1/workers/heartbeat", self.heartbeat)
        router.add_get("/ojs/v1/admin/workers", self.list_workers)
        router.add_post("/ojs/v1/admin/workers/{id}/quiet", self.quiet_worker)
        router.add_post("/ojs/v1/admin/workers/{id}/terminate", self.terminate_worker)
        router.add_post("/ojs/v1/admin/workers/{id}/resume", self.resume_worker)

    async def fetch(self, request: web.Request) -> web.Response:
        body = json_object(await request.read())
        response = await self._client.Fetch(fetch_request(body), metadata=rpc_metadata(request))
        return json_response({"jobs": [job_to_json(job) for job in response.jobs]})

    async def ack(self, request: web.Request) -> web.Response:
        raw = await request.read()
        rpc = ack_request(json_object(raw), raw)
        response = await self._client.Ack(rpc, metadata=rpc_metadata(request))
        return json_response(render_ack(response, rpc.job_id))

    async def ack_batch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        rpc = ack_batch_request(json_object(raw), raw)
        response = await self._client.AckBatch(rpc, metadata=rpc_metadata(request))
        return json_response(render_ack_batch(response))

    async def nack(self, request: web.Request) -> web.Response:
        rpc = nack_request(json_object(await request.read()))
        response = await self._client.Nack(rpc, metadata=rpc_metadata(request))
        return json_response(render_nack(response, rpc.job_id))

    async def heartbeat(self, request: web.Request) -> web.Response:
        rpc = heartbeat_request(json_object(await request.read()))
        response = await self._client.Heartbeat(rpc, metadata=rpc_metadata(request))
        return json_response(render_heartbeat(response))

    async def list_workers(self, request: web.Request) -> web.Response:
        limit = query_int(request.query, "limit")
        rpc = worker_pb2.ListWorkersRequest(limit=limit or 0, cursor=request.query.get("cursor", ""))
        response = await self._client.ListWorkers(rpc, metadata=rpc_metadata(request))
        return json_response(render_workers(response, limit or _LIST_WORKERS_DEFAULT_LIMIT))

    async def quiet_worker(self, request: web.Request) -> web.Response:
        return await self._set_directive(request, worker_pb2.WORKER_STATE_QUIET)

    async def terminate_worker(self, request: web.Request) -> web.Response:
        return await self._set_directive(request, worker_pb2.WORKER_STATE_TERMINATE)

    async def resume_worker(self, request: web.Request) -> web.Response:
        return await self._set_directive(request, worker_pb2.WORKER_STATE_RUNNING)

    async def _set_directive(self, request: web.Request, directive: worker_pb2.WorkerState.ValueType) -> web.Response:
        await optional_body(request)
        rpc = worker_pb2.SetWorkerDirectiveRequest(worker_id=request.match_info["id"], directive=directive)
        response = await self._client.SetWorkerDirective(rpc, metadata=rpc_metadata(request))
        return json_response({"worker": worker_to_json(response.worker)})
