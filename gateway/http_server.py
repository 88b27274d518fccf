"""The HTTP server runner: requests aiohttp cannot even parse still get the OJS error envelope.

A request line or header over 8,190 bytes, a bad method or a malformed header
fails in aiohttp's parser, before any middleware runs, and aiohttp answers with
a plain-text page of its own. `GatewayRunner` serves the app with connections
whose error page is the `{"error": {...}}` body with the binding's headers.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.app import OJS_VERSION, new_request_id
from gateway.errors import ApiError, from_http_status
from gateway.routes import MEDIA_TYPE, json_response

__all__ = ["GatewayRunner"]

logger = logging.getLogger(__name__)


def parse_error(status: int, exc: BaseException | None) -> ApiError:
    """The envelope for a request aiohttp refused or failed outside the app; never echoes the request."""
    if isinstance(exc, LineTooLong):
        return ApiError(status, "invalid_request", "the request line or a header is too long (8190 bytes at most)")
    if isinstance(exc, BadHttpMethod):
        return ApiError(status, "invalid_request", "the request method is not valid HTTP")
    if isinstance(exc, HttpProcessingError) and status < 500:
        return ApiError(status, "invalid_request", "the request is not valid HTTP/1.1")
    return from_http_status(status)


class _EnvelopeRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Part of a response went out already: the connection can only be dropped.
            raise ConnectionError("response already started; cannot send an error page")
        if status >= 500:
            logger.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            logger.info("refused a malformed request from %s: %s", request.remote, type(exc).__name__)
        error = parse_error(status, exc)
        request_id = new_request_id()
        response = json_response(error.body(request_id), status=error.status, headers=error.headers)
        response.headers["Content-Type"] = MEDIA_TYPE
        response.headers["OJS-Version"] = OJS_VERSION
        response.headers["X-Request-Id"] = request_id
        response.force_close()
        return response


class _EnvelopeServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer parse errors with the OJS envelope."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The app builds a plain web.Server; the subclass only changes the protocol it makes per connection.
        server.__class__ = _EnvelopeServer
        return server
