"""Server interceptors: API-key authentication."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from server.domain.errors import ErrorCode, OJSError
from server.rpc.errors import to_status

# Probes must work without credentials.
_OPEN_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/ojs.v1.OJSService/Health",
        "/ojs.v1.OJSService/Manifest",
    }
)


def presented_key(metadata: tuple[tuple[str, str | bytes], ...]) -> str | None:
    for key, value in metadata:
        if not isinstance(value, str):
            continue
        if key == "x-ojs-api-key":
            return value
        if key == "authorization" and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return None


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Requires `x-ojs-api-key` or `authorization: Bearer <key>`, compared in constant time."""

    def __init__(self, api_key: str) -> None:
        self._expected = api_key.encode()
        status = to_status(OJSError(ErrorCode.UNAUTHENTICATED, "missing or invalid API key"))

        async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(status.code, status.details, status.trailing_metadata)

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(status.code, status.details, status.trailing_metadata)
            yield  # pragma: no cover - makes this an async generator

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny_stream)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if handler_call_details.method in _OPEN_METHODS:
            return await continuation(handler_call_details)
        key = presented_key(tuple(handler_call_details.invocation_metadata or ()))
        if key is not None and hmac.compare_digest(key.encode(), self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is not None and handler.response_streaming:
            return self._deny_stream
        return self._deny_unary
