"""What every route group shares: the response media type, JSON responses, call metadata, the group base."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway.client import OJSClient
from gateway.convert.common import json_object

__all__ = ["EVENT_STREAM", "MEDIA_TYPE", "REQUEST_ID", "RouteGroup", "json_response", "optional_body", "rpc_metadata"]

MEDIA_TYPE = "application/openjobspec+json"
# The one other content type: the Server-Sent Events routes.
EVENT_STREAM = "text/event-stream"

REQUEST_ID = web.RequestKey("ojs_request_id", str)

_FORWARDED_HEADERS = (("traceparent", "traceparent"), ("tracestate", "tracestate"))


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A response with a JSON body; `body` may be bytes that already are JSON."""
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    response = web.Response(body=payload, status=status, headers=headers)
    # Set verbatim: aiohttp's content_type/charset helpers would append "; charset=utf-8".
    response.headers["Content-Type"] = MEDIA_TYPE
    return response


def _metadata_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def rpc_metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    """gRPC metadata of the call made for `request`: request id and trace context."""
    metadata = [("x-ojs-request-id", request[REQUEST_ID])]
    for header, key in _FORWARDED_HEADERS:
        value = request.headers.get(header)
        if value and _metadata_safe(value):
            metadata.append((key, value))
    return tuple(metadata)


async def optional_body(request: web.Request) -> None:
    """Routes whose request carries nothing in the body: none is needed, but one sent must be a JSON object."""
    raw = await request.read()
    if raw.strip():
        json_object(raw)


class RouteGroup:
    """The routes of one resource, bound to one `OJSClient`: each parses, calls one RPC and renders the reply."""

    def __init__(self, client: OJSClient) -> None:
        self._client = client

    def add_to(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError
