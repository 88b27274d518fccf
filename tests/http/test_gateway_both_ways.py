"""The same HTTP behaviour whether the gateway calls the servicer in process or over a gRPC channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.client import ChannelClient
from tests.support import new_queue

MEDIA_TYPE = "application/openjobspec+json"


@pytest.fixture(scope="session")
async def channel_gateway_url(grpc_target: str) -> AsyncIterator[str]:
    channel = grpc.aio.insecure_channel(grpc_target)
    server = TestServer(create_app(ChannelClient(channel)), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await channel.close()


@pytest.fixture(params=["in-process", "channel"])
def base_url(request: pytest.FixtureRequest, ojs_http) -> str:
    if request.param == "in-process":
        return str(ojs_http.base_url)
    url: str = request.getfixturevalue("channel_gateway_url")
    return url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_job_lifecycle(base_url: str, http: aiohttp.ClientSession, ojs_http) -> None:
    await ojs_http.flush()
    body = b'{"type":"both.ways","args":[12345678901234567890,1.50,"x"],"options":{"queue":"both"},"x_keep":1}'
    async with http.post(f"{base_url}/ojs/v1/jobs", data=body, headers={"Content-Type": MEDIA_TYPE}) as resp:
        assert resp.status == 201
        assert resp.headers["Content-Type"] == MEDIA_TYPE
        assert resp.headers["OJS-Version"] == "1.0"
        created = await resp.json(content_type=None)
    job = created["job"]
    assert job["state"] == "available" and job["x_keep"] == 1
    async with http.post(f"{base_url}/ojs/v1/workers/fetch", json={"queues": ["both"], "worker_id": "w"}) as resp:
        fetched = await resp.json(content_type=None)
        raw = await resp.read()
    assert [j["id"] for j in fetched["jobs"]] == [job["id"]]
    # Args reach the worker byte for byte: no float or big-int rounding on the way.
    assert b"[12345678901234567890,1.50" in raw or b"[12345678901234567890,1.5," in raw
    async with http.post(f"{base_url}/ojs/v1/workers/ack", json={"job_id": job["id"], "result": [1, 2]}) as resp:
        assert resp.status == 200
        acked = await resp.json(content_type=None)
    assert acked["state"] == "completed" and acked["id"] == job["id"]
    async with http.get(f"{base_url}/ojs/v1/jobs/{job['id']}") as resp:
        final = (await resp.json(content_type=None))["job"]
    assert final["result"] == [1, 2] and final["state"] == "completed"


async def test_errors_map_the_same(base_url: str, http: aiohttp.ClientSession) -> None:
    missing = "0190c5a0-0000-7000-8000-000000000000"
    async with http.get(f"{base_url}/ojs/v1/jobs/{missing}", headers={"X-Request-Id": "req-both"}) as resp:
        assert resp.status == 404
        assert resp.headers["X-Request-Id"] == "req-both"
        error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "not_found" and error["request_id"] == "req-both" and error["retryable"] is False
    async with http.post(f"{base_url}/ojs/v1/jobs", json={"type": "Bad Type", "args": []}) as resp:
        assert resp.status == 400
        assert (await resp.json(content_type=None))["error"]["code"] == "invalid_request"
    bad_policy = {"type": "a", "args": [], "options": {"retry": {"backoff_coefficient": 0.5}}}
    async with http.post(f"{base_url}/ojs/v1/jobs", json=bad_policy) as resp:
        assert resp.status == 422
        error = (await resp.json(content_type=None))["error"]
    assert error["type"] == "validation_error" and "backoff_coefficient" in error["message"]
    async with http.post(f"{base_url}/ojs/v1/workers/ack", json={"job_id": missing}) as resp:
        assert resp.status == 404


async def test_event_stream(base_url: str, http: aiohttp.ClientSession) -> None:
    # StreamEvents, a server-streaming RPC, behind Server-Sent Events: the stream opens, carries the queue's
    # events as they happen, and ends when the client leaves.
    queue = new_queue("both-sse")
    body = {"type": "both.sse", "args": [], "options": {"queue": queue}}
    async with http.get(f"{base_url}/ojs/v1/queues/{queue}/events") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        async with http.post(f"{base_url}/ojs/v1/jobs", json=body) as resp:
            job_id = (await resp.json(content_type=None))["job"]["id"]
        frame = await asyncio.wait_for(_next_frame(stream), 10)
    assert "event: job.enqueued" in frame
    assert f'"job_id":"{job_id}"' in frame[-1]
    # The gateway still answers once the client has left and the stream was cancelled.
    async with http.get(f"{base_url}/ojs/v1/health") as resp:
        assert resp.status == 200


async def _next_frame(stream: aiohttp.ClientResponse) -> list[str]:
    """The lines of the next event, keepalive comments skipped."""
    lines: list[str] = []
    while True:
        raw = await stream.content.readline()
        assert raw, "the event stream ended"
        line = raw.decode().rstrip("\n")
        if line and not line.startswith(":"):
            lines.append(line)
        elif not line and lines:
            return lines


async def test_progress(base_url: str, http: aiohttp.ClientSession) -> None:
    queue = new_queue("both-progress")
    job = {"type": "both.progress", "args": [], "options": {"queue": queue}}
    async with http.post(f"{base_url}/ojs/v1/jobs", json=job) as resp:
        assert resp.status == 201
    async with http.post(f"{base_url}/ojs/v1/workers/fetch", json={"queues": [queue], "worker_id": "w"}) as resp:
        (fetched,) = (await resp.json(content_type=None))["jobs"]
    report = {"job_id": fetched["id"], "percentage": 30, "worker_id": "w", "data": {"n": 3}}
    async with http.post(f"{base_url}/ojs/v1/workers/progress", json=report) as resp:
        assert resp.status == 200 and resp.headers["X-OJS-Progress"] == "0.3"
    async with http.get(f"{base_url}/ojs/v1/jobs/{fetched['id']}/progress") as resp:
        read = await resp.json(content_type=None)
    assert (read["progress"], read["data"], read["state"]) == (0.3, {"n": 3}, "active")
    async with http.put(
        f"{base_url}/ojs/v1/jobs/{fetched['id']}/progress", json={"progress": 0.5, "worker_id": "x"}
    ) as resp:
        assert resp.status == 409
