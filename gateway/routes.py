"""REST routes: each parses JSON, builds one request message, calls one RPC and renders the reply.

Errors are not handled here: a `grpc.RpcError` or `ApiError` raised by a route
is turned into the error envelope by the middleware in `gateway.app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import orjson
from aiohttp import web
from ojs.v1 import events_pb2, job_pb2, queue_pb2, service_pb2, worker_pb2, workflow_pb2

from gateway.client import OJSClient
from gateway.convert.common import json_object, query_int
from gateway.convert.cron import cron_to_json, render_crons
from gateway.convert.dead_letter import render_dead_letter
from gateway.convert.events import list_events_request, render_events, sse_frame, stream_events_request
from gateway.convert.jobs import job_state, job_to_json, render_batch
from gateway.convert.queues import render_queue_state, render_queue_stats, render_queues
from gateway.convert.system import render_health, render_manifest
from gateway.convert.workers import (
    ack_request,
    fetch_request,
    heartbeat_request,
    nack_request,
    render_ack,
    render_heartbeat,
    render_nack,
    render_workers,
    worker_to_json,
)
from gateway.convert.workflows import render_cancelled_workflow, workflow_to_json
from gateway.errors import from_rpc_error

__all__ = ["EVENT_STREAM", "MEDIA_TYPE", "REQUEST_ID", "Routes", "json_response", "rpc_metadata"]

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/openjobspec+json"
# The one other content type: the Server-Sent Events routes.
EVENT_STREAM = "text/event-stream"

REQUEST_ID = web.RequestKey("ojs_request_id", str)

# Documented defaults of the list RPCs (queue.proto); echoed as pagination.limit when the client sent none.
_LIST_QUEUES_DEFAULT_LIMIT = 100
_LIST_DEAD_LETTER_DEFAULT_LIMIT = 50
_LIST_WORKERS_DEFAULT_LIMIT = 100  # worker.proto

_FORWARDED_HEADERS = (("traceparent", "traceparent"), ("tracestate", "tracestate"))

# An event stream sends its headers once the first event arrives or after this long, whichever is first;
# a subscription the service rejects within it (a bad cursor) still gets the JSON error envelope.
_SSE_OPEN_WAIT_S = 0.25
# How often an event stream with nothing to send checks that its client is still there.
_SSE_IDLE_CHECK_S = 1.0


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A response with a JSON body; `body` may be bytes that already are JSON."""
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    response = web.Response(body=payload, status=status, headers=headers)
    # Set verbatim: aiohttp's content_type/charset helpers would append "; charset=utf-8".
    response.headers["Content-Type"] = MEDIA_TYPE
    return response


def _metadata_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def rpc_metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    """gRPC metadata of the call made for `request`: request id and trace context."""
    metadata = [("x-ojs-request-id", request[REQUEST_ID])]
    for header, key in _FORWARDED_HEADERS:
        value = request.headers.get(header)
        if value and _metadata_safe(value):
            metadata.append((key, value))
    return tuple(metadata)


