"""Progress routes (urn:ojs:ext:progress): report, read, stream, and workflow progress.

Workers report with `POST /ojs/v1/workers/progress {job_id, percentage | progress, message?, data?}`
(the official SDKs) or `PUT /ojs/v1/jobs/{id}/progress {progress, data?, message?}` (the extension);
both call ReportProgress.
"""

from __future__ import annotations

from aiohttp import web
from ojs.v1 import events_pb2, progress_pb2

from gateway.client import OJSClient
from gateway.convert.common import json_object
from gateway.convert.progress import (
    ProgressFrames,
    progress_headers,
    progress_to_json,
    render_workflow_progress,
    report_request,
)
from gateway.errors import invalid_request
from gateway.routes.base import RouteGroup, json_response, rpc_metadata
from gateway.routes.events import EventRoutes
from ojs_json.scalars import timestamp


class ProgressRoutes(RouteGroup):
    """The progress extension; its stream runs on the event routes' SSE machinery."""

    def __init__(self, client: OJSClient, events: EventRoutes) -> None:
        super().__init__(client)
        self._events = events

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/ojs/v1/workers/progress", self.worker_progress)
        router.add_put("/ojs/v1/jobs/{id}/progress", self.put_progress)
        router.add_get("/ojs/v1/jobs/{id}/progress", self.get_progress)
        router.add_get("/ojs/v1/jobs/{id}/progress/stream", self.stream_progress, allow_head=False)
        router.add_get("/ojs/v1/workflows/{id}/progress", self.workflow_progress)

    async def worker_progress(self, request: web.Request) -> web.Response:
        body = json_object(await request.read())
        job_id = body.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise invalid_request("'job_id' is required", field="job_id")
        return await self._report(request, report_request(body, job_id))

    async def put_progress(self, request: web.Request) -> web.Response:
        body = json_object(await request.read())
        return await self._report(request, report_request(body, request.match_info["id"]))

    async def _report(self, request: web.Request, rpc: progress_pb2.ReportProgressRequest) -> web.Response:
        response = await self._client.ReportProgress(rpc, metadata=rpc_metadata(request))
        body = progress_to_json(response.progress)
        body["accepted"] = response.accepted
        if response.HasField("lease_expires_at"):
            body["lease_expires_at"] = timestamp(response.lease_expires_at)
        return json_response(body, headers=progress_headers(response.progress))

    async def get_progress(self, request: web.Request) -> web.Response:
        rpc = progress_pb2.GetJobProgressRequest(job_id=request.match_info["id"])
        response = await self._client.GetJobProgress(rpc, metadata=rpc_metadata(request))
        return json_response(progress_to_json(response.progress), headers=progress_headers(response.progress))

    async def stream_progress(self, request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["id"]
        frames = ProgressFrames()

        async def opening() -> tuple[bytes, bool]:
            # Read once the subscription is live, so no update falls between the two.
            rpc = progress_pb2.GetJobProgressRequest(job_id=job_id)
            response = await self._client.GetJobProgress(rpc, metadata=rpc_metadata(request))
            return frames.opening(response.progress)

        subscription = events_pb2.StreamEventsRequest(job_id=job_id)
        return await self._events.event_stream(request, subscription, render=frames.render, opening=opening)

    async def workflow_progress(self, request: web.Request) -> web.Response:
        rpc = progress_pb2.GetWorkflowProgressRequest(workflow_id=request.match_info["id"])
        response = await self._client.GetWorkflowProgress(rpc, metadata=rpc_metadata(request))
        return json_response(render_workflow_progress(response), headers={"Cache-Control": "no-cache"})
