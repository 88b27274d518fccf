"""The event log: GET /ojs/v1/events, and Server-Sent Events streams of a job's or a queue's events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from ojs.v1 import events_pb2

from gateway.client import OJSClient
from gateway.convert.events import list_events_request, render_events, sse_frame, stream_events_request
from gateway.routes.base import EVENT_STREAM, RouteGroup, json_response, rpc_metadata

logger = logging.getLogger(__name__)

# An event stream sends its headers once the first event arrives or after this long, whichever is first;
# a subscription the service rejects within it (a bad cursor) still gets the JSON error envelope.
SSE_OPEN_WAIT_S = 0.25
# How often an event stream with nothing to send checks that its client is still there.
SSE_IDLE_CHECK_S = 1.0

# A stream's rendering of one event: the frame to send (b"" for none) and whether the stream ends after it.
SseRender = Callable[[events_pb2.Event], tuple[bytes, bool]]
# A stream's first frame, read once the subscription is live (and whether it is also the last).
SseOpening = Callable[[], Awaitable[tuple[bytes, bool]]]


def _every_event(event: events_pb2.Event) -> tuple[bytes, bool]:
    return sse_frame(event), False


class EventRoutes(RouteGroup):
    """The event log, listed or streamed; streams end when the client leaves or the app shuts down."""

    def __init__(
        self, client: OJSClient, *, open_wait_s: float = SSE_OPEN_WAIT_S, idle_check_s: float = SSE_IDLE_CHECK_S
    ) -> None:
        super().__init__(client)
        self._sse_open_wait_s = open_wait_s
        self._sse_idle_check_s = idle_check_s
        self._closing = False

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ojs/v1/jobs/{id}/events", self.job_events, allow_head=False)
        router.add_get("/ojs/v1/queues/{name}/events", self.queue_events, allow_head=False)
        router.add_get("/ojs/v1/events", self.list_events)

    async def on_shutdown(self, app: web.Application) -> None:
        # Event streams never end on their own; let them finish instead of waiting out the grace period.
        self._closing = True

    async def list_events(self, request: web.Request) -> web.Response:
        rpc: events_pb2.ListEventsRequest = list_events_request(request.query)
        response = await self._client.ListEvents(rpc, metadata=rpc_metadata(request))
        return json_response(render_events(response))

    async def job_events(self, request: web.Request) -> web.StreamResponse:
        rpc = stream_events_request(
            request.query, request.headers.get("Last-Event-ID"), job_id=request.match_info["id"]
        )
        return await self.event_stream(request, rpc)

    async def all_events(self, request: web.Request) -> web.StreamResponse:
        """Every event (optionally of some types): the admin dashboard's live view, mounted by the admin routes."""
        rpc = stream_events_request(request.query, request.headers.get("Last-Event-ID"))
        return await self.event_stream(request, rpc)

    async def queue_events(self, request: web.Request) -> web.StreamResponse:
        rpc = stream_events_request(
            request.query, request.headers.get("Last-Event-ID"), queue=request.match_info["name"]
        )
        return await self.event_stream(request, rpc)

    async def event_stream(
        self,
        request: web.Request,
        rpc: events_pb2.StreamEventsRequest,
        *,
        render: SseRender = _every_event,
        opening: SseOpening | None = None,
    ) -> web.StreamResponse:
        """StreamEvents as Server-Sent Events, until the client leaves or the stream (or `render`) ends it.

        `opening`, called once the subscription is live and before the headers go out, gives the first
        frame; it may raise to answer with an error envelope instead.
        """
        call = self._client.StreamEvents(rpc, metadata=rpc_metadata(request))
        stream = aiter(call)
        first = asyncio.ensure_future(_next_event(stream))
        pending: asyncio.Task[events_pb2.Event | None] | None = first
        try:
            await asyncio.wait((first,), timeout=self._sse_open_wait_s)
            if first.done():
                # Raising here, before any byte is sent, gives the usual error envelope.
                first.result()
            opening_frame, finished = await opening() if opening is not None else (b"", False)
            response = web.StreamResponse(headers={"Content-Type": EVENT_STREAM, "Cache-Control": "no-cache"})
            await response.prepare(request)
            # From here on a failure can only end the stream: the status line is gone.
            if opening_frame:
                await response.write(opening_frame)
            while not finished:
                if pending is None:
                    pending = asyncio.ensure_future(_next_event(stream))
                if not await self._until_done(request, pending):
                    break
                event = _outcome(pending)
                pending = None
                if event is None:
                    break
                frame, finished = render(event)
                try:
                    if frame:
                        await response.write(frame)
                except ConnectionError:
                    break
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        finally:
            await _discard(pending)
            call.cancel()

    async def _until_done(self, request: web.Request, pending: asyncio.Task[Any]) -> bool:
        """Wait for `pending`; False if the client disconnects or the app shuts down first."""
        while True:
            done, _ = await asyncio.wait((pending,), timeout=self._sse_idle_check_s)
            if done:
                return True
            transport = request.transport
            if self._closing or transport is None or transport.is_closing():
                return False


async def _next_event(stream: AsyncIterator[events_pb2.Event]) -> events_pb2.Event | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


def _outcome(task: asyncio.Task[events_pb2.Event | None]) -> events_pb2.Event | None:
    """The next event of a started stream; None once it ended, normally or not."""
    try:
        return task.result()
    except grpc.RpcError as exc:
        # The service ends every stream with a status (UNAVAILABLE when shutting down).
        logger.debug("event stream ended: %s", exc)
    except Exception:
        logger.exception("event stream failed")
    return None


async def _discard(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` if it still runs and wait until it has unwound."""
    if task is None:
        return
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()
