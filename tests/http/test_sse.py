"""Server-Sent Events and long-poll fetch over the REST gateway of the running application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support import new_queue

MEDIA_TYPE = "application/openjobspec+json"
EVENT_STREAM = "text/event-stream"
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str | None
    data: Any


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def base(ojs_http: Any) -> str:
    return str(ojs_http.base_url)


async def next_event(resp: aiohttp.ClientResponse) -> SseEvent:
    """The next dispatched event of an SSE body; comment lines (keepalives) are skipped."""
    found: dict[str, str] = {}
    data: list[str] = []
    while True:
        raw = await resp.content.readline()
        if not raw:
            raise EOFError("the event stream ended")
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data or found:
                return SseEvent(found.get("id"), found.get("event"), orjson.loads("\n".join(data)))
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            found[name] = value


async def read_events(resp: aiohttp.ClientResponse, count: int) -> list[SseEvent]:
    async def read() -> list[SseEvent]:
        return [await next_event(resp) for _ in range(count)]

    return await asyncio.wait_for(read(), READ_TIMEOUT_S)


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def run_one_job(session: aiohttp.ClientSession, base: str, queue: str) -> str:
    """Enqueue, fetch and ack one job on `queue`; its id."""
    status, created = await post(
        session, f"{base}/ojs/v1/jobs", {"type": "sse.job", "args": [1], "options": {"queue": queue}}
    )
    assert status == 201, created
    job_id: str = created["job"]["id"]
    status, fetched = await post(session, f"{base}/ojs/v1/workers/fetch", {"queues": [queue], "worker_id": "sse-w"})
    assert status == 200 and [job["id"] for job in fetched["jobs"]] == [job_id], fetched
    status, acked = await post(session, f"{base}/ojs/v1/workers/ack", {"job_id": job_id, "worker_id": "sse-w"})
    assert status == 200, acked
    return job_id


def assert_stream_headers(resp: aiohttp.ClientResponse) -> None:
    assert resp.status == 200
    assert resp.headers["Content-Type"] == EVENT_STREAM
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["OJS-Version"] == "1.0"
    assert resp.headers["X-Request-Id"]


async def test_queue_stream_live_then_resumed_with_last_event_id(session: aiohttp.ClientSession, base: str) -> None:
    queue = new_queue("sse")
    async with session.get(f"{base}/ojs/v1/queues/{queue}/events") as live:
        # The headers come once the subscription is in place, so nothing enqueued from here on is missed.
        assert_stream_headers(live)
        job_id = await run_one_job(session, base, queue)
        seen = await read_events(live, 3)

    assert [e.event for e in seen] == ["job.enqueued", "job.started", "job.completed"]
    assert [e.data["type"] for e in seen] == [e.event for e in seen]
    assert {e.data["job_id"] for e in seen} == {job_id}
    assert all(e.id and e.data["id"] == f"evt_{e.id}" for e in seen)
    assert len({e.id for e in seen}) == 3

    async with session.get(f"{base}/ojs/v1/queues/{queue}/events", headers={"Last-Event-ID": str(seen[0].id)}) as again:
        assert_stream_headers(again)
        resumed = await read_events(again, 2)

    # No gap and no repeat: exactly the events after the one the client last saw.
    assert [(e.id, e.event) for e in resumed] == [(e.id, e.event) for e in seen[1:]]
    assert [e.data for e in resumed] == [e.data for e in seen[1:]]


async def test_job_stream_replays_from_after(session: aiohttp.ClientSession, base: str) -> None:
    queue = new_queue("sse")
    job_id = await run_one_job(session, base, queue)
    async with session.get(f"{base}/ojs/v1/events", params={"queues": queue}) as listed:
        logged = (await listed.json(content_type=None))["events"]
    assert [e["type"] for e in logged] == ["job.enqueued", "job.started", "job.completed"]
    first_cursor = logged[0]["id"].removeprefix("evt_")

    async with session.get(f"{base}/ojs/v1/jobs/{job_id}/events", params={"after": first_cursor}) as stream:
        assert_stream_headers(stream)
        replayed = await read_events(stream, 2)

    # Each data object is the one GET /ojs/v1/events lists for the same event.
    assert [e.data for e in replayed] == logged[1:]


async def test_bad_cursor_is_a_json_error(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(
        f"{base}/ojs/v1/queues/{new_queue('sse')}/events", headers={"Last-Event-ID": "not-a-cursor"}
    ) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == MEDIA_TYPE
        error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "invalid_request"


async def test_long_poll_fetch_returns_as_soon_as_a_job_arrives(session: aiohttp.ClientSession, base: str) -> None:
    queue = new_queue("sse")
    started = time.monotonic()
    waiting = asyncio.ensure_future(post(session, f"{base}/ojs/v1/workers/fetch", {"queues": [queue], "wait_ms": 3000}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    status, created = await post(
        session, f"{base}/ojs/v1/jobs", {"type": "sse.poll", "args": [], "options": {"queue": queue}}
    )
    assert status == 201
    status, fetched = await asyncio.wait_for(waiting, 10)
    elapsed = time.monotonic() - started
    assert status == 200
    assert [job["id"] for job in fetched["jobs"]] == [created["job"]["id"]]
    assert elapsed < 2.0, f"the long poll took {elapsed:.2f}s"


async def test_long_poll_fetch_times_out_empty(session: aiohttp.ClientSession, base: str) -> None:
    started = time.monotonic()
    status, fetched = await post(
        session, f"{base}/ojs/v1/workers/fetch", {"queues": [new_queue("sse")], "wait_ms": 400}
    )
    assert status == 200 and fetched["jobs"] == []
    assert 0.35 <= time.monotonic() - started < 3


@pytest.mark.parametrize("wait_ms", ["1000", 2.5, 10_000_000])
async def test_long_poll_wait_ms_is_checked(session: aiohttp.ClientSession, base: str, wait_ms: Any) -> None:
    status, body = await post(
        session, f"{base}/ojs/v1/workers/fetch", {"queues": [new_queue("sse")], "wait_ms": wait_ms}
    )
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
