"""The stub-shaped interface the gateway calls, and its two implementations.

`OJSClient` mirrors `OJSServiceAsyncStub`: request message in, response message
out, failures raised as `grpc.RpcError` carrying a rich status (ErrorInfo in
`grpc-status-details-bin`). `ChannelClient` goes over a real `grpc.aio` channel;
`InProcessClient` calls a servicer object directly, skipping serialization and
the network hop, with the same error shape so routes cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn, Protocol, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from ojs.v1 import events_pb2, job_pb2, queue_pb2, service_pb2, service_pb2_grpc, worker_pb2, workflow_pb2

__all__ = [
    "ERROR_DOMAIN",
    "STATUS_DETAILS_KEY",
    "ChannelClient",
    "InProcessClient",
    "InProcessContext",
    "Metadata",
    "OJSClient",
    "RpcStatusError",
]

logger = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str]]

STATUS_DETAILS_KEY = "grpc-status-details-bin"
ERROR_DOMAIN = "openjobspec.org"

_ReqT = TypeVar("_ReqT")
_RespT = TypeVar("_RespT")


class OJSClient(Protocol):
    """Async view of `ojs.v1.OJSService`; every method may raise `grpc.RpcError`."""

    # ---- System ----
    async def Manifest(
        self, request: service_pb2.ManifestRequest, *, metadata: Metadata = ()
    ) -> service_pb2.ManifestResponse: ...

    async def Health(
        self, request: service_pb2.HealthRequest, *, metadata: Metadata = ()
    ) -> service_pb2.HealthResponse: ...

    # ---- Jobs ----
    async def Enqueue(self, request: job_pb2.EnqueueRequest, *, metadata: Metadata = ()) -> job_pb2.EnqueueResponse: ...

    async def EnqueueBatch(
        self, request: job_pb2.EnqueueBatchRequest, *, metadata: Metadata = ()
    ) -> job_pb2.EnqueueBatchResponse: ...

    async def GetJob(self, request: job_pb2.GetJobRequest, *, metadata: Metadata = ()) -> job_pb2.GetJobResponse: ...

    async def CancelJob(
        self, request: job_pb2.CancelJobRequest, *, metadata: Metadata = ()
    ) -> job_pb2.CancelJobResponse: ...

    async def ActivateJob(
        self, request: job_pb2.ActivateJobRequest, *, metadata: Metadata = ()
    ) -> job_pb2.ActivateJobResponse: ...

    # ---- Workers ----
    async def Fetch(self, request: worker_pb2.FetchRequest, *, metadata: Metadata = ()) -> worker_pb2.FetchResponse: ...

    async def Ack(self, request: worker_pb2.AckRequest, *, metadata: Metadata = ()) -> worker_pb2.AckResponse: ...

    async def Nack(self, request: worker_pb2.NackRequest, *, metadata: Metadata = ()) -> worker_pb2.NackResponse: ...

    async def Heartbeat(
        self, request: worker_pb2.HeartbeatRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.HeartbeatResponse: ...

    # ---- Streaming ----
    def StreamJobs(
        self, request: worker_pb2.StreamJobsRequest, *, metadata: Metadata = ()
    ) -> AsyncIterator[job_pb2.Job]: ...

    def StreamEvents(
        self, request: events_pb2.StreamEventsRequest, *, metadata: Metadata = ()
    ) -> AsyncIterator[events_pb2.Event]: ...

    # ---- Queues ----
    async def ListQueues(
        self, request: queue_pb2.ListQueuesRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ListQueuesResponse: ...

    async def QueueStats(
        self, request: queue_pb2.QueueStatsRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.QueueStatsResponse: ...

    async def PauseQueue(
        self, request: queue_pb2.PauseQueueRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.PauseQueueResponse: ...

    async def ResumeQueue(
        self, request: queue_pb2.ResumeQueueRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ResumeQueueResponse: ...

    # ---- Dead letter ----
    async def ListDeadLetter(
        self, request: queue_pb2.ListDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ListDeadLetterResponse: ...

    async def RetryDeadLetter(
        self, request: queue_pb2.RetryDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.RetryDeadLetterResponse: ...

    async def DeleteDeadLetter(
        self, request: queue_pb2.DeleteDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.DeleteDeadLetterResponse: ...

    # ---- Cron ----
    async def RegisterCron(
        self, request: service_pb2.RegisterCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.RegisterCronResponse: ...

    async def UnregisterCron(
        self, request: service_pb2.UnregisterCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.UnregisterCronResponse: ...

    async def ListCron(
        self, request: service_pb2.ListCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.ListCronResponse: ...

    async def GetCron(
        self, request: service_pb2.GetCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.GetCronResponse: ...

    # ---- Workflows ----
    async def CreateWorkflow(
        self, request: workflow_pb2.CreateWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.CreateWorkflowResponse: ...

    async def GetWorkflow(
        self, request: workflow_pb2.GetWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.GetWorkflowResponse: ...

    async def CancelWorkflow(
        self, request: workflow_pb2.CancelWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.CancelWorkflowResponse: ...

    # ---- Events ----
    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, *, metadata: Metadata = ()
    ) -> events_pb2.ListEventsResponse: ...

    # ---- Worker registry ----
    async def SetWorkerDirective(
        self, request: worker_pb2.SetWorkerDirectiveRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.SetWorkerDirectiveResponse: ...

    async def ListWorkers(
        self, request: worker_pb2.ListWorkersRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.ListWorkersResponse: ...


# ---------------------------------------------------------------------------
# Over a grpc.aio channel
# ---------------------------------------------------------------------------


class ChannelClient:
    """`OJSClient` over a `grpc.aio.Channel` (the standalone gateway).

    `metadata` is sent with every call before the per-call metadata (e.g. the
    API key as `authorization`); `timeout_s` bounds each unary call so a hung
    server turns into DEADLINE_EXCEEDED instead of a request that never ends
    (a long-poll Fetch gets its `wait_ms` on top; streams have no deadline).
    """

    def __init__(self, channel: grpc.aio.Channel, *, metadata: Metadata = (), timeout_s: float | None = 30.0) -> None:
        self._stub = cast("service_pb2_grpc.OJSServiceAsyncStub", service_pb2_grpc.OJSServiceStub(channel))
        self._metadata = tuple(metadata)
        self._timeout_s = timeout_s

    def _md(self, metadata: Metadata) -> tuple[tuple[str, str], ...]:
        return (*self._metadata, *metadata) if metadata else self._metadata

    async def Manifest(
        self, request: service_pb2.ManifestRequest, *, metadata: Metadata = ()
    ) -> service_pb2.ManifestResponse:
        response: service_pb2.ManifestResponse = await self._stub.Manifest(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def Health(
        self, request: service_pb2.HealthRequest, *, metadata: Metadata = ()
    ) -> service_pb2.HealthResponse:
        response: service_pb2.HealthResponse = await self._stub.Health(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def Enqueue(self, request: job_pb2.EnqueueRequest, *, metadata: Metadata = ()) -> job_pb2.EnqueueResponse:
        response: job_pb2.EnqueueResponse = await self._stub.Enqueue(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def EnqueueBatch(
        self, request: job_pb2.EnqueueBatchRequest, *, metadata: Metadata = ()
    ) -> job_pb2.EnqueueBatchResponse:
        response: job_pb2.EnqueueBatchResponse = await self._stub.EnqueueBatch(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def GetJob(self, request: job_pb2.GetJobRequest, *, metadata: Metadata = ()) -> job_pb2.GetJobResponse:
        response: job_pb2.GetJobResponse = await self._stub.GetJob(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def CancelJob(
        self, request: job_pb2.CancelJobRequest, *, metadata: Metadata = ()
    ) -> job_pb2.CancelJobResponse:
        response: job_pb2.CancelJobResponse = await self._stub.CancelJob(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def ActivateJob(
        self, request: job_pb2.ActivateJobRequest, *, metadata: Metadata = ()
    ) -> job_pb2.ActivateJobResponse:
        response: job_pb2.ActivateJobResponse = await self._stub.ActivateJob(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def Fetch(self, request: worker_pb2.FetchRequest, *, metadata: Metadata = ()) -> worker_pb2.FetchResponse:
        # A long poll may legitimately take `wait_ms`; the deadline only guards the work after it.
        timeout = self._timeout_s
        if timeout is not None and request.wait_ms > 0:
            timeout += request.wait_ms / 1000
        response: worker_pb2.FetchResponse = await self._stub.Fetch(
            request, metadata=self._md(metadata), timeout=timeout
        )
        return response

    async def Ack(self, request: worker_pb2.AckRequest, *, metadata: Metadata = ()) -> worker_pb2.AckResponse:
        response: worker_pb2.AckResponse = await self._stub.Ack(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def Nack(self, request: worker_pb2.NackRequest, *, metadata: Metadata = ()) -> worker_pb2.NackResponse:
        response: worker_pb2.NackResponse = await self._stub.Nack(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def Heartbeat(
        self, request: worker_pb2.HeartbeatRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.HeartbeatResponse:
        response: worker_pb2.HeartbeatResponse = await self._stub.Heartbeat(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def StreamJobs(
        self, request: worker_pb2.StreamJobsRequest, *, metadata: Metadata = ()
    ) -> AsyncIterator[job_pb2.Job]:
        # No deadline: a stream lives as long as its consumer wants it.
        call = self._stub.StreamJobs(request, metadata=self._md(metadata))
        try:
            async for item in call:
                job: job_pb2.Job = item
                yield job
        finally:
            call.cancel()

    async def StreamEvents(
        self, request: events_pb2.StreamEventsRequest, *, metadata: Metadata = ()
    ) -> AsyncIterator[events_pb2.Event]:
        call = self._stub.StreamEvents(request, metadata=self._md(metadata))
        try:
            async for item in call:
                event: events_pb2.Event = item
                yield event
        finally:
            call.cancel()

    async def ListQueues(
        self, request: queue_pb2.ListQueuesRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ListQueuesResponse:
        response: queue_pb2.ListQueuesResponse = await self._stub.ListQueues(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def QueueStats(
        self, request: queue_pb2.QueueStatsRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.QueueStatsResponse:
        response: queue_pb2.QueueStatsResponse = await self._stub.QueueStats(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def PauseQueue(
        self, request: queue_pb2.PauseQueueRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.PauseQueueResponse:
        response: queue_pb2.PauseQueueResponse = await self._stub.PauseQueue(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def ResumeQueue(
        self, request: queue_pb2.ResumeQueueRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ResumeQueueResponse:
        response: queue_pb2.ResumeQueueResponse = await self._stub.ResumeQueue(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def ListDeadLetter(
        self, request: queue_pb2.ListDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ListDeadLetterResponse:
        response: queue_pb2.ListDeadLetterResponse = await self._stub.ListDeadLetter(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def RetryDeadLetter(
        self, request: queue_pb2.RetryDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.RetryDeadLetterResponse:
        response: queue_pb2.RetryDeadLetterResponse = await self._stub.RetryDeadLetter(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def DeleteDeadLetter(
        self, request: queue_pb2.DeleteDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.DeleteDeadLetterResponse:
        response: queue_pb2.DeleteDeadLetterResponse = await self._stub.DeleteDeadLetter(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def RegisterCron(
        self, request: service_pb2.RegisterCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.RegisterCronResponse:
        response: service_pb2.RegisterCronResponse = await self._stub.RegisterCron(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def UnregisterCron(
        self, request: service_pb2.UnregisterCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.UnregisterCronResponse:
        response: service_pb2.UnregisterCronResponse = await self._stub.UnregisterCron(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def ListCron(
        self, request: service_pb2.ListCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.ListCronResponse:
        response: service_pb2.ListCronResponse = await self._stub.ListCron(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def GetCron(
        self, request: service_pb2.GetCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.GetCronResponse:
        response: service_pb2.GetCronResponse = await self._stub.GetCron(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def CreateWorkflow(
        self, request: workflow_pb2.CreateWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.CreateWorkflowResponse:
        response: workflow_pb2.CreateWorkflowResponse = await self._stub.CreateWorkflow(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def GetWorkflow(
        self, request: workflow_pb2.GetWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.GetWorkflowResponse:
        response: workflow_pb2.GetWorkflowResponse = await self._stub.GetWorkflow(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def CancelWorkflow(
        self, request: workflow_pb2.CancelWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.CancelWorkflowResponse:
        response: workflow_pb2.CancelWorkflowResponse = await self._stub.CancelWorkflow(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, *, metadata: Metadata = ()
    ) -> events_pb2.ListEventsResponse:
        response: events_pb2.ListEventsResponse = await self._stub.ListEvents(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def SetWorkerDirective(
        self, request: worker_pb2.SetWorkerDirectiveRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.SetWorkerDirectiveResponse:
        response: worker_pb2.SetWorkerDirectiveResponse = await self._stub.SetWorkerDirective(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response

    async def ListWorkers(
        self, request: worker_pb2.ListWorkersRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.ListWorkersResponse:
        response: worker_pb2.ListWorkersResponse = await self._stub.ListWorkers(
            request, metadata=self._md(metadata), timeout=self._timeout_s
        )
        return response


# ---------------------------------------------------------------------------
# In process
# ---------------------------------------------------------------------------


class RpcStatusError(grpc.RpcError):  # type: ignore[misc]
    """A failed call, shaped like `grpc.aio.AioRpcError` (what `rpc_status.from_call` reads)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        super().__init__(f"{code}: {details}")
        self._code = code
        self._details = details
        self._trailing_metadata = tuple(trailing_metadata)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailing_metadata

    def initial_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return ()

    def debug_error_string(self) -> str:
        return f"in-process call failed: {self._code} {self._details}"

    def __repr__(self) -> str:
        return f"RpcStatusError({self._code!r}, {self._details!r})"


