"""Operational HTTP: request metrics and trace context for every route, and `GET /metrics`, `GET /ready`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from server.domain.clock import now_ms
from server.domain.errors import OJSError
from server.observability import tracing
from server.observability.metrics import CONTENT_TYPE, ProcessMetrics, render_cluster
from server.observability.readiness import Readiness
from server.store.metrics import MetricsStore

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def observe_middleware(metrics: ProcessMetrics | None) -> Middleware:
    """Outermost middleware: counts and times every request by route template, and makes the
    caller's W3C trace context (traceparent/tracestate headers) current while tracing is on."""

    @web.middleware
    async def observe(request: web.Request, handler: _Handler) -> web.StreamResponse:
        started = time.perf_counter()
        in_http = tracing.IN_HTTP.set(True)
        attached = None
        if tracing.TRACER is not None and "traceparent" in request.headers:
            attached = tracing.otel_context.attach(tracing.PROPAGATOR.extract(request.headers))
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if attached is not None:
                tracing.otel_context.detach(attached)
            tracing.IN_HTTP.reset(in_http)
            if metrics is not None:
                resource = request.match_info.route.resource
                route = resource.canonical if resource is not None else "unmatched"
                metrics.observe_http(route, request.method, status, time.perf_counter() - started)

    return observe


def ops_routes(readiness: Readiness, metrics: ProcessMetrics | None, reader: MetricsStore | None) -> list[web.RouteDef]:
    async def ready(request: web.Request) -> web.Response:
        body = readiness.report()
        return web.Response(
            body=orjson.dumps(body), status=200 if body["ready"] else 503, content_type="application/json"
        )

    async def scrape(request: web.Request) -> web.Response:
        parts = [metrics.render()] if metrics is not None else []
        if reader is not None:
            try:
                parts.append(render_cluster(await reader.read(now_ms=now_ms())))
            except OJSError as exc:
                # The process figures still help when Redis is away; say why the job figures are missing.
                parts.append(f"# ojs job metrics unavailable: {exc.message}\n".encode())
        response = web.Response(body=b"".join(parts))
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    return [web.get("/ready", ready), web.get("/metrics", scrape)]
