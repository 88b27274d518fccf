"""Spans around the job operations of OJSService, used only while tracing is on (tracing.TRACER set).

Names, kinds and attributes follow ojs-distributed-tracing.md §4-5: `{queue} enqueue`
(PRODUCER), `{queue} enqueue_batch` (PRODUCER), `{queue} fetch` (CONSUMER, linked
to each delivered job's enqueue span), `ojs.ack` / `ojs.nack` (SERVER here: the
server side of the worker's CLIENT span, whose context the call carries), and
`ojs.workflow.advance` under an ack or nack that moved a workflow on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Tracer

from server.domain.errors import OJSError
from server.domain.job import DEFAULT_QUEUE, StoredJob
from server.domain.states import JobState
from server.observability import tracing

T = TypeVar("T")
Metadata = Sequence[tuple[str, Any]] | None


def _queue_of(envelope: Any) -> str:
    if isinstance(envelope, Mapping):
        options = envelope.get("options")
        if isinstance(options, Mapping) and isinstance(options.get("queue"), str):
            return str(options["queue"])
        if isinstance(envelope.get("queue"), str):
            return str(envelope["queue"])
    return DEFAULT_QUEUE


def _fail(span: Span, exc: BaseException) -> None:
    tracing.record_error(span, exc, code=exc.code.value if isinstance(exc, OJSError) else "")


def _inject(span: Span, envelope: Any) -> None:
    if isinstance(envelope, MutableMapping):
        token = tracing.otel_context.attach(trace.set_span_in_context(span))
        try:
            tracing.inject_into_meta(envelope)
        finally:
            tracing.otel_context.detach(token)


@contextlib.contextmanager
def _producer_span(
    tracer: Tracer, operation: str, queue: str, metadata: Metadata, extra: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """A PRODUCER span `{queue} {operation}` under the caller's context; a failure inside it is recorded on it."""
    attributes = {
        **tracing.BASE_ATTRIBUTES,
        "messaging.operation.type": "publish",
        "messaging.destination.name": queue,
        "ojs.job.queue": queue,
        **(extra or {}),
    }
    with tracer.start_as_current_span(
        f"{queue} {operation}",
        context=tracing.incoming_context(metadata),
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            _fail(span, exc)
            raise


async def enqueue(
    tracer: Tracer, envelope: Any, metadata: Metadata, call: Callable[[Any], Awaitable[tuple[StoredJob, bool]]]
) -> tuple[StoredJob, bool]:
    """`{queue} enqueue`: its context goes into the job's meta, so the worker's side can link to it."""
    with _producer_span(tracer, "enqueue", _queue_of(envelope), metadata) as span:
        _inject(span, envelope)
        stored, deduplicated = await call(envelope)
        span.set_attributes(tracing.job_attributes(stored))
        span.set_attribute("ojs.job.deduplicated", deduplicated)
        return stored, deduplicated


async def enqueue_batch(tracer: Tracer, body: Any, metadata: Metadata, call: Callable[[Any], Awaitable[T]]) -> T:
    """`{queue} enqueue_batch`: one span for the batch; every job of it carries the span's context."""
    entries = body.get("jobs") if isinstance(body, Mapping) else None
    jobs = entries if isinstance(entries, list) else []
    queue = _queue_of(jobs[0]) if jobs else DEFAULT_QUEUE
    with _producer_span(tracer, "enqueue_batch", queue, metadata, {"messaging.batch.message_count": len(jobs)}) as span:
        for job in jobs:
            _inject(span, job)
        return await call(body)


def fetched(
    tracer: Tracer,
    queues: Sequence[str],
    worker_id: str,
    jobs: Sequence[StoredJob],
    started_ns: int,
    metadata: Metadata,
) -> None:
    """`{queue} fetch`, recorded once the jobs are known: it links to the enqueue span of each."""
    queue = jobs[0].queue if jobs else (queues[0] if queues else DEFAULT_QUEUE)
    attributes: dict[str, Any] = {
        **tracing.BASE_ATTRIBUTES,
        "messaging.operation.type": "receive",
        "messaging.destination.name": queue,
        "ojs.job.queue": queue,
        "messaging.batch.message_count": len(jobs),
    }
    if worker_id:
        attributes["ojs.worker.id"] = worker_id
    if len(jobs) == 1:
        attributes.update(tracing.job_attributes(jobs[0]))
    span = tracer.start_span(
        f"{queue} fetch",
        context=tracing.incoming_context(metadata),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=tracing.links_to(jobs),
        start_time=started_ns,
    )
    span.end()


async def settle(
    tracer: Tracer, action: str, job_id: str, metadata: Metadata, call: Callable[[], Awaitable[StoredJob]]
) -> StoredJob:
    """`ojs.ack` / `ojs.nack`, a child of the worker's span when the call carries its context."""
    attributes = {**tracing.BASE_ATTRIBUTES, "messaging.operation.type": "settle", "ojs.job.id": job_id}
    with tracer.start_as_current_span(
        f"ojs.{action}",
        context=tracing.incoming_context(metadata),
        kind=SpanKind.SERVER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        started_ns = time.time_ns()
        try:
            stored = await call()
        except Exception as exc:
            _fail(span, exc)
            raise
        span.set_attributes(tracing.job_attributes(stored))
        origin = tracing.context_from_meta(stored.meta_json)
        if origin is not None:
            span.add_link(origin, {"ojs.job.id": stored.id})
        if stored.state in (JobState.RETRYABLE, JobState.DISCARDED) and stored.error is not None:
            span.set_attribute("error.type", stored.error.type or stored.error.code)
            span.set_attribute("error.message", stored.error.message)
            span.set_attribute("ojs.job.error.attempt", stored.error.attempt)
        if stored.workflow_id and stored.state in (JobState.COMPLETED, JobState.DISCARDED):
            _workflow_advance(tracer, stored, started_ns)
        return stored


def _workflow_advance(tracer: Tracer, job: StoredJob, started_ns: int) -> None:
    """The workflow moved on inside the same script as the settle; the span stands for that part of it."""
    attributes = {**tracing.BASE_ATTRIBUTES, "ojs.workflow.id": job.workflow_id or "", "ojs.job.id": job.id}
    attributes["ojs.job.type"], attributes["ojs.job.queue"] = job.type, job.queue
    span = tracer.start_span(
        "ojs.workflow.advance", kind=SpanKind.INTERNAL, attributes=attributes, start_time=started_ns
    )
    span.end()