def internal_error(request_id: str | None) -> RpcStatusError:
    """INTERNAL with ErrorInfo(backend_error): what an escaped exception becomes."""
    message = "internal server error"
    info = error_details_pb2.ErrorInfo(reason="backend_error", domain=ERROR_DOMAIN)
    info.metadata["retryable"] = "true"
    if request_id:
        info.metadata["request_id"] = request_id
    packed = any_pb2.Any()
    packed.Pack(info)
    status = status_pb2.Status(code=grpc.StatusCode.INTERNAL.value[0], message=message, details=[packed])
    return RpcStatusError(grpc.StatusCode.INTERNAL, message, ((STATUS_DETAILS_KEY, status.SerializeToString()),))


class InProcessContext:
    """The part of `grpc.aio.ServicerContext` a servicer uses, for direct calls."""

    def __init__(self, metadata: Metadata = ()) -> None:
        self._invocation_metadata = tuple((key.lower(), value) for key, value in metadata)
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None
        self._trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()
        self._abort_error: RpcStatusError | None = None
        self._done = False
        self._cancelled = False
        self._done_callbacks: list[Callable[[InProcessContext], object]] = []

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._invocation_metadata

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> NoReturn:
        if self._abort_error is not None:
            raise RuntimeError("abort was already called")
        if code == grpc.StatusCode.OK:
            # grpc rejects aborting with OK; a failure must not read as success.
            code = grpc.StatusCode.UNKNOWN
        self._code = code
        self._details = details
        if not trailing_metadata and self._trailing_metadata:
            trailing_metadata = self._trailing_metadata
        else:
            self._trailing_metadata = tuple(trailing_metadata)
        self._abort_error = RpcStatusError(code, details, trailing_metadata)
        raise self._abort_error

    async def abort_with_status(self, status: Any) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str | None:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing_metadata = tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailing_metadata

    async def send_initial_metadata(self, initial_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        return None

    def time_remaining(self) -> float | None:
        return None

    def peer(self) -> str:
        return "in-process"

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def set_compression(self, compression: object) -> None:
        return None

    def disable_next_message_compression(self) -> None:
        return None

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[InProcessContext], object]) -> None:
        self._done_callbacks.append(callback)

    async def read(self) -> NoReturn:
        raise RuntimeError("in-process calls carry a single request message")

    async def write(self, message: object) -> NoReturn:
        raise RuntimeError("in-process streaming needs an async-generator servicer method")

    def request_id(self) -> str | None:
        for key, value in self._invocation_metadata:
            if key == "x-ojs-request-id":
                return value
        return None

    @property
    def abort_error(self) -> RpcStatusError | None:
        return self._abort_error

    def status_error(self) -> RpcStatusError | None:
        """The error a call that returned normally ends with (`set_code` with a non-OK code)."""
        if self._abort_error is not None:
            return self._abort_error
        if self._code is not None and self._code != grpc.StatusCode.OK:
            return RpcStatusError(self._code, self._details or "", self._trailing_metadata)
        return None

    def finish(self) -> None:
        self._done = True
        callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("done callback of an in-process call failed")


