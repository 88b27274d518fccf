"""The streaming RPCs (jobs, job batches, events) and the rendering of claimed jobs for delivery to workers."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from ojs.v1 import events_pb2, job_pb2, worker_pb2

from server.domain.errors import ErrorCode, OJSError
from server.domain.job import StoredJob, out_of_bounds
from server.domain.limits import FETCH_REPLY_MAX_BYTES
from server.observability import tracing
from server.rpc import convert, spans
from server.rpc.calls import abort_with
from server.service.events import EventFilter, EventService, StreamSignal
from server.service.jobs import JobService

log = logging.getLogger(__name__)


def fetch_reply(
    jobs: list[StoredJob], *, json_only: bool
) -> tuple[worker_pb2.FetchResponse, list[StoredJob], list[StoredJob]]:
    """The reply, holding the claimed jobs that fit in FETCH_REPLY_MAX_BYTES; the jobs left out; the unrenderable."""
    response = worker_pb2.FetchResponse()
    size = 0
    broken: list[StoredJob] = []
    for index, stored in enumerate(jobs):
        message = render(stored, json_only=json_only)
        if message is None:
            broken.append(stored)
            continue
        # A repeated message field costs its tag and length prefix on top of the message.
        size += message.ByteSize() + 6
        if size > FETCH_REPLY_MAX_BYTES:
            return response, jobs[index:], broken
        response.jobs.append(message)
    return response, [], broken


def render(stored: StoredJob, *, json_only: bool) -> job_pb2.Job | None:
    """The job as sent to a worker; None when its stored data cannot be sent (written before the input checks)."""
    try:
        problem = out_of_bounds(stored)
        if problem is not None:
            raise ValueError(f"{problem} is out of range")
        return convert.job(stored, json_only=json_only)
    except Exception:
        log.exception("stored job %s cannot be delivered; it is failed without retry", stored.id)
        return None


def too_large_to_deliver(stored: StoredJob) -> OJSError:
    return OJSError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"job '{stored.id}' is larger as a message than a reply may carry ({FETCH_REPLY_MAX_BYTES} bytes, the "
        "default receive limit of gRPC clients); it was put back: fetch it with json_only or over HTTP",
        details={"job_id": stored.id, "max_bytes": FETCH_REPLY_MAX_BYTES},
    )


class StreamRpcs:
    """The servicer's server-streaming calls: claimed jobs and events as messages, errors as aborts."""

    def __init__(self, jobs: JobService, events: EventService) -> None:
        self._job_service = jobs
        self._event_service = events

    async def jobs(
        self, request: worker_pb2.StreamJobsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[job_pb2.Job]:
        # One job per message: a stream closed between two messages has delivered exactly those sent.
        async for messages, _ in self._stream(request, context, max_batch=1):
            for message in messages:
                yield message

    async def job_batches(
        self, request: worker_pb2.StreamJobBatchesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[worker_pb2.JobBatch]:
        async for messages, sizes in self._stream(request.stream, context, max_batch=request.max_batch):
            # Split where a message would grow past what a reply may carry.
            start, size = 0, 0
            for index, length in enumerate(sizes):
                length += 8
                if index > start and size + length > FETCH_REPLY_MAX_BYTES:
                    yield worker_pb2.JobBatch(jobs=messages[start:index])
                    start, size = index, 0
                size += length
            yield worker_pb2.JobBatch(jobs=messages[start:])

    async def _stream(
        self, request: worker_pb2.StreamJobsRequest, context: grpc.aio.ServicerContext[Any, Any], *, max_batch: int
    ) -> AsyncIterator[tuple[list[job_pb2.Job], list[int]]]:
        """The stream's jobs as messages and their sizes, claimed `max_batch` at a time (0: whatever one claim got).

        Never an empty list."""
        try:
            async for batch in self._job_service.stream(
                list(request.queues),
                worker_id=request.worker_id,
                max_concurrent=request.max_concurrent,
                visibility_timeout_ms=(
                    request.visibility_timeout_ms if request.HasField("visibility_timeout_ms") else None
                ),
                max_batch=max_batch,
            ):
                claimed_ns = time.time_ns()
                messages, sizes = await self._deliverable(batch, request.worker_id, json_only=request.json_only)
                if messages:
                    tracer = tracing.TRACER
                    if tracer is not None:
                        metadata = context.invocation_metadata()
                        spans.fetched(tracer, request.queues, request.worker_id, batch, claimed_ns, metadata)
                    yield messages, sizes
        except OJSError as exc:
            await abort_with(context, exc)
        if self._job_service.stopping.is_set():
            await abort_with(context, OJSError(ErrorCode.BACKEND_UNAVAILABLE, "the server is shutting down"))

    async def _deliverable(
        self, batch: list[StoredJob], worker_id: str, *, json_only: bool
    ) -> tuple[list[job_pb2.Job], list[int]]:
        """The claimed jobs rendered, and their sizes; one whose data cannot be sent is failed, one too large ends
        the stream."""
        messages: list[job_pb2.Job] = []
        sizes: list[int] = []
        rendered: list[StoredJob] = []
        for index, stored in enumerate(batch):
            message = render(stored, json_only=json_only)
            if message is None:
                await self._job_service.fail_undeliverable([stored], worker_id)
                continue
            size = message.ByteSize()
            if size > FETCH_REPLY_MAX_BYTES:
                # None of this claim will be sent now: it all goes back.
                await self._job_service.give_back([*rendered, *batch[index:]], worker_id)
                raise too_large_to_deliver(stored)
            messages.append(message)
            sizes.append(size)
            rendered.append(stored)
        return messages, sizes

    async def events(
        self, request: events_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[events_pb2.Event]:
        event_filter = EventFilter(
            types=list(request.event_types),
            queues=list(request.queues),
            job_types=list(request.job_types),
            job_id=request.job_id,
            workflow_id=request.workflow_id,
        )
        try:
            async for item in self._event_service.stream(event_filter, after=request.after):
                if isinstance(item, StreamSignal):
                    yield convert.stream_signal(item)
                else:
                    yield convert.event(item)
        except OJSError as exc:
            await abort_with(context, exc)
        await abort_with(context, OJSError(ErrorCode.BACKEND_UNAVAILABLE, "the server is shutting down"))
