"""GET /metrics: cluster-wide job figures from Redis, exact across two servers on one Redis; per-process figures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from ojs.v1 import admin_pb2, admin_pb2_grpc, job_pb2, service_pb2_grpc, worker_pb2
from prometheus_client.parser import text_string_to_metric_families

from server.app import Application
from server.config import Settings

MEDIA = {"Content-Type": "application/openjobspec+json"}


@pytest.fixture
async def two_servers(redis_url: str) -> AsyncIterator[tuple[Application, Application]]:
    """Two servers sharing one Redis under a fresh key prefix."""
    prefix = f"m{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=redis_url, http_port=0, grpc_port=0, host="127.0.0.1", key_prefix=prefix)
    first, second = Application(settings), Application(settings)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await second.stop()
        await first.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(
    session: aiohttp.ClientSession, app: Application
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with session.get(f"http://127.0.0.1:{app.http_port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return samples(await response.text())


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_job_figures_are_cluster_wide_and_exact(two_servers: tuple[Application, Application]) -> None:
    first, second = two_servers
    async with aiohttp.ClientSession() as session:
        # 5 jobs over HTTP on the first server, 3 over gRPC on the second.
        for i in range(5):
            body = {"type": "mail.send", "args": [i], "options": {"queue": "mail"}}
            async with session.post(f"http://127.0.0.1:{first.http_port}/ojs/v1/jobs", json=body, headers=MEDIA) as r:
                assert r.status == 201
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.grpc_port}") as channel:
            stub = service_pb2_grpc.OJSServiceStub(channel)
            for _ in range(3):
                await stub.Enqueue(
                    job_pb2.EnqueueRequest(type="report.build", options=job_pb2.EnqueueOptions(queue="mail"))
                )
            fetched = await stub.Fetch(worker_pb2.FetchRequest(queues=["mail"], count=4, worker_id="w1"))
            assert len(fetched.jobs) == 4
            # Two completed, one failed for good, one left active.
            for job in fetched.jobs[:2]:
                await stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="w1"))
            await stub.Nack(
                worker_pb2.NackRequest(
                    job_id=fetched.jobs[2].id,
                    worker_id="w1",
                    error=job_pb2.JobError(code="boom", message="no"),
                    retryable=False,
                )
            )
        for app in (first, second):
            found = await scrape(session, app)
            assert value(found, "ojs_job_enqueued_total", queue="mail", type="mail.send") == 5
            assert value(found, "ojs_job_enqueued_total", queue="mail", type="report.build") == 3
            assert value(found, "ojs_job_completed_total", queue="mail", type="mail.send") == 2
            assert value(found, "ojs_job_failed_total", queue="mail", type="mail.send") == 1
            assert value(found, "ojs_queue_depth", queue="mail", state="available") == 4
            assert value(found, "ojs_queue_depth", queue="mail", state="active") == 1
            assert value(found, "ojs_queue_depth", queue="mail", state="scheduled") == 0
            completed = value(
                found, "ojs_job_duration_seconds_count", queue="mail", type="mail.send", state="completed"
            )
            assert completed == 2
            assert (
                value(
                    found,
                    "ojs_job_duration_seconds_bucket",
                    queue="mail",
                    type="mail.send",
                    state="completed",
                    le="+Inf",
                )
                == 2
            )
            assert (
                value(found, "ojs_job_duration_seconds_count", queue="mail", type="mail.send", state="discarded") == 1
            )
            assert value(found, "ojs_job_queue_time_seconds_count", queue="mail", type="mail.send") == 4
            assert value(found, "ojs_workers_active") == 1

        # Per-process figures: the first served the HTTP enqueues, the second the gRPC calls.
        found = await scrape(session, first)
        enqueue_route = value(found, "ojs_http_requests_total", route="/ojs/v1/jobs", method="POST", status="201")
        assert enqueue_route == 5
        assert value(found, "ojs_grpc_requests_total", method="Enqueue", code="OK", transport="in_process") == 5
        assert value(found, "ojs_redis_command_duration_seconds_count", operation="enqueue") == 5
        assert value(found, "process_cpu_seconds_total") > 0
        found = await scrape(session, second)
        assert value(found, "ojs_grpc_requests_total", method="Enqueue", code="OK", transport="grpc") == 3
        assert value(found, "ojs_grpc_requests_total", method="Fetch", code="OK", transport="grpc") == 1
        assert value(found, "ojs_grpc_requests_total", method="Ack", code="OK", transport="grpc") == 2


async def test_errors_are_counted_by_status(two_servers: tuple[Application, Application]) -> None:
    first, _ = two_servers
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{first.http_port}/ojs/v1/jobs/not-a-job") as response:
            assert response.status == 404
        found = await scrape(session, first)
    assert value(found, "ojs_http_requests_total", route="/ojs/v1/jobs/{id}", method="GET", status="404") == 1
    assert value(found, "ojs_grpc_requests_total", method="GetJob", code="NOT_FOUND", transport="in_process") == 1


async def test_a_batch_is_counted_per_job_in_one_script_call(two_servers: tuple[Application, Application]) -> None:
    first, _ = two_servers
    jobs = [{"type": "img.resize", "args": [i], "options": {"queue": "img"}} for i in range(40)]
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{first.http_port}/ojs/v1/jobs/batch"
        async with session.post(url, json={"jobs": jobs}, headers=MEDIA) as response:
            assert response.status == 201
        found = await scrape(session, first)
    assert value(found, "ojs_job_enqueued_total", queue="img", type="img.resize") == 40
    assert value(found, "ojs_queue_depth", queue="img", state="available") == 40
    # One store call, one script call, for the whole batch.
    assert value(found, "ojs_redis_command_duration_seconds_count", operation="enqueue_batch") == 1


async def test_admin_calls_are_counted(two_servers: tuple[Application, Application]) -> None:
    first, _ = two_servers
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{first.http_port}/ojs/v1/admin/queues") as response:
            assert response.status == 200
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc_port}") as channel:
            stub = admin_pb2_grpc.OJSAdminServiceStub(channel)
            await stub.ListQueueSummaries(admin_pb2.ListQueueSummariesRequest())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetQueueSummary(admin_pb2.GetQueueSummaryRequest(queue="no-such-queue"))
        found = await scrape(session, first)
    method = "ListQueueSummaries"
    assert value(found, "ojs_grpc_requests_total", method=method, code="OK", transport="in_process") == 1
    assert value(found, "ojs_grpc_requests_total", method=method, code="OK", transport="grpc") == 1
    code = refused.value.code().name
    assert value(found, "ojs_grpc_requests_total", method="GetQueueSummary", code=code, transport="grpc") == 1


async def test_ready_and_health_details(two_servers: tuple[Application, Application]) -> None:
    first, _ = two_servers
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{first.http_port}/ready") as response:
            assert response.status == 200
            body = await response.json()
        assert body["ready"] is True and body["status"] == "serving"
        assert body["backend"]["status"] == "connected"
        async with session.get(f"http://127.0.0.1:{first.http_port}/ojs/v1/health") as response:
            health = await response.json()
        assert response.status == 200
        assert health["queues"] == {"active": 0, "paused": 0}
        assert health["workers"] == {"connected": 0, "stale": 0}