class Routes:
    """The handlers, bound to one `OJSClient`."""

    def __init__(
        self,
        client: OJSClient,
        *,
        sse_open_wait_s: float = _SSE_OPEN_WAIT_S,
        sse_idle_check_s: float = _SSE_IDLE_CHECK_S,
    ) -> None:
        self._client = client
        self._sse_open_wait_s = sse_open_wait_s
        self._sse_idle_check_s = sse_idle_check_s
        self._closing = False

    def add_to(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/ojs/manifest", self.manifest)
        router.add_get("/ojs/v1/health", self.health)
        router.add_post("/ojs/v1/jobs", self.enqueue)
        router.add_post("/ojs/v1/jobs/batch", self.enqueue_batch)
        router.add_get("/ojs/v1/jobs/{id}", self.get_job)
        router.add_get("/ojs/v1/jobs/{id}/events", self.job_events, allow_head=False)
        router.add_delete("/ojs/v1/jobs/{id}", self.cancel_job)
        router.add_post("/ojs/v1/jobs/{id}/activate", self.activate_job)
        router.add_post("/ojs/v1/workers/fetch", self.fetch)
        router.add_post("/ojs/v1/workers/ack", self.ack)
        router.add_post("/ojs/v1/workers/nack", self.nack)
        router.add_post("/ojs/v1/workers/heartbeat", self.heartbeat)
        router.add_get("/ojs/v1/queues", self.list_queues)
        router.add_get("/ojs/v1/queues/{name}/stats", self.queue_stats)
        router.add_get("/ojs/v1/queues/{name}/events", self.queue_events, allow_head=False)
        router.add_post("/ojs/v1/queues/{name}/pause", self.pause_queue)
        router.add_post("/ojs/v1/queues/{name}/resume", self.resume_queue)
        router.add_get("/ojs/v1/dead-letter", self.list_dead_letter)
        router.add_post("/ojs/v1/dead-letter/{id}/retry", self.retry_dead_letter)
        router.add_delete("/ojs/v1/dead-letter/{id}", self.delete_dead_letter)
        router.add_get("/ojs/v1/cron", self.list_cron)
        router.add_post("/ojs/v1/cron", self.register_cron)
        router.add_get("/ojs/v1/cron/{name}", self.get_cron)
        router.add_delete("/ojs/v1/cron/{name}", self.unregister_cron)
        router.add_post("/ojs/v1/workflows", self.create_workflow)
        router.add_get("/ojs/v1/workflows/{id}", self.get_workflow)
        router.add_delete("/ojs/v1/workflows/{id}", self.cancel_workflow)
        router.add_get("/ojs/v1/events", self.list_events)
        router.add_get("/ojs/v1/admin/workers", self.list_workers)
        router.add_post("/ojs/v1/admin/workers/{id}/quiet", self.quiet_worker)
        router.add_post("/ojs/v1/admin/workers/{id}/terminate", self.terminate_worker)
        router.add_post("/ojs/v1/admin/workers/{id}/resume", self.resume_worker)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        # Event streams never end on their own; let them finish instead of waiting out the grace period.
        self._closing = True

    # ---- System ----

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

    # ---- Jobs ----

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

    # ---- Workers ----

    async def fetch(self, request: web.Request) -> web.Response:
        body = json_object(await request.read())
        response = await self._client.Fetch(fetch_request(body), metadata=rpc_metadata(request))
        return json_response({"jobs": [job_to_json(job) for job in response.jobs]})

    async def ack(self, request: web.Request) -> web.Response:
        raw = await request.read()
        rpc = ack_request(json_object(raw), raw)
        response = await self._client.Ack(rpc, metadata=rpc_metadata(request))
        return json_response(render_ack(response, rpc.job_id))

    async def nack(self, request: web.Request) -> web.Response:
        rpc = nack_request(json_object(await request.read()))
        response = await self._client.Nack(rpc, metadata=rpc_metadata(request))
        return json_response(render_nack(response, rpc.job_id))

    async def heartbeat(self, request: web.Request) -> web.Response:
        rpc = heartbeat_request(json_object(await request.read()))
        response = await self._client.Heartbeat(rpc, metadata=rpc_metadata(request))
        return json_response(render_heartbeat(response))

    # ---- Queues ----

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
        await _optional_body(request)
        rpc = queue_pb2.PauseQueueRequest(queue=request.match_info["name"])
        response = await self._client.PauseQueue(rpc, metadata=rpc_metadata(request))
        info = response.queue if response.HasField("queue") else None
        return json_response(render_queue_state(info, rpc.queue, paused=True))

    async def resume_queue(self, request: web.Request) -> web.Response:
        await _optional_body(request)
        rpc = queue_pb2.ResumeQueueRequest(queue=request.match_info["name"])
        response = await self._client.ResumeQueue(rpc, metadata=rpc_metadata(request))
        info = response.queue if response.HasField("queue") else None
        return json_response(render_queue_state(info, rpc.queue, paused=False))

    # ---- Dead letter ----

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
        await _optional_body(request)
        rpc = queue_pb2.RetryDeadLetterRequest(job_id=request.match_info["id"])
        response = await self._client.RetryDeadLetter(rpc, metadata=rpc_metadata(request))
        return json_response({"job": job_to_json(response.job)})

    async def delete_dead_letter(self, request: web.Request) -> web.Response:
        rpc = queue_pb2.DeleteDeadLetterRequest(job_id=request.match_info["id"])
        response = await self._client.DeleteDeadLetter(rpc, metadata=rpc_metadata(request))
        # The call failing is what reports a missing job; success means it is gone.
        return json_response({"deleted": True, "job_id": response.job_id or rpc.job_id})

    # ---- Cron ----

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

    # ---- Workflows ----

    async def create_workflow(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # Only checked for shape; the server reads every workflow form and validates it.
        json_object(raw)
        rpc = workflow_pb2.CreateWorkflowRequest(workflow_json=raw)
        response = await self._client.CreateWorkflow(rpc, metadata=rpc_metadata(request))
        workflow = workflow_to_json(response.workflow)
        return json_response(
            {"workflow": workflow}, status=201, headers={"Location": f"/ojs/v1/workflows/{response.workflow.id}"}
        )

    async def get_workflow(self, request: web.Request) -> web.Response:
        rpc = workflow_pb2.GetWorkflowRequest(workflow_id=request.match_info["id"])
        response = await self._client.GetWorkflow(rpc, metadata=rpc_metadata(request))
        return json_response({"workflow": workflow_to_json(response.workflow)})

    async def cancel_workflow(self, request: web.Request) -> web.Response:
        rpc = workflow_pb2.CancelWorkflowRequest(workflow_id=request.match_info["id"])
        response = await self._client.CancelWorkflow(rpc, metadata=rpc_metadata(request))
        return json_response(render_cancelled_workflow(response))

    # ---- Events ----

    async def list_events(self, request: web.Request) -> web.Response:
        rpc: events_pb2.ListEventsRequest = list_events_request(request.query)
        response = await self._client.ListEvents(rpc, metadata=rpc_metadata(request))
        return json_response(render_events(response))

    async def job_events(self, request: web.Request) -> web.StreamResponse:
        rpc = stream_events_request(
            request.query, request.headers.get("Last-Event-ID"), job_id=request.match_info["id"]
        )
        return await self._event_stream(request, rpc)

    async def queue_events(self, request: web.Request) -> web.StreamResponse:
        rpc = stream_events_request(
            request.query, request.headers.get("Last-Event-ID"), queue=request.match_info["name"]
        )
        return await self._event_stream(request, rpc)

    async def _event_stream(self, request: web.Request, rpc: events_pb2.StreamEventsRequest) -> web.StreamResponse:
        """StreamEvents as Server-Sent Events, until the client leaves or the stream ends."""
        call = self._client.StreamEvents(rpc, metadata=rpc_metadata(request))
        stream = aiter(call)
        first = asyncio.ensure_future(_next_event(stream))
        pending: asyncio.Task[events_pb2.Event | None] | None = first
        try:
            await asyncio.wait((first,), timeout=self._sse_open_wait_s)
            if first.done():
                # Raising here, before any byte is sent, gives the usual error envelope.
                first.result()
            response = web.StreamResponse(headers={"Content-Type": EVENT_STREAM, "Cache-Control": "no-cache"})
            await response.prepare(request)
            # From here on a failure can only end the stream: the status line is gone.
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(_next_event(stream))
                if not await self._until_done(request, pending):
                    break
                event = _outcome(pending)
                pending = None
                if event is None:
                    break
                try:
                    await response.write(sse_frame(event))
                except ConnectionError:
                    break
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        finally:
            await _discard(pending)
            call.cancel()

    async def _until_done(self, request: web.Request, pending: asyncio.Task[Any]) -> bool:
        """Wait for `pending`; False if the client disconnects or the app shuts down first."""
        while True:
            done, _ = await asyncio.wait((pending,), timeout=self._sse_idle_check_s)
            if done:
                return True
            transport = request.transport
            if self._closing or transport is None or transport.is_closing():
                return False

    # ---- Worker registry ----

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
        await _optional_body(request)
        rpc = worker_pb2.SetWorkerDirectiveRequest(worker_id=request.match_info["id"], directive=directive)
        response = await self._client.SetWorkerDirective(rpc, metadata=rpc_metadata(request))
        return json_response({"worker": worker_to_json(response.worker)})


async def _next_event(stream: AsyncIterator[events_pb2.Event]) -> events_pb2.Event | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


def _outcome(task: asyncio.Task[events_pb2.Event | None]) -> events_pb2.Event | None:
    """The next event of a started stream; None once it ended, normally or not."""
    try:
        return task.result()
    except grpc.RpcError as exc:
        # The service ends every stream with a status (UNAVAILABLE when shutting down).
        logger.debug("event stream ended: %s", exc)
    except Exception:
        logger.exception("event stream failed")
    return None


async def _discard(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` if it still runs and wait until it has unwound."""
    if task is None:
        return
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()


async def _optional_body(request: web.Request) -> None:
    """Routes whose request carries nothing in the body: none is needed, but one sent must be a JSON object."""
    raw = await request.read()
    if raw.strip():
        json_object(raw)
