"""Server-Sent Events routes over a canned StreamEvents, and the long-poll field of fetch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from aiohttp import web
from google.protobuf import struct_pb2
from ojs.v1 import events_pb2, job_pb2, service_pb2_grpc, worker_pb2

from gateway.app import create_app
from gateway.client import ChannelClient, InProcessClient, InProcessStreamCall
from gateway.convert.events import event_to_json
from tests.gateway.conftest import JOB_ID, MEDIA_TYPE, FakeClient, MakeClient, rich_status, rpc_error, ts

EVENT_STREAM = "text/event-stream"
QUEUE = "emails"


def job_event(cursor: str, event_type: str, state: str, data: bytes = b"{}") -> events_pb2.Event:
    return events_pb2.Event(
        id=f"evt_{cursor}",
        type=event_type,
        job_id=JOB_ID,
        job_type="email.send",
        queue=QUEUE,
        timestamp=ts("2026-02-12T10:30:00.123Z"),
        data_json=data,
        state=state,
        cursor=cursor,
    )


ENQUEUED = job_event("1739356200123-0", "job.enqueued", "available", b'{"priority":0,"n":18446744073709551617}')
COMPLETED = job_event("1739356200456-3", "job.completed", "completed", b'{"duration_ms":12}')
KEEPALIVE = events_pb2.Event(type="stream.keepalive", timestamp=ts("2026-02-12T10:30:15Z"), data_json=b"{}")


def dropped(n: int) -> events_pb2.Event:
    data = struct_pb2.Struct()
    data.update({"dropped": n})
    return events_pb2.Event(
        type="system.events_dropped", timestamp=ts("2026-02-12T10:30:16Z"), data=data, data_json=b'{"dropped":%d}' % n
    )


class StreamingFake(FakeClient):
    """A FakeClient whose StreamEvents yields `items` (raising the exceptions among them), then ends or waits."""

    def __init__(self, items: Sequence[events_pb2.Event | BaseException] = (), *, hold: bool = False, **outcomes: Any):
        super().__init__(**outcomes)
        self.items = list(items)
        self.hold = hold
        self.gate: asyncio.Event | None = None
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()

    def StreamEvents(self, request, *, metadata=None, **_options):
        self.record("StreamEvents", request, metadata)
        return InProcessStreamCall(self._events())

    async def _events(self) -> AsyncGenerator[events_pb2.Event, None]:
        self.opened.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            for item in self.items:
                if isinstance(item, BaseException):
                    raise item
                yield item
            if self.hold:
                await asyncio.Event().wait()
        finally:
            self.closed.set()


def frames(body: bytes) -> list[bytes]:
    assert body.endswith(b"\n\n") or body == b""
    return [frame for frame in body.split(b"\n\n") if frame]


def fields(frame: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in frame.decode().split("\n"):
        name, _, value = line.partition(": ")
        out[name] = value
    return out


async def test_framing_of_events_keepalives_and_drops(make_client: MakeClient) -> None:
    fake = StreamingFake([ENQUEUED, KEEPALIVE, dropped(7), COMPLETED])
    client = await make_client(fake)

    resp = await client.get(f"/ojs/v1/queues/{QUEUE}/events")

    assert resp.status == 200
    body = await resp.read()
    enqueued = orjson.dumps(event_to_json(ENQUEUED))
    completed = orjson.dumps(event_to_json(COMPLETED))
    assert body == (
        b"id: 1739356200123-0\nevent: job.enqueued\ndata: " + enqueued + b"\n\n"
        b": keepalive\n\n"
        b'event: system.events_dropped\ndata: {"dropped":7}\n\n'
        b"id: 1739356200456-3\nevent: job.completed\ndata: " + completed + b"\n\n"
    )
    # The exact number survives: event data is passed through as JSON, never via floats.
    assert b'"n":18446744073709551617' in enqueued
    request, _ = fake.last("StreamEvents")
    assert list(request.queues) == [QUEUE] and request.job_id == "" and request.after == ""
    assert await asyncio.wait_for(fake.closed.wait(), 5) is True


async def test_data_is_the_object_the_event_log_lists(make_client: MakeClient) -> None:
    fake = StreamingFake(
        [ENQUEUED, COMPLETED], ListEvents=events_pb2.ListEventsResponse(events=[ENQUEUED, COMPLETED], cursor="x")
    )
    client = await make_client(fake)

    listed = await (await client.get("/ojs/v1/events")).json(content_type=None)
    streamed = [fields(frame) for frame in frames(await (await client.get(f"/ojs/v1/jobs/{JOB_ID}/events")).read())]

    # json, not orjson: the big integer in the data must compare exactly.
    assert [json.loads(f["data"]) for f in streamed] == listed["events"]
    assert [f["id"] for f in streamed] == ["1739356200123-0", "1739356200456-3"]
    assert [f["event"] for f in streamed] == ["job.enqueued", "job.completed"]


async def test_headers(make_client: MakeClient) -> None:
    fake = StreamingFake([ENQUEUED])
    client = await make_client(fake)

    resp = await client.get(
        f"/ojs/v1/jobs/{JOB_ID}/events", headers={"X-Request-Id": "req_sse-1", "traceparent": "00-a-b-01"}
    )

    assert resp.status == 200
    assert resp.headers["Content-Type"] == EVENT_STREAM
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["OJS-Version"] == "1.0"
    assert resp.headers["X-Request-Id"] == "req_sse-1"
    await resp.read()
    request, metadata = fake.last("StreamEvents")
    assert request.job_id == JOB_ID and list(request.queues) == []
    assert metadata == {"x-ojs-request-id": "req_sse-1", "traceparent": "00-a-b-01"}


async def test_cors_headers_on_a_stream(make_client: MakeClient) -> None:
    client = await make_client(StreamingFake([ENQUEUED]))
    resp = await client.get(f"/ojs/v1/queues/{QUEUE}/events", headers={"Origin": "https://dash.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Content-Type"] == EVENT_STREAM
    await resp.read()


@pytest.mark.parametrize(
    ("query", "headers", "after"),
    [
        ("", {"Last-Event-ID": "1739356200123-0"}, "1739356200123-0"),
        ("?after=1739356200000-5", {}, "1739356200000-5"),
        # A reconnecting client's Last-Event-ID is newer than the after= of the URL it first opened.
        ("?after=1739356200000-5", {"Last-Event-ID": "1739356200123-0"}, "1739356200123-0"),
        ("", {}, ""),
    ],
)
async def test_resume_position(make_client: MakeClient, query: str, headers: dict[str, str], after: str) -> None:
    fake = StreamingFake([COMPLETED])
    client = await make_client(fake)
    for path in (f"/ojs/v1/jobs/{JOB_ID}/events", f"/ojs/v1/queues/{QUEUE}/events"):
        resp = await client.get(path + query, headers=headers)
        assert resp.status == 200
        await resp.read()
        request, _ = fake.last("StreamEvents")
        assert request.after == after


async def test_types_filter(make_client: MakeClient) -> None:
    fake = StreamingFake([COMPLETED])
    client = await make_client(fake)
    resp = await client.get(f"/ojs/v1/queues/{QUEUE}/events?types=job.completed,job.failed&types=job.retrying")
    await resp.read()
    request, _ = fake.last("StreamEvents")
    assert list(request.event_types) == ["job.completed", "job.failed", "job.retrying"]
    assert list(request.queues) == [QUEUE]


async def test_rejected_subscription_is_a_json_error(make_client: MakeClient) -> None:
    bad_cursor = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "after must be a cursor", field="after")
    client = await make_client(StreamingFake([bad_cursor]))

    resp = await client.get(f"/ojs/v1/queues/{QUEUE}/events", headers={"Last-Event-ID": "nope"})

    assert resp.status == 400
    assert resp.headers["Content-Type"] == MEDIA_TYPE
    assert "Cache-Control" not in resp.headers
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "invalid_request"
    assert error["request_id"] == resp.headers["X-Request-Id"]


async def test_stream_ending_with_a_status_ends_the_response(make_client: MakeClient) -> None:
    shutting_down = rpc_error(
        grpc.StatusCode.UNAVAILABLE, "backend_unavailable", "the server is shutting down", retryable=True
    )
    client = await make_client(StreamingFake([ENQUEUED, shutting_down]))

    resp = await client.get(f"/ojs/v1/queues/{QUEUE}/events")

    assert resp.status == 200 and resp.headers["Content-Type"] == EVENT_STREAM
    assert [fields(f)["event"] for f in frames(await resp.read())] == ["job.enqueued"]


async def test_headers_do_not_wait_for_the_first_event(make_client: MakeClient) -> None:
    fake = StreamingFake([ENQUEUED])
    fake.gate = asyncio.Event()
    client = await make_client(fake)

    started = time.monotonic()
    resp = await asyncio.wait_for(client.get(f"/ojs/v1/queues/{QUEUE}/events"), 5)

    assert resp.status == 200 and resp.headers["Content-Type"] == EVENT_STREAM
    assert time.monotonic() - started < 2
    fake.gate.set()
    assert fields(frames(await resp.read())[0])["event"] == "job.enqueued"


async def test_auth_applies(make_client: MakeClient) -> None:
    fake = StreamingFake([ENQUEUED])
    client = await make_client(fake, api_key="s3cret")

    denied = await client.get(f"/ojs/v1/queues/{QUEUE}/events")
    allowed = await client.get(f"/ojs/v1/queues/{QUEUE}/events", headers={"Authorization": "Bearer s3cret"})

    assert denied.status == 401 and denied.headers["Content-Type"] == MEDIA_TYPE
    assert allowed.status == 200 and allowed.headers["Content-Type"] == EVENT_STREAM
    await allowed.read()
    assert [name for name, _, _ in fake.calls] == ["StreamEvents"]


async def test_head_is_not_a_stream(make_client: MakeClient) -> None:
    client = await make_client(StreamingFake([ENQUEUED], hold=True))
    resp = await client.head(f"/ojs/v1/queues/{QUEUE}/events")
    assert resp.status == 405


async def test_client_leaving_cancels_the_stream(make_client: MakeClient) -> None:
    fake = StreamingFake([ENQUEUED], hold=True)
    client = await make_client(fake)

    resp = await client.get(f"/ojs/v1/queues/{QUEUE}/events")
    line = await asyncio.wait_for(resp.content.readline(), 5)
    assert line.startswith(b"id: ")
    resp.close()

    await asyncio.wait_for(fake.closed.wait(), 5)


@pytest.fixture
async def plain_server() -> AsyncIterator[Any]:
    """The gateway under a plain AppRunner, which (like ojs-server) does not cancel handlers on disconnect."""
    runners: list[web.AppRunner] = []

    async def start(fake: FakeClient) -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(create_app(fake), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_idle_stream_notices_a_client_that_left(plain_server: Any) -> None:
    fake = StreamingFake([], hold=True)
    _, base = await plain_server(fake)
    async with aiohttp.ClientSession() as session:
        resp = await session.get(f"{base}/ojs/v1/queues/{QUEUE}/events")
        assert resp.status == 200
        resp.close()
    await asyncio.wait_for(fake.closed.wait(), 5)


async def test_shutdown_ends_open_streams(plain_server: Any) -> None:
    fake = StreamingFake([ENQUEUED], hold=True)
    runner, base = await plain_server(fake)
    async with aiohttp.ClientSession() as session:
        resp = await session.get(f"{base}/ojs/v1/queues/{QUEUE}/events")
        assert (await asyncio.wait_for(resp.content.readline(), 5)).startswith(b"id: ")
        started = time.monotonic()
        await asyncio.wait_for(runner.cleanup(), 8)
        assert time.monotonic() - started < 5
        assert fake.closed.is_set()
        resp.close()


class EventsServicer(service_pb2_grpc.OJSServiceServicer):
    """StreamEvents the way the real servicer answers: a bad cursor aborts, the end is UNAVAILABLE."""

    async def StreamEvents(self, request, context):
        if request.after == "bad":
            status = rich_status(grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "bad cursor", field="after")
            await context.abort(status.code, status.details, status.trailing_metadata)
        yield KEEPALIVE
        yield ENQUEUED
        yield dropped(2)
        status = rich_status(grpc.StatusCode.UNAVAILABLE, "backend_unavailable", "shutting down", retryable=True)
        await context.abort(status.code, status.details, status.trailing_metadata)


async def test_streams_over_both_clients(make_client: MakeClient) -> None:
    server = grpc.aio.server()
    service_pb2_grpc.add_OJSServiceServicer_to_server(EventsServicer(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        over_channel = await make_client(ChannelClient(channel))
        in_process = await make_client(InProcessClient(EventsServicer()))  # type: ignore[abstract]
        results = []
        for client in (over_channel, in_process):
            ok = await client.get(f"/ojs/v1/queues/{QUEUE}/events")
            bad = await client.get(
                f"/ojs/v1/queues/{QUEUE}/events", headers={"Last-Event-ID": "bad", "X-Request-Id": "r"}
            )
            results.append((ok.status, ok.headers["Content-Type"], await ok.read(), bad.status, await bad.read()))
    finally:
        await channel.close()
        await server.stop(None)
    assert results[0] == results[1]
    status, content_type, body, bad_status, _ = results[0]
    assert (status, content_type, bad_status) == (200, EVENT_STREAM, 400)
    assert body.startswith(b": keepalive\n\nid: 1739356200123-0\nevent: job.enqueued\n")
    assert body.endswith(b'event: system.events_dropped\ndata: {"dropped":2}\n\n')


# ---- Long-poll fetch ----


async def test_fetch_passes_wait_ms(make_client: MakeClient) -> None:
    fake = FakeClient(Fetch=worker_pb2.FetchResponse())
    client = await make_client(fake)
    resp = await client.post("/ojs/v1/workers/fetch", json={"queues": ["q"], "wait_ms": 3000})
    assert resp.status == 200
    request, _ = fake.last("Fetch")
    assert request.wait_ms == 3000


async def test_fetch_without_wait_ms_answers_at_once(make_client: MakeClient) -> None:
    fake = FakeClient(Fetch=worker_pb2.FetchResponse())
    client = await make_client(fake)
    await client.post("/ojs/v1/workers/fetch", json={"queues": ["q"]})
    request, _ = fake.last("Fetch")
    assert request.wait_ms == 0


@pytest.mark.parametrize("wait_ms", ["3000", 1.5, True, [1], {"ms": 1}, 2**31])
async def test_fetch_rejects_a_wait_ms_that_is_not_an_integer(make_client: MakeClient, wait_ms: Any) -> None:
    fake = FakeClient(Fetch=worker_pb2.FetchResponse())
    client = await make_client(fake)
    resp = await client.post("/ojs/v1/workers/fetch", json={"queues": ["q"], "wait_ms": wait_ms})
    assert resp.status == 400
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "invalid_request"
    assert not [name for name, _, _ in fake.calls if name == "Fetch"]


async def test_fetch_range_is_the_servers_to_judge(make_client: MakeClient) -> None:
    fake = FakeClient(Fetch=worker_pb2.FetchResponse())
    client = await make_client(fake)
    resp = await client.post("/ojs/v1/workers/fetch", json={"queues": ["q"], "wait_ms": -5})
    assert resp.status == 200
    request, _ = fake.last("Fetch")
    assert request.wait_ms == -5


class _RecordingChannel:
    """Stands in for a grpc.aio channel: every multi-callable the stub asks for records its call options."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None, tuple[tuple[str, str], ...]]] = []

    def _callable(self, path: str, *args: Any, **kwargs: Any) -> Any:
        def call(request: Any, *, timeout: float | None = None, metadata: Any = None, **options: Any) -> Any:
            self.calls.append((path.rsplit("/", 1)[1], timeout, tuple(metadata)))
            return None

        return call

    unary_unary = unary_stream = stream_unary = stream_stream = _callable


def test_channel_deadline_leaves_room_for_the_long_poll() -> None:
    channel = _RecordingChannel()
    bounded = ChannelClient(channel, timeout_s=30, metadata=[("authorization", "Bearer k")])
    unbounded = ChannelClient(channel, timeout_s=None)
    bounded.Fetch(worker_pb2.FetchRequest(queues=["q"]))
    bounded.Fetch(worker_pb2.FetchRequest(queues=["q"], wait_ms=60_000), metadata=[("x-ojs-request-id", "r")])
    unbounded.Fetch(worker_pb2.FetchRequest(queues=["q"], wait_ms=60_000))
    bounded.GetJob(job_pb2.GetJobRequest(job_id="j"), timeout=2)
    bounded.StreamEvents(events_pb2.StreamEventsRequest())
    assert channel.calls == [
        ("Fetch", 30, (("authorization", "Bearer k"),)),
        ("Fetch", 90, (("authorization", "Bearer k"), ("x-ojs-request-id", "r"))),
        ("Fetch", None, ()),
        # A deadline given by the caller wins; streams get none by default.
        ("GetJob", 2, (("authorization", "Bearer k"),)),
        ("StreamEvents", None, (("authorization", "Bearer k"),)),
    ]
