"""Enqueue (one or a batch), read, cancel and activate jobs."""

from __future__ import annotations

from aiohttp import web
from ojs.v1 import job_pb2

from gateway.convert.common import json_object
from gateway.convert.jobs import job_state, job_to_json, render_batch
from gateway.routes.base import RouteGroup, json_response, rpc_metadata


class JobRoutes(RouteGroup):
    """Enqueue (one or a batch), read, cancel and activate jobs."""

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/ojs/v1/jobs", self.enqueue)
        router.add_post("/ojs/v1/jobs/batch", self.enqueue_batch)
        router.add_get("/ojs/v1/jobs/{id}", self.get_job)
        router.add_delete("/ojs/v1/jobs/{id}", self.cancel_job)
        router.add_post("/ojs/v1/jobs/{id}/activate", self.activate_job)

    async def enqueue(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # Only checked for shape; the server parses and validates the envelope itself.
        json_object(raw)
        response = await self._client.Enqueue(
            job_pb2.EnqueueRequest(job_json=raw, json_only=True), metadata=rpc_metadata(request)
        )
        job = job_to_json(response.job)
        if response.deduplicated:
            return json_response({"job": job, "deduplicated": True})
        return json_response({"job": job}, status=201, headers={"Location": f"/ojs/v1/jobs/{response.job.id}"})

    async def enqueue_batch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # Only checked for shape; the server parses every job and validates the batch as a whole.
        json_object(raw)
        rpc = job_pb2.EnqueueBatchRequest(batch_json=raw, json_only=True)
        response = await self._client.EnqueueBatch(rpc, metadata=rpc_metadata(request))
        return json_response(render_batch(response), status=201)

    async def get_job(self, request: web.Request) -> web.Response:
        rpc = job_pb2.GetJobRequest(job_id=request.match_info["id"])
        response = await self._client.GetJob(rpc, metadata=rpc_metadata(request))
        return json_response({"job": job_to_json(response.job)})

    async def cancel_job(self, request: web.Request) -> web.Response:
        rpc = job_pb2.CancelJobRequest(job_id=request.match_info["id"])
        response = await self._client.CancelJob(rpc, metadata=rpc_metadata(request))
        job = job_to_json(response.job)
        if response.previous_state:
            job["previous_state"] = job_state(response.previous_state)
        return json_response({"job": job})

    async def activate_job(self, request: web.Request) -> web.Response:
        rpc = job_pb2.ActivateJobRequest(job_id=request.match_info["id"])
        response = await self._client.ActivateJob(rpc, metadata=rpc_metadata(request))
        return json_response({"job": job_to_json(response.job)})
