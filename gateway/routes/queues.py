"""Queue listing, stats, pause and resume."""

from __future__ import annotations

from aiohttp import web
from ojs.v1 import queue_pb2

from gateway.convert.common import query_int
from gateway.convert.queues import render_queue_state, render_queue_stats, render_queues
from gateway.routes.base import RouteGroup, json_response, optional_body, rpc_metadata

# Documented default of ListQueues (queue.proto); echoed as pagination.limit when the client sent none.
_LIST_QUEUES_DEFAULT_LIMIT = 100


class QueueRoutes(RouteGroup):
    """Queue listing, stats, pause and resume."""

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ojs/v1/queues", self.list_queues)
        router.add_get("/ojs/v1/queues/{name}/stats", self.queue_stats)
        router.add_post("/ojs/v1/queues/{name}/pause", self.pause_queue)
        router.add_post("/ojs/v1/queues/{name}/resume", self.resume_queue)

    async def list_queues(self, request: web.Request) -> web.Response:
        limit = query_int(request.query, "limit")
        rpc = queue_pb2.ListQueuesRequest(limit=limit or 0, cursor=request.query.get("cursor", ""))
        response = await self._client.ListQueues(rpc, metadata=rpc_metadata(request))
        return json_response(render_queues(response, limit or _LIST_QUEUES_DEFAULT_LIMIT))

    async def queue_stats(self, request: web.Request) -> web.Response:
        rpc = queue_pb2.QueueStatsRequest(queue=request.match_info["name"])
        response = await self._client.QueueStats(rpc, metadata=rpc_metadata(request))
        return json_response(render_queue_stats(response, rpc.queue))

    async def pause_queue(self, request: web.Request) -> web.Response:
        await optional_body(request)
        rpc = queue_pb2.PauseQueueRequest(queue=request.match_info["name"])
        response = await self._client.PauseQueue(rpc, metadata=rpc_metadata(request))
        info = response.queue if response.HasField("queue") else None
        return json_response(render_queue_state(info, rpc.queue, paused=True))

    async def resume_queue(self, request: web.Request) -> web.Response:
        await optional_body(request)
        rpc = queue_pb2.ResumeQueueRequest(queue=request.match_info["name"])
        response = await self._client.ResumeQueue(rpc, metadata=rpc_metadata(request))
        info = response.queue if response.HasField("queue") else None
        return json_response(render_queue_state(info, rpc.queue, paused=False))
