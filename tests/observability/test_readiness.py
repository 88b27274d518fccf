"""Readiness follows the process's phase and Redis; while draining, new calls are refused and probes still answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ojs.v1 import admin_pb2, admin_pb2_grpc, job_pb2, service_pb2, service_pb2_grpc

from server.app import Application
from server.config import Settings
from server.embedded_redis import EmbeddedRedis
from server.observability.readiness import Phase
from tests.conftest import available_redis_binaries

MEDIA = {"Content-Type": "application/openjobspec+json"}


async def _ready(session: aiohttp.ClientSession, app: Application) -> tuple[int, dict[str, object]]:
    async with session.get(f"http://127.0.0.1:{app.http_port}/ready") as response:
        return response.status, await response.json()


async def _grpc_health(app: Application) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        statuses = {
            (await stub.Check(health_pb2.HealthCheckRequest(service=service))).status
            for service in ("", "ojs.v1.OJSService")
        }
    assert len(statuses) == 1
    return int(statuses.pop())


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[Application]:
    settings = Settings(redis_url=redis_url, http_port=0, grpc_port=0, host="127.0.0.1", key_prefix=uuid.uuid4().hex)
    application = Application(settings)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


async def test_draining_refuses_new_calls_and_probes_say_so(app: Application) -> None:
    async with aiohttp.ClientSession() as session:
        assert (await _ready(session, app))[0] == 200
        assert await _grpc_health(app) == health_pb2.HealthCheckResponse.SERVING
        # The first steps of a shutdown, without the rest.
        await app.readiness.set_phase(Phase.DRAINING)
        servicer = app._servicer
        assert servicer is not None
        servicer.frame.draining = True
        status, body = await _ready(session, app)
        assert status == 503 and body["status"] == "draining" and body["ready"] is False
        assert await _grpc_health(app) == health_pb2.HealthCheckResponse.NOT_SERVING
        async with session.post(
            f"http://127.0.0.1:{app.http_port}/ojs/v1/jobs", json={"type": "a.b", "args": []}, headers=MEDIA
        ) as response:
            assert response.status == 503
            error = (await response.json())["error"]
        assert error["code"] == "backend_unavailable" and error["retryable"] is True
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = service_pb2_grpc.OJSServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Enqueue(job_pb2.EnqueueRequest(type="a.b"))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            health = await stub.Health(service_pb2.HealthRequest())
            assert health.details["lifecycle"] == "draining"
            admin = admin_pb2_grpc.OJSAdminServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await admin.ListQueueSummaries(admin_pb2.ListQueueSummariesRequest())
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        async with session.get(f"http://127.0.0.1:{app.http_port}/metrics") as response:
            assert response.status == 200


async def test_readiness_follows_redis(tmp_path: Path) -> None:
    binary = available_redis_binaries()[0]
    redis = EmbeddedRedis(tmp_path / "redis", binary=binary.path, persistent=False)
    url = await redis.start()
    application = Application(Settings(redis_url=url, http_port=0, grpc_port=0, host="127.0.0.1"))
    await application.start()
    try:
        async with aiohttp.ClientSession() as session:
            assert (await _ready(session, application))[0] == 200
            await redis.stop()
            for _ in range(100):
                status, body = await _ready(session, application)
                if status == 503:
                    break
                await asyncio.sleep(0.1)
            assert status == 503, body
            assert body["status"] == "serving"
            assert body["backend"]["status"] == "disconnected"  # type: ignore[index]
            assert await _grpc_health(application) == health_pb2.HealthCheckResponse.NOT_SERVING
            await redis.start()
            for _ in range(100):
                status, body = await _ready(session, application)
                if status == 200:
                    break
                await asyncio.sleep(0.1)
            assert status == 200, body
            assert await _grpc_health(application) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await application.stop()
        await redis.stop()
