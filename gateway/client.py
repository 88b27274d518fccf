"""The interface the gateway calls, and its two adapters, built from the service descriptor.

The interface is the generated async stub, `OJSServiceAsyncStub` (typed by
`service_pb2_grpc.pyi`): `await client.Enqueue(request, metadata=...)` for a
unary RPC, `client.StreamEvents(request, ...)` giving a call to iterate and
`cancel()` for a server-streaming one. Failures are raised as `grpc.RpcError`
carrying a rich status (ErrorInfo in `grpc-status-details-bin`).

`ChannelClient` goes over a real `grpc.aio` channel. `InProcessClient` calls a
servicer object directly, skipping serialization and the network hop, with the
same error shape so routes cannot tell them apart. Both take their RPCs from
`service_pb2.DESCRIPTOR`, so a new RPC needs no code here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.rpc import error_details_pb2, status_pb2
from ojs.v1 import service_pb2, service_pb2_grpc

__all__ = [
    "ERROR_DOMAIN",
    "SERVICE",
    "STATUS_DETAILS_KEY",
    "ChannelClient",
    "InProcessClient",
    "InProcessContext",
    "InProcessStreamCall",
    "Metadata",
    "OJSClient",
    "RpcStatusError",
    "bind_channel",
    "bind_in_process",
]

logger = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str]]
OJSClient: TypeAlias = "service_pb2_grpc.OJSServiceAsyncStub"

SERVICE = service_pb2.DESCRIPTOR.services_by_name["OJSService"]
STATUS_DETAILS_KEY = "grpc-status-details-bin"
ERROR_DOMAIN = "openjobspec.org"
# A request field asking the server to hold the call open this long (the long-poll Fetch).
_WAIT_FIELD = "wait_ms"

if TYPE_CHECKING:
    # The adapters answer every RPC the generated stub declares; the attributes are set from the descriptor.
    _StubShaped: TypeAlias = service_pb2_grpc.OJSServiceAsyncStub
else:
    _StubShaped = object


def _merged(defaults: tuple[tuple[str, str], ...], metadata: Any) -> tuple[tuple[str, str], ...]:
    return (*defaults, *metadata) if metadata else defaults


# ---------------------------------------------------------------------------
# Over a grpc.aio channel
# ---------------------------------------------------------------------------


class _ChannelMethod:
    """One multi-callable of the generated stub, with the client's default metadata and deadline."""

    __slots__ = ("_call", "_defaults", "_long_poll", "_timeout_s")

    def __init__(
        self, call: Any, method: MethodDescriptor, defaults: tuple[tuple[str, str], ...], timeout_s: float | None
    ) -> None:
        self._call = call
        self._defaults = defaults
        # No default deadline on streams: a stream lives as long as its consumer wants it.
        streaming = method.server_streaming or method.client_streaming
        self._timeout_s = None if streaming else timeout_s
        self._long_poll = not streaming and _WAIT_FIELD in method.input_type.fields_by_name

    def __call__(self, request: Any, *, timeout: float | None = None, metadata: Any = None, **options: Any) -> Any:
        if timeout is None and self._timeout_s is not None:
            timeout = self._timeout_s
            wait_ms = getattr(request, _WAIT_FIELD, 0) if self._long_poll else 0
            if wait_ms > 0:
                # A long poll may legitimately take `wait_ms`; the deadline only guards the work after it.
                timeout += wait_ms / 1000
        return self._call(request, timeout=timeout, metadata=_merged(self._defaults, metadata), **options)


class ChannelClient(_StubShaped):
    """`OJSClient` over a `grpc.aio.Channel` (the standalone gateway).

    `metadata` is sent with every call before the per-call metadata (e.g. the
    API key as `authorization`); `timeout_s` bounds each unary call so a hung
    server turns into DEADLINE_EXCEEDED instead of a request that never ends
    (a long-poll Fetch gets its `wait_ms` on top; streams have no deadline).
    """

    def __init__(self, channel: grpc.aio.Channel, *, metadata: Metadata = (), timeout_s: float | None = 30.0) -> None:
        bind_channel(self, service_pb2_grpc.OJSServiceStub(channel), SERVICE, metadata=metadata, timeout_s=timeout_s)


def bind_channel(
    target: object, stub: object, service: ServiceDescriptor, *, metadata: Metadata, timeout_s: float | None
) -> None:
    """Give `target` one attribute per RPC of `service`, calling `stub` with the defaults of `ChannelClient`."""
    defaults = tuple(metadata)
    for method in service.methods:
        setattr(target, method.name, _ChannelMethod(getattr(stub, method.name), method, defaults, timeout_s))


