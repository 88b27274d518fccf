"""The dead-letter listing, retry and delete."""

from __future__ import annotations

from aiohttp import web
from ojs.v1 import queue_pb2

from gateway.convert.common import query_int
from gateway.convert.dead_letter import render_dead_letter
from gateway.convert.jobs import job_to_json
from gateway.routes.base import RouteGroup, json_response, optional_body, rpc_metadata

# Documented default of ListDeadLetter (queue.proto); echoed as pagination.limit when the client sent none.
_LIST_DEAD_LETTER_DEFAULT_LIMIT = 50


class DeadLetterRoutes(RouteGroup):
    """The dead-letter listing, retry and delete."""

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ojs/v1/dead-letter", self.list_dead_letter)
        router.add_post("/ojs/v1/dead-letter/{id}/retry", self.retry_dead_letter)
        router.add_delete("/ojs/v1/dead-letter/{id}", self.delete_dead_letter)

    async def list_dead_letter(self, request: web.Request) -> web.Response:
        limit = query_int(request.query, "limit")
        rpc = queue_pb2.ListDeadLetterRequest(
            queue=request.query.get("queue", ""),
            type=request.query.get("type", ""),
            limit=limit or 0,
            cursor=request.query.get("cursor", ""),
        )
        response = await self._client.ListDeadLetter(rpc, metadata=rpc_metadata(request))
        return json_response(render_dead_letter(response, limit or _LIST_DEAD_LETTER_DEFAULT_LIMIT))

    async def retry_dead_letter(self, request: web.Request) -> web.Response:
        await optional_body(request)
        rpc = queue_pb2.RetryDeadLetterRequest(job_id=request.match_info["id"])
        response = await self._client.RetryDeadLetter(rpc, metadata=rpc_metadata(request))
        return json_response({"job": job_to_json(response.job)})

    async def delete_dead_letter(self, request: web.Request) -> web.Response:
        rpc = queue_pb2.DeleteDeadLetterRequest(job_id=request.match_info["id"])
        response = await self._client.DeleteDeadLetter(rpc, metadata=rpc_metadata(request))
        # The call failing is what reports a missing job; success means it is gone.
        return json_response({"deleted": True, "job_id": response.job_id or rpc.job_id})
