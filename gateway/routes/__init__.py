"""REST routes, one module per resource: each route parses JSON, builds one request message, calls one RPC and
renders the reply.

Errors are not handled here: a `grpc.RpcError` or `ApiError` raised by a route
is turned into the error envelope by the middleware in `gateway.app`.
"""

from __future__ import annotations

from aiohttp import web

from gateway.client import OJSClient
from gateway.routes.base import EVENT_STREAM, MEDIA_TYPE, REQUEST_ID, RouteGroup, json_response, rpc_metadata
from gateway.routes.cron import CronRoutes
from gateway.routes.dead_letter import DeadLetterRoutes
from gateway.routes.events import SSE_IDLE_CHECK_S, SSE_OPEN_WAIT_S, EventRoutes
from gateway.routes.jobs import JobRoutes
from gateway.routes.progress import ProgressRoutes
from gateway.routes.queues import QueueRoutes
from gateway.routes.system import SystemRoutes
from gateway.routes.workers import WorkerRoutes
from gateway.routes.workflows import WorkflowRoutes

__all__ = ["EVENT_STREAM", "MEDIA_TYPE", "REQUEST_ID", "Routes", "json_response", "rpc_metadata"]


class Routes:
    """Every route group, bound to one `OJSClient`."""

    def __init__(
        self,
        client: OJSClient,
        *,
        sse_open_wait_s: float = SSE_OPEN_WAIT_S,
        sse_idle_check_s: float = SSE_IDLE_CHECK_S,
    ) -> None:
        self._events = EventRoutes(client, open_wait_s=sse_open_wait_s, idle_check_s=sse_idle_check_s)
        self._groups: list[RouteGroup] = [
            SystemRoutes(client),
            JobRoutes(client),
            WorkerRoutes(client),
            QueueRoutes(client),
            DeadLetterRoutes(client),
            CronRoutes(client),
            WorkflowRoutes(client),
            self._events,
            ProgressRoutes(client, self._events),
        ]

    @property
    def events(self) -> EventRoutes:
        return self._events

    def add_to(self, app: web.Application) -> None:
        for group in self._groups:
            group.add_to(app.router)
        app.on_shutdown.append(self._events.on_shutdown)