# ---------------------------------------------------------------------------
# In process: errors and the servicer context
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
        self._invocation_metadata = tuple([(key.lower(), value) for key, value in metadata])
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


# ---------------------------------------------------------------------------
# In process: the adapter
# ---------------------------------------------------------------------------

# Streams ended by `cancel()` close in the background; held here so they are not collected half way.
_closing: set[asyncio.Task[None]] = set()


def _closed(task: asyncio.Task[None]) -> None:
    _closing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("closing an in-process stream failed", exc_info=task.exception())


class InProcessStreamCall:
    """A server-streaming call in process, used as a grpc.aio one: iterate it (or `read()`), `cancel()` it.

    `cancel()` is what a client going away looks like to the servicer: its
    context reads cancelled and its stream is closed, so its cleanup runs. A
    read in progress in another task is its owner's to cancel first.
    """

    __slots__ = ("_cancelled", "_context", "_messages")

    def __init__(self, messages: AsyncGenerator[Any, None], context: InProcessContext | None = None) -> None:
        self._messages = messages
        self._context = context
        self._cancelled = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages

    async def read(self) -> Any:
        try:
            return await anext(self._messages)
        except StopAsyncIteration:
            return grpc.aio.EOF

    def done(self) -> bool:
        # A finished async generator has dropped its frame.
        return self._cancelled or getattr(self._messages, "ag_frame", None) is None

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> bool:
        if self.done():
            return False
        self._cancelled = True
        if self._context is not None:
            self._context.cancel()
        if not getattr(self._messages, "ag_running", False):
            task = asyncio.get_running_loop().create_task(self._messages.aclose())
            _closing.add(task)
            task.add_done_callback(_closed)
        return True


async def _stream_messages(
    handler: Callable[[Any, InProcessContext], Any], request: Any, context: InProcessContext
) -> AsyncGenerator[Any, None]:
    stream: Any = None
    try:
        try:
            stream = handler(request, context)
            if inspect.isawaitable(stream):
                stream = await stream
            if stream is not None:
                async for item in stream:
                    yield item
        except Exception as exc:
            escaped = _escaped(context, handler)
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


def _streaming_method(
    handler: Callable[[Any, InProcessContext], Any], defaults: tuple[tuple[str, str], ...]
) -> Callable[..., InProcessStreamCall]:
    def call(request: Any, *, metadata: Any = None, **_options: Any) -> InProcessStreamCall:
        context = InProcessContext(_merged(defaults, metadata))
        return InProcessStreamCall(_stream_messages(handler, request, context), context)

    return call


def _unary_method(
    handler: Callable[[Any, InProcessContext], Any], defaults: tuple[tuple[str, str], ...]
) -> Callable[..., Any]:
    async def call(request: Any, *, metadata: Any = None, **_options: Any) -> Any:
        context = InProcessContext(_merged(defaults, metadata))
        try:
            outcome = handler(request, context)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:
            escaped = _escaped(context, handler)
            if escaped is exc:
                raise
            raise escaped from exc
        finally:
            context.finish()
        error = context.status_error()
        if error is not None:
            raise error
        return outcome

    return call


class InProcessClient(_StubShaped):
    """`OJSClient` calling a servicer in this process: no serialization, no socket.

    `servicer` is an `ojs.v1.service_pb2_grpc.OJSServiceServicer` written for
    grpc.aio (async methods taking `(request, context)`; a client-streaming RPC
    gets the request iterator as given). Requests are handed to the servicer as
    they are, so a caller must not mutate a request after passing it in;
    responses are the servicer's own objects. A call runs in its caller's task:
    there is no deadline (`timeout` and the other call options are accepted and
    have no effect), and cancelling the caller cancels the call.
    """

    def __init__(self, servicer: service_pb2_grpc.OJSServiceServicer, *, metadata: Metadata = ()) -> None:
        bind_in_process(self, servicer, SERVICE, metadata=metadata)


def bind_in_process(target: object, servicer: object, service: ServiceDescriptor, *, metadata: Metadata) -> None:
    """Give `target` one attribute per RPC of `service`, calling `servicer` as `InProcessClient` does."""
    defaults = tuple(metadata)
    for method in service.methods:
        bind = _streaming_method if method.server_streaming else _unary_method
        setattr(target, method.name, bind(getattr(servicer, method.name), defaults))
