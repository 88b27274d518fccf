"""The service itself: manifest, health, reflection, an unreachable backend, API keys."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from ojs.v1 import events_pb2, job_pb2, service_pb2, service_pb2_grpc
from redis.asyncio import Redis

from server.app import build_servicer
from server.config import Settings
from server.domain.ids import new_uuid7
from server.rpc.server import GrpcServer
from server.store.facade import Store
from server.store.keys import KeySchema
from tests.rpc.calls import private_server, value_list
from tests.rpc.rich_status import error_info, failure

S = job_pb2


# --------------------------------------------------------------------------- system


async def test_manifest(stub: Any) -> None:
    response = await stub.Manifest(service_pb2.ManifestRequest())
    document = orjson.loads(response.manifest_json)
    assert isinstance(document, dict)
    assert document["specversion"] == "1.0"
    assert "grpc" in document["protocols"]
    assert "http" in document["protocols"]
    assert isinstance(document["implementation"]["name"], str)
    assert document["conformance_level"] == response.conformance_level
    assert response.implementation.name == document["implementation"]["name"]
    assert set(response.protocols) == set(document["protocols"])
    assert response.backend == "redis"


async def test_health_is_ok(stub: Any) -> None:
    response = await stub.Health(service_pb2.HealthRequest())
    assert response.status == service_pb2.HEALTH_STATUS_OK
    details = json_format.MessageToDict(response.details)
    assert details["backend"]["status"] == "connected"
    assert response.HasField("timestamp")


async def test_standard_health_check(grpc_target: str) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest())
        assert overall.status == health_pb2.HealthCheckResponse.SERVING
        service = await health.Check(health_pb2.HealthCheckRequest(service="ojs.v1.OJSService"))
        assert service.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(grpc_target: str) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names: set[str] = set()
        async for response in call:
            names.update(s.name for s in response.list_services_response.service)
    assert "ojs.v1.OJSService" in names
    assert "grpc.health.v1.Health" in names


# --------------------------------------------------------------------------- backend unreachable


async def test_backend_unreachable() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0")
    store = Store(redis, KeySchema("x"))
    servicer = build_servicer(store, Settings(default_visibility_timeout_ms=60_000))
    server = GrpcServer(servicer, api_key=None)
    port = server.bind("127.0.0.1", 0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.OJSServiceStub(channel)
            request = job_pb2.EnqueueRequest(type="test.echo", args=value_list([1]))
            error = await failure(stub.Enqueue(request, timeout=30))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            info = error_info(error)
            assert info.reason == "backend_unavailable"
            assert info.metadata["retryable"] == "true"

            error = await failure(stub.GetJob(job_pb2.GetJobRequest(job_id=new_uuid7()), timeout=30))
            assert error.code() == grpc.StatusCode.UNAVAILABLE

            health = await stub.Health(service_pb2.HealthRequest(), timeout=30)
            assert health.status == service_pb2.HEALTH_STATUS_UNHEALTHY
            details = json_format.MessageToDict(health.details)
            assert details["backend"]["status"] == "disconnected"
    finally:
        await server.stop(0)
        await redis.aclose()


# --------------------------------------------------------------------------- authentication


async def test_api_key_is_required(redis_url: str) -> None:
    async with (
        private_server(redis_url, api_key="secret", prefix="authtest") as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = service_pb2_grpc.OJSServiceStub(channel)
        request = job_pb2.EnqueueRequest(type="test.echo", args=value_list([1]), options=job_pb2.EnqueueOptions())

        error = await failure(stub.Enqueue(request))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(error).reason == "unauthenticated"

        error = await failure(stub.Enqueue(request, metadata=(("x-ojs-api-key", "wrong"),)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        error = await failure(stub.Enqueue(request, metadata=(("authorization", "Bearer wrong"),)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        error = await failure(stub.Enqueue(request, metadata=(("authorization", "secret"),)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED

        job = (await stub.Enqueue(request, metadata=(("x-ojs-api-key", "secret"),))).job
        assert job.state == S.JOB_STATE_AVAILABLE
        got = await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=(("authorization", "Bearer secret"),))
        assert got.job.id == job.id

        health = health_pb2_grpc.HealthStub(channel)
        checked = await health.Check(health_pb2.HealthCheckRequest())
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        probe = await stub.Health(service_pb2.HealthRequest())
        assert probe.status == service_pb2.HEALTH_STATUS_OK
        manifest = await stub.Manifest(service_pb2.ManifestRequest())
        assert orjson.loads(manifest.manifest_json)["specversion"] == "1.0"


async def test_reflection_requires_the_api_key(redis_url: str) -> None:
    async with (
        private_server(redis_url, api_key="secret", prefix="authtest") as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")

        async def list_services(metadata: tuple[tuple[str, str], ...]) -> set[str]:
            names: set[str] = set()
            call = reflection.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)
            async for response in call:
                names.update(s.name for s in response.list_services_response.service)
            return names

        error = await failure(list_services(()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "ojs.v1.OJSService" in await list_services((("x-ojs-api-key", "secret"),))


async def test_streaming_rpcs_require_the_api_key(redis_url: str) -> None:
    async with (
        private_server(redis_url, api_key="secret", prefix="authtest") as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = service_pb2_grpc.OJSServiceStub(channel)
        call = stub.StreamEvents(events_pb2.StreamEventsRequest())

        async def drain() -> None:
            async for _ in call:
                pass

        error = await failure(drain())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_manifest_reports_the_implemented_level(stub: Any) -> None:
    call = stub.Manifest(service_pb2.ManifestRequest())
    response = await call
    assert response.conformance_level == 4
    document = orjson.loads(response.manifest_json)
    assert document["conformance_level"] == 4
    assert document["capabilities"]["dead_letter"] is True
    assert document["capabilities"]["cron_jobs"] is True
    trailers = dict(await call.trailing_metadata())
    assert trailers["x-ojs-conformance-level"] == "4"


async def test_manifest_declares_level_4_with_strong_uniqueness(stub: Any) -> None:
    call = stub.Manifest(service_pb2.ManifestRequest())
    response = await call
    assert response.conformance_level == 4
    document = orjson.loads(response.manifest_json)
    assert document["conformance_level"] == 4
    assert document["unique_job_strength"] == "strong"
    capabilities = document["capabilities"]
    for name in ("unique_jobs", "batch_enqueue", "pause_resume", "rate_limiting", "priority_queues"):
        assert capabilities[name] is True, name
    trailers = dict(await call.trailing_metadata())
    assert trailers["x-ojs-conformance-level"] == "4"
