"""Clients of the running application for hostile-input tests, and the checks every refusal must pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from ojs.v1 import service_pb2_grpc
from redis.asyncio import Redis

from tests.rpc.rich_status import error_details

MEDIA_TYPE = "application/openjobspec+json"
# Trailing metadata a default gRPC client accepts without question (its soft limit).
METADATA_SOFT_LIMIT = 8 * 1024


class Http:
    """Raw HTTP to the gateway: bodies go as the exact bytes given."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, port: int) -> None:
        self.session = session
        self.base_url = base_url
        self.port = port

    async def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        async with self.session.request(method, self.base_url + path, data=body, headers=headers) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if raw else None, resp

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        status, payload, _ = await self.send("POST", path, orjson.dumps(body))
        return status, payload

    async def raw(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        """Bytes straight onto a socket, for requests no HTTP client would send; the reply parsed by hand."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            return status, headers, body
        finally:
            writer.close()


def assert_envelope(status: int, body: Any, *, expected_status: int, code: str) -> dict[str, Any]:
    assert status == expected_status, f"expected {expected_status} {code}, got {status}: {body}"
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["retryable"], bool)
    assert error["request_id"].startswith("req_") or error["request_id"], error
    return error


def assert_rich_error(exc: grpc.aio.AioRpcError, *, code: grpc.StatusCode, reason: str) -> Any:
    assert exc.code() == code, f"expected {code} {reason}, got {exc.code()}: {exc.details()}"
    info, _ = error_details(exc)
    assert info.reason == reason, info
    # No Python class names or tracebacks in what a client reads.
    assert "<class" not in (exc.details() or "") and "Traceback" not in (exc.details() or "")
    size = sum(len(key) + len(value) for key, value in exc.trailing_metadata() or ())
    assert size < METADATA_SOFT_LIMIT, f"trailing metadata of {size} bytes"
    return info


@pytest.fixture
async def http(ojs_http: Any, ojs_app: Any) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(session, str(ojs_http.base_url), ojs_app.http_port)


@pytest.fixture
async def channel(grpc_target: str) -> AsyncIterator[grpc.aio.Channel]:
    # Default options: the 4 MiB receive limit every stock client has.
    async with grpc.aio.insecure_channel(grpc_target) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Any:
    return service_pb2_grpc.OJSServiceStub(channel)


async def stored_keys(redis: Redis) -> set[bytes]:
    return {key async for key in redis.scan_iter(count=1000)}
