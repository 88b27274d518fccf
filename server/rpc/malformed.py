"""Requests whose bytes are not the message the method takes get INVALID_ARGUMENT, not UNKNOWN.

grpc.aio decodes a request with the handler's deserializer before any servicer
code runs, and answers UNKNOWN with the Python exception class in the message
when it raises. This interceptor wraps the deserializer of every method with a
single request message: an undecodable request becomes a marker, and the
wrapped behaviour answers it with the usual rich status (`invalid_payload`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.domain.errors import ErrorCode, OJSError
from server.rpc.calls import abort_with


class _Undecodable:
    """Stands in for a request that could not be decoded."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _type_name(deserializer: Callable[[bytes], Any]) -> str:
    message_class = getattr(deserializer, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


def _error(request: _Undecodable) -> OJSError:
    return OJSError(
        ErrorCode.INVALID_PAYLOAD,
        f"the request is not a valid {request.type_name} message: its protobuf encoding is malformed",
        details={"message_type": request.type_name},
    )


def _guarded(handler: Any) -> Any:
    decode = handler.request_deserializer
    type_name = _type_name(decode)

    def safe_decode(raw: bytes) -> Any:
        try:
            return decode(raw)
        except Exception:
            return _Undecodable(type_name)

    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if isinstance(request, _Undecodable):
                await abort_with(context, _error(request))
            return await unary(request, context)

        return handler._replace(request_deserializer=safe_decode, unary_unary=unary_unary)

    stream = handler.unary_stream

    async def unary_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            await abort_with(context, _error(request))
        result = stream(request, context)
        if isinstance(result, AsyncIterator):
            async for item in result:
                yield item
        else:  # a handler that writes with context.write() and returns nothing
            await result

    return handler._replace(request_deserializer=safe_decode, unary_stream=unary_stream)


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps each single-request method's deserializer (client-streaming methods are left as they are)."""

    def __init__(self) -> None:
        self._guarded: dict[str, Any] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        # Handlers are built once per method; so are their guarded forms.
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, _guarded(handler))
            self._guarded[method] = cached
        return cached[1]