def _escaped(context: InProcessContext, method: object) -> RpcStatusError:
    """The error for an exception that left a servicer method, as grpc.aio decides it."""
    if context.abort_error is not None:
        return context.abort_error
    name = getattr(method, "__name__", method)
    # A servicer that set a code before raising (the generated base: UNIMPLEMENTED) meant that code.
    error = context.status_error()
    if error is not None:
        logger.debug("servicer method %s ended with %s", name, error.code(), exc_info=True)
        return error
    logger.exception("servicer method %s raised", name)
    return internal_error(context.request_id())


class InProcessClient:
    """`OJSClient` calling a servicer in this process: no serialization, no socket.

    `servicer` is an `ojs.v1.service_pb2_grpc.OJSServiceServicer` written for
    grpc.aio (async methods taking `(request, context)`). Requests are handed
    to the servicer as they are, so a caller must not mutate a request after
    passing it in; responses are the servicer's own objects.
    """

    def __init__(self, servicer: service_pb2_grpc.OJSServiceServicer, *, metadata: Metadata = ()) -> None:
        self._servicer = servicer
        self._metadata = tuple(metadata)

    def _context(self, metadata: Metadata) -> InProcessContext:
        return InProcessContext((*self._metadata, *metadata) if metadata else self._metadata)

    async def _unary(
        self,
        method: Callable[[_ReqT, Any], _RespT | Awaitable[_RespT]],
        request: _ReqT,
        metadata: Metadata,
    ) -> _RespT:
        context = self._context(metadata)
        try:
            outcome = method(request, context)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:
            escaped = _escaped(context, method)
            if escaped is exc:
                raise
            raise escaped from exc
        finally:
            context.finish()
        error = context.status_error()
        if error is not None:
            raise error
        return cast(_RespT, outcome)

    async def _stream(
        self, method: Callable[[_ReqT, Any], Any], request: _ReqT, metadata: Metadata
    ) -> AsyncIterator[Any]:
        context = self._context(metadata)
        stream: Any = None
        try:
            try:
                stream = method(request, context)
                if inspect.isawaitable(stream):
                    stream = await stream
                if stream is not None:
                    async for item in stream:
                        yield item
            except Exception as exc:
                escaped = _escaped(context, method)
                if escaped is exc:
                    raise
                raise escaped from exc
            error = context.status_error()
            if error is not None:
                raise error
        except (GeneratorExit, asyncio.CancelledError):
            # The consumer went away: what a client cancelling the call looks like to a servicer.
            context.cancel()
            raise
        finally:
            if stream is not None and hasattr(stream, "aclose"):
                await stream.aclose()
            context.finish()

    async def Manifest(
        self, request: service_pb2.ManifestRequest, *, metadata: Metadata = ()
    ) -> service_pb2.ManifestResponse:
        return await self._unary(self._servicer.Manifest, request, metadata)

    async def Health(
        self, request: service_pb2.HealthRequest, *, metadata: Metadata = ()
    ) -> service_pb2.HealthResponse:
        return await self._unary(self._servicer.Health, request, metadata)

    async def Enqueue(self, request: job_pb2.EnqueueRequest, *, metadata: Metadata = ()) -> job_pb2.EnqueueResponse:
        return await self._unary(self._servicer.Enqueue, request, metadata)

    async def EnqueueBatch(
        self, request: job_pb2.EnqueueBatchRequest, *, metadata: Metadata = ()
    ) -> job_pb2.EnqueueBatchResponse:
        return await self._unary(self._servicer.EnqueueBatch, request, metadata)

    async def GetJob(self, request: job_pb2.GetJobRequest, *, metadata: Metadata = ()) -> job_pb2.GetJobResponse:
        return await self._unary(self._servicer.GetJob, request, metadata)

    async def CancelJob(
        self, request: job_pb2.CancelJobRequest, *, metadata: Metadata = ()
    ) -> job_pb2.CancelJobResponse:
        return await self._unary(self._servicer.CancelJob, request, metadata)

    async def ActivateJob(
        self, request: job_pb2.ActivateJobRequest, *, metadata: Metadata = ()
    ) -> job_pb2.ActivateJobResponse:
        return await self._unary(self._servicer.ActivateJob, request, metadata)

    async def Fetch(self, request: worker_pb2.FetchRequest, *, metadata: Metadata = ()) -> worker_pb2.FetchResponse:
        return await self._unary(self._servicer.Fetch, request, metadata)

    async def Ack(self, request: worker_pb2.AckRequest, *, metadata: Metadata = ()) -> worker_pb2.AckResponse:
        return await self._unary(self._servicer.Ack, request, metadata)

    async def Nack(self, request: worker_pb2.NackRequest, *, metadata: Metadata = ()) -> worker_pb2.NackResponse:
        return await self._unary(self._servicer.Nack, request, metadata)

    async def Heartbeat(
        self, request: worker_pb2.HeartbeatRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.HeartbeatResponse:
        return await self._unary(self._servicer.Heartbeat, request, metadata)

    def StreamJobs(
        self, request: worker_pb2.StreamJobsRequest, *, metadata: Metadata = ()
    ) -> AsyncIterator[job_pb2.Job]:
        return self._stream(self._servicer.StreamJobs, request, metadata)

    def StreamEvents(
        self, request: events_pb2.StreamEventsRequest, *, metadata: Metadata = ()
    ) -> AsyncIterator[events_pb2.Event]:
        return self._stream(self._servicer.StreamEvents, request, metadata)

    async def ListQueues(
        self, request: queue_pb2.ListQueuesRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ListQueuesResponse:
        return await self._unary(self._servicer.ListQueues, request, metadata)

    async def QueueStats(
        self, request: queue_pb2.QueueStatsRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.QueueStatsResponse:
        return await self._unary(self._servicer.QueueStats, request, metadata)

    async def PauseQueue(
        self, request: queue_pb2.PauseQueueRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.PauseQueueResponse:
        return await self._unary(self._servicer.PauseQueue, request, metadata)

    async def ResumeQueue(
        self, request: queue_pb2.ResumeQueueRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ResumeQueueResponse:
        return await self._unary(self._servicer.ResumeQueue, request, metadata)

    async def ListDeadLetter(
        self, request: queue_pb2.ListDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.ListDeadLetterResponse:
        return await self._unary(self._servicer.ListDeadLetter, request, metadata)

    async def RetryDeadLetter(
        self, request: queue_pb2.RetryDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.RetryDeadLetterResponse:
        return await self._unary(self._servicer.RetryDeadLetter, request, metadata)

    async def DeleteDeadLetter(
        self, request: queue_pb2.DeleteDeadLetterRequest, *, metadata: Metadata = ()
    ) -> queue_pb2.DeleteDeadLetterResponse:
        return await self._unary(self._servicer.DeleteDeadLetter, request, metadata)

    async def RegisterCron(
        self, request: service_pb2.RegisterCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.RegisterCronResponse:
        return await self._unary(self._servicer.RegisterCron, request, metadata)

    async def UnregisterCron(
        self, request: service_pb2.UnregisterCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.UnregisterCronResponse:
        return await self._unary(self._servicer.UnregisterCron, request, metadata)

    async def ListCron(
        self, request: service_pb2.ListCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.ListCronResponse:
        return await self._unary(self._servicer.ListCron, request, metadata)

    async def GetCron(
        self, request: service_pb2.GetCronRequest, *, metadata: Metadata = ()
    ) -> service_pb2.GetCronResponse:
        return await self._unary(self._servicer.GetCron, request, metadata)

    async def CreateWorkflow(
        self, request: workflow_pb2.CreateWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.CreateWorkflowResponse:
        return await self._unary(self._servicer.CreateWorkflow, request, metadata)

    async def GetWorkflow(
        self, request: workflow_pb2.GetWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.GetWorkflowResponse:
        return await self._unary(self._servicer.GetWorkflow, request, metadata)

    async def CancelWorkflow(
        self, request: workflow_pb2.CancelWorkflowRequest, *, metadata: Metadata = ()
    ) -> workflow_pb2.CancelWorkflowResponse:
        return await self._unary(self._servicer.CancelWorkflow, request, metadata)

    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, *, metadata: Metadata = ()
    ) -> events_pb2.ListEventsResponse:
        return await self._unary(self._servicer.ListEvents, request, metadata)

    async def SetWorkerDirective(
        self, request: worker_pb2.SetWorkerDirectiveRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.SetWorkerDirectiveResponse:
        return await self._unary(self._servicer.SetWorkerDirective, request, metadata)

    async def ListWorkers(
        self, request: worker_pb2.ListWorkersRequest, *, metadata: Metadata = ()
    ) -> worker_pb2.ListWorkersResponse:
        return await self._unary(self._servicer.ListWorkers, request, metadata)
