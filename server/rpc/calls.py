"""The frame of every unary OJSService and OJSAdminService call: error mapping, drain refusal, metrics, lifecycle
records."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, Protocol, TypeAlias, TypeVar

import grpc

from server.domain.errors import ErrorCode, OJSError
from server.domain.job import StoredJob
from server.observability import tracing
from server.observability.logs import lifecycle, log_jobs
from server.observability.metrics import ProcessMetrics
from server.rpc.errors import GRPC_STATUS, to_status
from server.service.admission import Admission
from server.service.system import CONFORMANCE_LEVEL, IMPLEMENTATION_VERSION

log = logging.getLogger("server.rpc.servicer")

REQUEST_ID_KEY = "x-ojs-request-id"
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Req, Context], Awaitable[Resp]]


def request_id_of(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value
    return ""


async def abort_with(context: Context, error: OJSError) -> NoReturn:
    status = to_status(error, request_id=request_id_of(context))
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


# Sent with every reply, after the request id.
_SERVER_TRAILERS = (
    ("x-ojs-server-version", IMPLEMENTATION_VERSION),
    ("x-ojs-conformance-level", str(CONFORMANCE_LEVEL)),
)
# Always answered, even when the server sheds load or drains: probes must see how it is.
_UNGATED = frozenset({"Health", "Manifest"})


class CallFrame:
    """What every call of the process shares: the admission gate, the metrics, and the drain on shutdown."""

    def __init__(self, admission: Admission | None = None, metrics: ProcessMetrics | None = None) -> None:
        self.admission = admission
        self.metrics = metrics
        # Drain on shutdown: new calls are refused; `idle` is set once the calls running have finished.
        self.draining = False
        self.inflight = 0
        self.idle = asyncio.Event()

    def start_draining(self) -> None:
        self.draining = True
        if self.inflight == 0:
            self.idle.set()

    def enter(self) -> None:
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.draining and self.inflight == 0:
            self.idle.set()


class Framed(Protocol):
    """A servicer whose calls `rpc` wraps."""

    frame: CallFrame


def _admission_of(frame: CallFrame, name: str, request: Any) -> Admission | None:
    """The gate a call passes, or None: probes and long polls (which mostly wait) do not take a slot."""
    admission = frame.admission
    if admission is None or name in _UNGATED or getattr(request, "wait_ms", 0) > 0:
        return None
    return admission


def _lane(context: Any) -> str:
    """The gateway calls the servicer in process; everything else came over gRPC."""
    return "http" if context.peer() == "in-process" else "grpc"


def rpc(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Pass admission, turn expected errors into rich statuses and anything else into INTERNAL; count and time
    the call.

    While the server drains, new calls are refused with UNAVAILABLE; calls already running finish.
    """
    name = handler.__name__
    refuse = name not in _UNGATED

    @functools.wraps(handler)
    async def wrapper(self: Framed, request: Req, context: Context) -> Resp:
        frame = self.frame
        started = time.perf_counter()
        code = "OK"
        frame.enter()
        try:
            if frame.draining and refuse:
                raise OJSError(ErrorCode.BACKEND_UNAVAILABLE, "the server is shutting down")
            admission = _admission_of(frame, name, request)
            if admission is None:
                response = await handler(self, request, context)
            else:
                await admission.enter(_lane(context))
                try:
                    response = await handler(self, request, context)
                finally:
                    admission.leave()
        except OJSError as exc:
            code = GRPC_STATUS[exc.code].name
            await abort_with(context, exc)
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:
            # abort() itself raises to end the call; let that through untouched.
            if isinstance(exc, grpc.RpcError) or type(exc).__name__ == "AbortError":
                raise
            code = "INTERNAL"
            log.exception("unexpected error in %s", name)
            await abort_with(context, OJSError(ErrorCode.BACKEND_ERROR, "internal server error"))
        finally:
            frame.leave()
            if frame.metrics is not None:
                transport = "in_process" if tracing.IN_HTTP.get() else "grpc"
                frame.metrics.observe_rpc(name, code, transport, time.perf_counter() - started)
        request_id = request_id_of(context)
        context.set_trailing_metadata(
            ((REQUEST_ID_KEY, request_id), *_SERVER_TRAILERS) if request_id else _SERVER_TRAILERS
        )
        return response

    return wrapper


def log_job_records(level: int, message: str, jobs: list[StoredJob], context: Context, **extra: Any) -> None:
    if lifecycle.isEnabledFor(level):
        log_jobs(level, message, jobs, request_id_of(context), **extra)
