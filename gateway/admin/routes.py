"""Admin REST routes under /ojs/v1/admin/ (ojs-admin-api.md): parse, call one RPC, render.

What OJSService already does (pause, resume, dead letter, workers, cron,
workflow detail, job detail and cancel) is mounted here again under the admin
prefix, so a proxy can guard the whole control plane by path.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from ojs.v1 import admin_pb2

from gateway.admin import convert as admin_convert
from gateway.admin.client import AdminClient
from gateway.client import OJSClient
from gateway.convert.common import json_object
from gateway.convert.jobs import job_to_json
from gateway.errors import invalid_request
from gateway.routes.base import json_response, rpc_metadata
from gateway.routes.cron import CronRoutes
from gateway.routes.dead_letter import DeadLetterRoutes
from gateway.routes.events import EventRoutes
from gateway.routes.jobs import JobRoutes
from gateway.routes.queues import QueueRoutes
from gateway.routes.workflows import WorkflowRoutes

__all__ = ["AdminRoutes"]

PREFIX = "/ojs/v1/admin"


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object body, or {} when none was sent."""
    raw = await request.read()
    return json_object(raw) if raw.strip() else {}


def _flag(query: Any, key: str) -> bool:
    return str(query.get(key, "")).lower() in ("1", "true", "yes")


