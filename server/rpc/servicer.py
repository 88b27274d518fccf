"""`ojs.v1.OJSService`: translate messages, call the service layer, map errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
import orjson
from google.protobuf import struct_pb2
from ojs.v1 import events_pb2, job_pb2, queue_pb2, service_pb2, service_pb2_grpc, worker_pb2

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.rpc import convert
from server.rpc.errors import to_status
from server.service.events import EventFilter, EventService
from server.service.jobs import JobService
from server.service.system import CONFORMANCE_LEVEL, IMPLEMENTATION_VERSION, SystemService

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-ojs-request-id"
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]


def request_id_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value
    return ""


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: OJSError) -> NoReturn:
    status = to_status(error, request_id=request_id_of(context))
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


def rpc(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Turn expected errors into rich statuses and anything else into INTERNAL."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            response = await handler(self, request, context)
        except OJSError as exc:
            await abort_with(context, exc)
        except Exception as exc:
            # abort() itself raises to end the call; let that through untouched.
            if isinstance(exc, grpc.RpcError) or type(exc).__name__ == "AbortError":
                raise
            log.exception("unexpected error in %s", handler.__name__)
            await abort_with(context, OJSError(ErrorCode.BACKEND_ERROR, "internal server error"))
        request_id = request_id_of(context)
        context.set_trailing_metadata(
            (
                *(((REQUEST_ID_KEY, request_id),) if request_id else ()),
                ("x-ojs-server-version", IMPLEMENTATION_VERSION),
                ("x-ojs-conformance-level", str(CONFORMANCE_LEVEL)),
            )
        )
        return response

    return wrapper


def _unimplemented(name: str, level: int | None) -> Callable[..., Any]:
    where = f"conformance level {level}" if level is not None else "an optional capability"
    message = f"{name} belongs to {where}, which this server does not implement yet"

    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await abort_with(context, OJSError(ErrorCode.UNIMPLEMENTED, message, details={"rpc": name}))

    handler.__name__ = name
    return handler


class OJSServicer(service_pb2_grpc.OJSServiceServicer):
    def __init__(self, jobs: JobService, events: EventService, system: SystemService) -> None:
        self._jobs = jobs
        self._events = events
        self._system = system

    # ---- System ----

    @rpc
    async def Manifest(self, request: service_pb2.ManifestRequest, context: Any) -> service_pb2.ManifestResponse:
        document = self._system.manifest()
        implementation = document["implementation"]
        return service_pb2.ManifestResponse(
            ojs_version=document["ojs_version"],
            implementation=service_pb2.Implementation(**implementation),
            conformance_level=document["conformance_level"],
            protocols=document["protocols"],
            backend=document["backend"],
            extensions=[ext["uri"] for ext in document["extensions"]["official"]],
            schema_validation=document["schema_validation"],
            manifest_json=orjson.dumps(document),
        )

    @rpc
    async def Health(self, request: service_pb2.HealthRequest, context: Any) -> service_pb2.HealthResponse:
        report = await self._system.health()
        backend: dict[str, Any] = {"type": "redis", "status": "connected" if report.healthy else "disconnected"}
        if report.latency_ms is not None:
            backend["latency_ms"] = round(report.latency_ms, 3)
        if report.error:
            backend["error"] = report.error
        details = struct_pb2.Struct()
        details.update({"backend": backend})
        return service_pb2.HealthResponse(
            status=service_pb2.HEALTH_STATUS_OK if report.healthy else service_pb2.HEALTH_STATUS_UNHEALTHY,
            timestamp=convert.timestamp(now_ms()),
            details=details,
            version=IMPLEMENTATION_VERSION,
            uptime_seconds=report.uptime_seconds,
        )

    # ---- Jobs ----

    @rpc
    async def Enqueue(self, request: job_pb2.EnqueueRequest, context: Any) -> job_pb2.EnqueueResponse:
        stored = await self._jobs.enqueue(convert.enqueue_envelope(request))
        return job_pb2.EnqueueResponse(job=convert.job(stored))

    @rpc
    async def GetJob(self, request: job_pb2.GetJobRequest, context: Any) -> job_pb2.GetJobResponse:
        return job_pb2.GetJobResponse(job=convert.job(await self._jobs.get(request.job_id)))

    @rpc
    async def CancelJob(self, request: job_pb2.CancelJobRequest, context: Any) -> job_pb2.CancelJobResponse:
        previous, stored = await self._jobs.cancel(request.job_id, reason=request.reason)
        return job_pb2.CancelJobResponse(job=convert.job(stored), previous_state=convert.STATE_TO_PROTO[previous])

    @rpc
    async def ActivateJob(self, request: job_pb2.ActivateJobRequest, context: Any) -> job_pb2.ActivateJobResponse:
        return job_pb2.ActivateJobResponse(job=convert.job(await self._jobs.activate(request.job_id)))

    # ---- Workers ----

    @rpc
    async def Fetch(self, request: worker_pb2.FetchRequest, context: Any) -> worker_pb2.FetchResponse:
        jobs = await self._jobs.fetch(
            list(request.queues),
            count=request.count,
            worker_id=request.worker_id,
            visibility_timeout_ms=(
                request.visibility_timeout_ms if request.HasField("visibility_timeout_ms") else None
            ),
        )
        return worker_pb2.FetchResponse(jobs=[convert.job(j) for j in jobs])

    @rpc
    async def Ack(self, request: worker_pb2.AckRequest, context: Any) -> worker_pb2.AckResponse:
        if request.result_json:
            convert.decode_json(request.result_json, field="result_json")
            result: bytes | None = request.result_json
        elif request.HasField("result"):
            result = orjson.dumps(convert.struct_to_dict(request.result, field="result"))
        else:
            result = None
        stored = await self._jobs.ack(request.job_id, result_json=result, worker_id=request.worker_id)
        return worker_pb2.AckResponse(acknowledged=True, job=convert.job(stored))

    @rpc
    async def Nack(self, request: worker_pb2.NackRequest, context: Any) -> worker_pb2.NackResponse:
        error = request.error
        stored = await self._jobs.nack(
            request.job_id,
            code=error.code,
            message=error.message,
            error_type=error.type,
            details=convert.struct_to_dict(error.details, field="error.details") if error.HasField("details") else None,
            backtrace=error.backtrace or None,
            retryable=request.retryable if request.HasField("retryable") else None,
            requeue=request.requeue,
            worker_id=request.worker_id,
        )
        message = convert.job(stored)
        response = worker_pb2.NackResponse(state=message.state, job=message)
        if message.HasField("next_attempt_at"):
            response.next_attempt_at.CopyFrom(message.next_attempt_at)
        return response

    # ---- Queues ----

    @rpc
    async def ListQueues(self, request: queue_pb2.ListQueuesRequest, context: Any) -> queue_pb2.ListQueuesResponse:
        rows = await self._jobs.list_queues()
        limit = request.limit or 100
        if not 1 <= limit <= 1000:
            raise OJSError(ErrorCode.INVALID_REQUEST, "limit must be between 1 and 1000", details={"field": "limit"})
        start = 0
        if request.cursor:
            # The cursor is the last name of the previous page; names are sorted.
            start = next((i for i, row in enumerate(rows) if row.name > request.cursor), len(rows))
        page = rows[start : start + limit]
        has_more = start + limit < len(rows)
        return queue_pb2.ListQueuesResponse(
            queues=[
                queue_pb2.QueueInfo(
                    name=row.name,
                    paused=row.paused,
                    available_count=row.available,
                    created_at=convert.timestamp(row.created_at_ms),
                )
                for row in page
            ],
            next_cursor=page[-1].name if has_more and page else "",
            total=len(rows),
        )

    # ---- Events ----

    @rpc
    async def ListEvents(self, request: events_pb2.ListEventsRequest, context: Any) -> events_pb2.ListEventsResponse:
        page = await self._events.list(
            EventFilter(
                types=list(request.types),
                queues=list(request.queues),
                job_types=list(request.job_types),
                job_id=request.job_id,
            ),
            after=request.after,
            limit=request.limit,
        )
        return events_pb2.ListEventsResponse(
            events=[convert.event(e) for e in page.events], cursor=page.cursor, has_more=page.has_more
        )

    # ---- Not yet implemented, by the level they belong to ----

    EnqueueBatch = _unimplemented("EnqueueBatch", 4)
    Heartbeat = _unimplemented("Heartbeat", 1)
    StreamJobs = _unimplemented("StreamJobs", None)
    StreamEvents = _unimplemented("StreamEvents", None)
    QueueStats = _unimplemented("QueueStats", 4)
    PauseQueue = _unimplemented("PauseQueue", 4)
    ResumeQueue = _unimplemented("ResumeQueue", 4)
    ListDeadLetter = _unimplemented("ListDeadLetter", 1)
    RetryDeadLetter = _unimplemented("RetryDeadLetter", 1)
    DeleteDeadLetter = _unimplemented("DeleteDeadLetter", 1)
    RegisterCron = _unimplemented("RegisterCron", 2)
    UnregisterCron = _unimplemented("UnregisterCron", 2)
    ListCron = _unimplemented("ListCron", 2)
    CreateWorkflow = _unimplemented("CreateWorkflow", 3)
    GetWorkflow = _unimplemented("GetWorkflow", 3)
    CancelWorkflow = _unimplemented("CancelWorkflow", 3)
