"""OpenTelemetry spans with the names and attributes of ojs-observability.md and ojs-distributed-tracing.md.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: `TRACER` stays None and every
call site tests it first, so a server without a collector pays one attribute
test per operation. On, spans go out over OTLP/gRPC through a batching
processor (the exporter reads the standard OTEL_EXPORTER_OTLP_* variables).

Trace context travels in the job's `meta.traceparent` / `meta.tracestate`
(W3C), stored with the job in the one enqueue script call. A fetch span links
to the enqueue span of each job it hands out (links, not parent and child, as
the spec asks: enqueue and processing are separate operations, maybe hours apart).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from server.domain.job import StoredJob

log = logging.getLogger(__name__)

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SCOPE = "openjobspec.org/ojs-server"
PROPAGATOR = TraceContextTextMapPropagator()

# Set by `configure` when export is on; None means tracing is off.
TRACER: Tracer | None = None
_PROVIDER: Any = None

# Set while an HTTP request is handled: its trace context is then already current.
IN_HTTP: contextvars.ContextVar[bool] = contextvars.ContextVar("ojs_in_http", default=False)

BASE_ATTRIBUTES = {"messaging.system": "ojs", "ojs.backend.type": "redis"}


def configure(env: Mapping[str, str], *, service_name: str, version: str) -> bool:
    """Turn export on when the environment names an OTLP endpoint; returns whether it is on."""
    global TRACER, _PROVIDER
    if not env.get(ENDPOINT_ENV, "").strip():
        return False
    # Imported only when used: the SDK and the exporter cost start-up time and memory.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME") or service_name, "service.version": version}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _PROVIDER = provider
    TRACER = provider.get_tracer(SCOPE, version)
    log.info("tracing: exporting spans over OTLP to %s", env[ENDPOINT_ENV].strip())
    return True


def shutdown() -> None:
    """Flush the spans still buffered and stop exporting."""
    global TRACER, _PROVIDER
    if _PROVIDER is not None:
        _PROVIDER.shutdown()
    TRACER, _PROVIDER = None, None


class _MetadataGetter(Getter[Sequence[tuple[str, Any]]]):
    def get(self, carrier: Sequence[tuple[str, Any]], key: str) -> list[str] | None:
        values = [value for name, value in carrier if name == key and isinstance(value, str)]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, Any]]) -> list[str]:
        return [name for name, _ in carrier]


_METADATA = _MetadataGetter()


def incoming_context(metadata: Sequence[tuple[str, Any]] | None) -> otel_context.Context | None:
    """The caller's trace context: gRPC metadata, or (for REST calls served in process) the current one."""
    if IN_HTTP.get() or not metadata:
        return None
    return PROPAGATOR.extract(metadata, getter=_METADATA)


def context_from_meta(meta_json: bytes | None) -> trace.SpanContext | None:
    """The span context a job carries in meta.traceparent, if any."""
    if not meta_json or b"traceparent" not in meta_json:
        return None
    try:
        meta = orjson.loads(meta_json)
    except orjson.JSONDecodeError:
        return None
    return _span_context(meta)


def _span_context(meta: Any) -> trace.SpanContext | None:
    if not isinstance(meta, Mapping) or not isinstance(meta.get("traceparent"), str):
        return None
    carrier = {"traceparent": meta["traceparent"]}
    if isinstance(meta.get("tracestate"), str):
        carrier["tracestate"] = meta["tracestate"]
    span_context = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    return span_context if span_context.is_valid else None


def inject_into_meta(envelope: MutableMapping[str, Any]) -> None:
    """Store the current trace context in the job's meta, unless the producer already put one there."""
    meta = envelope.get("meta")
    if meta is None:
        meta = envelope["meta"] = {}
    if not isinstance(meta, MutableMapping) or "traceparent" in meta:
        return
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    meta.update(carrier)


def job_attributes(job: StoredJob) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        **BASE_ATTRIBUTES,
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "ojs.job.id": job.id,
        "ojs.job.type": job.type,
        "ojs.job.queue": job.queue,
        "ojs.job.state": job.state.value,
        "ojs.job.priority": job.priority,
    }
    if job.attempt:
        attributes["ojs.job.attempt"] = job.attempt
    if job.worker_id:
        attributes["ojs.worker.id"] = job.worker_id
    if job.workflow_id:
        attributes["ojs.workflow.id"] = job.workflow_id
    return attributes


def links_to(jobs: Iterable[StoredJob]) -> list[Link]:
    """A link to the enqueue span of each job that carries one."""
    links = []
    for job in jobs:
        span_context = context_from_meta(job.meta_json)
        if span_context is not None:
            links.append(Link(span_context, {"ojs.job.id": job.id}))
    return links


def record_error(span: trace.Span, exc: BaseException, *, code: str = "") -> None:
    span.record_exception(exc)
    span.set_attribute("error.type", code or type(exc).__name__)
    span.set_attribute("error.message", str(getattr(exc, "message", exc)))
    span.set_status(Status(StatusCode.ERROR, str(getattr(exc, "message", exc))))


__all__ = [
    "BASE_ATTRIBUTES",
    "IN_HTTP",
    "TRACER",
    "SpanKind",
    "configure",
    "context_from_meta",
    "incoming_context",
    "inject_into_meta",
    "job_attributes",
    "links_to",
    "otel_context",
    "record_error",
    "shutdown",
    "trace",
]