class AdminRoutes:
    """The admin routes; `events` is the app's event route group (its streams end when the app shuts down)."""

    def __init__(self, admin: AdminClient, client: OJSClient, events: EventRoutes) -> None:
        self._admin = admin
        self._queues = QueueRoutes(client)
        self._jobs = JobRoutes(client)
        self._dead_letter = DeadLetterRoutes(client)
        self._cron = CronRoutes(client)
        self._workflows = WorkflowRoutes(client)
        self._events = events

    def add_to(self, app: web.Application) -> None:
        router = app.router
        queues, jobs, dead_letter = self._queues, self._jobs, self._dead_letter
        router.add_get(f"{PREFIX}/queues", self.list_queues)
        router.add_get(f"{PREFIX}/queues/{{name}}", self.get_queue)
        router.add_post(f"{PREFIX}/queues/{{name}}/pause", queues.pause_queue)
        router.add_post(f"{PREFIX}/queues/{{name}}/resume", queues.resume_queue)
        router.add_delete(f"{PREFIX}/queues/{{name}}/jobs", self.purge_queue)
        router.add_put(f"{PREFIX}/queues/{{name}}/config", self.set_queue_config)
        router.add_get(f"{PREFIX}/jobs", self.list_jobs)
        # Before /jobs/{id}/...: "bulk" is not a job id.
        router.add_post(f"{PREFIX}/jobs/bulk/{{action}}", self.bulk)
        router.add_get(f"{PREFIX}/jobs/{{id}}", jobs.get_job)
        router.add_post(f"{PREFIX}/jobs/{{id}}/cancel", jobs.cancel_job)
        router.add_post(f"{PREFIX}/jobs/{{id}}/retry", self.retry_job)
        router.add_get(f"{PREFIX}/workers/{{id}}", self.get_worker)
        router.add_delete(f"{PREFIX}/workers/{{id}}", self.deregister_worker)
        router.add_get(f"{PREFIX}/stats", self.stats)
        router.add_get(f"{PREFIX}/stats/history", self.stats_history)
        router.add_get(f"{PREFIX}/dead-letter", dead_letter.list_dead_letter)
        router.add_delete(f"{PREFIX}/dead-letter", self.purge_dead_letter)
        router.add_post(f"{PREFIX}/dead-letter/{{id}}/retry", dead_letter.retry_dead_letter)
        router.add_delete(f"{PREFIX}/dead-letter/{{id}}", dead_letter.delete_dead_letter)
        router.add_get(f"{PREFIX}/cron", self._cron.list_cron)
        router.add_get(f"{PREFIX}/workflows", self.list_workflows)
        router.add_get(f"{PREFIX}/workflows/{{id}}", self._workflows.get_workflow)
        router.add_get(f"{PREFIX}/events", self._events.all_events, allow_head=False)

    # ---- Queues ----

    async def list_queues(self, request: web.Request) -> web.Response:
        limit = admin_convert.limit_of(request.query)
        message = admin_pb2.ListQueueSummariesRequest(
            limit=limit, cursor=request.query.get("cursor", ""), prefix=request.query.get("prefix", "")
        )
        response = await self._admin.ListQueueSummaries(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_queues(response, limit or 50))

    async def get_queue(self, request: web.Request) -> web.Response:
        message = admin_pb2.GetQueueSummaryRequest(queue=request.match_info["name"])
        response = await self._admin.GetQueueSummary(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_queue(response.queue))

    async def purge_queue(self, request: web.Request) -> web.Response:
        body = await _body(request)
        states = body.get("states")
        if not isinstance(states, list) or not states:
            raise invalid_request("states must be a non-empty list of job states", field="states")
        confirm = body.get("confirm")
        message = admin_pb2.PurgeQueueRequest(
            queue=request.match_info["name"],
            states=[admin_convert.parse_state(s, field="states") for s in states],
            confirm=confirm is True,
        )
        if body.get("older_than"):
            message.older_than.CopyFrom(admin_convert.parse_time(body["older_than"], field="older_than"))
        response = await self._admin.PurgeQueue(message, metadata=rpc_metadata(request))
        return json_response({"purged_count": response.purged_count, "states": states})

    async def set_queue_config(self, request: web.Request) -> web.Response:
        body = await _body(request)
        config = admin_pb2.QueueConfig()
        for key in ("concurrency", "max_per_second"):
            value = body.get(key, 0)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise invalid_request(f"{key} must be a number (0: unlimited)", field=key)
            setattr(config, key, int(value) if key == "concurrency" else float(value))
        message = admin_pb2.SetQueueConfigRequest(queue=request.match_info["name"], config=config)
        response = await self._admin.SetQueueConfig(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_queue(response.queue))

    # ---- Jobs ----

    async def list_jobs(self, request: web.Request) -> web.Response:
        limit = admin_convert.limit_of(request.query)
        message = admin_pb2.ListJobsRequest(
            filter=admin_convert.job_filter_from_query(request.query),
            limit=limit,
            cursor=request.query.get("cursor", ""),
            ascending=request.query.get("order", "desc") == "asc",
        )
        response = await self._admin.ListJobs(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_job_rows(response, limit or 20))

    async def retry_job(self, request: web.Request) -> web.Response:
        await _body(request)
        message = admin_pb2.RetryJobRequest(job_id=request.match_info["id"])
        response = await self._admin.RetryJob(message, metadata=rpc_metadata(request))
        return json_response({"job": job_to_json(response.job)})

    async def bulk(self, request: web.Request) -> web.Response:
        message = admin_convert.bulk_request(request.match_info["action"], await _body(request))
        response = await self._admin.BulkJobs(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_bulk(response))

    # ---- Workers ----

    async def get_worker(self, request: web.Request) -> web.Response:
        message = admin_pb2.GetWorkerDetailRequest(worker_id=request.match_info["id"])
        response = await self._admin.GetWorkerDetail(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_worker(response.worker))

    async def deregister_worker(self, request: web.Request) -> web.Response:
        message = admin_pb2.DeregisterWorkerRequest(
            worker_id=request.match_info["id"], force=_flag(request.query, "force")
        )
        response = await self._admin.DeregisterWorker(message, metadata=rpc_metadata(request))
        return json_response({"id": request.match_info["id"], "removed": response.removed})

    # ---- Stats ----

    async def stats(self, request: web.Request) -> web.Response:
        response = await self._admin.GetStats(admin_pb2.GetStatsRequest(), metadata=rpc_metadata(request))
        return json_response(admin_convert.render_stats(response))

    async def stats_history(self, request: web.Request) -> web.Response:
        message = admin_convert.history_request(request.query)
        response = await self._admin.GetStatsHistory(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_stats_history(response))

    # ---- Dead letter ----

    async def purge_dead_letter(self, request: web.Request) -> web.Response:
        body = await _body(request)
        message = admin_pb2.PurgeDeadLetterRequest(confirm=body.get("confirm") is True)
        if body.get("older_than"):
            message.older_than.CopyFrom(admin_convert.parse_time(body["older_than"], field="older_than"))
        response = await self._admin.PurgeDeadLetter(message, metadata=rpc_metadata(request))
        return json_response({"purged_count": response.purged_count})

    # ---- Workflows ----

    async def list_workflows(self, request: web.Request) -> web.Response:
        limit = admin_convert.limit_of(request.query)
        message = admin_pb2.ListWorkflowsRequest(limit=limit, cursor=request.query.get("cursor", ""))
        response = await self._admin.ListWorkflows(message, metadata=rpc_metadata(request))
        return json_response(admin_convert.render_workflows(response, limit or 20))
