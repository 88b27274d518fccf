"""SIGTERM with work in flight, on real server processes (one, and the two workers of `--workers 2`)."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import redis
from ojs.v1 import service_pb2_grpc, worker_pb2

from tests.e2e.processes import Launcher, ServerProcess

LONG_POLLS = 24
STREAMS = 4
STREAM_WINDOW = 3
QUEUED = 40
BATCH = 5000


def _stream(server: ServerProcess, received: list[str], opened: threading.Event) -> str:
    """Hold a StreamJobs stream open, never acking; returns how it ended."""
    options = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options) as channel:
        stub = service_pb2_grpc.OJSServiceStub(channel)
        request = worker_pb2.StreamJobsRequest(queues=["work"], worker_id=f"s{uuid.uuid4().hex[:6]}", max_concurrent=3)
        try:
            for job in stub.StreamJobs(request):
                received.append(job.id)
                opened.set()
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return "OK"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_in_flight_work_and_leaves_no_job_leased_to_a_closed_stream(
    launch: Launcher, redis_url: str, workers: int
) -> None:
    prefix = f"sd{uuid.uuid4().hex[:8]}"
    server = launch(REDIS_URL=redis_url, OJS_KEY_PREFIX=prefix, OJS_WORKERS=str(workers), OJS_SHUTDOWN_TIMEOUT="20")
    server.wait_ready()
    for i in range(QUEUED):
        assert (
            server.request("POST", "/ojs/v1/jobs", {"type": "t.x", "args": [i], "options": {"queue": "work"}})[0] == 201
        )

    pool = ThreadPoolExecutor(max_workers=LONG_POLLS + STREAMS + 4)
    received: list[list[str]] = [[] for _ in range(STREAMS)]
    opened = [threading.Event() for _ in range(STREAMS)]
    streams = [pool.submit(_stream, server, received[i], opened[i]) for i in range(STREAMS)]
    for event in opened:
        assert event.wait(10), "a stream received no job"
    # Long polls on an empty queue: in flight until the server ends them.
    polls: list[Future[tuple[int, Any]]] = [
        pool.submit(server.request, "POST", "/ojs/v1/workers/fetch", {"queues": ["idle"], "wait_ms": 15000})
        for _ in range(LONG_POLLS)
    ]
    batch = {"jobs": [{"type": "t.batch", "args": [i], "options": {"queue": "bulk"}} for i in range(BATCH)]}
    batches = [pool.submit(server.request, "POST", "/ojs/v1/jobs/batch", batch) for _ in range(2)]
    time.sleep(1.0)
    assert not any(poll.done() for poll in polls), "long polls ended before the signal"

    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    # In-flight requests finish: long polls answer (with what they have), batches are stored.
    for poll in polls:
        status, body = poll.result(timeout=15)
        assert status == 200 and body["jobs"] == []
    assert time.monotonic() - started < 10, "long polls were not ended by the shutdown"
    for pending in batches:
        status, body = pending.result(timeout=20)
        assert status == 201, body
    ends = [stream.result(timeout=20) for stream in streams]
    assert set(ends) <= {"UNAVAILABLE", "OK", "CANCELLED"}, ends
    assert server.proc.wait(25) == 0, server.output
    pool.shutdown()

    client = redis.Redis.from_url(redis_url)
    try:
        delivered = {job_id for ids in received for job_id in ids}
        members: list[bytes] = client.zrange(f"{prefix}:active", 0, -1)  # type: ignore[assignment]
        active = {job_id.decode() for job_id in members}
        # Every job still leased was sent to a stream's client; the others went back to the queue.
        assert active <= delivered, active - delivered
        assert client.zcard(f"{prefix}:available:work") == QUEUED - len(active)
        assert client.zcard(f"{prefix}:available:bulk") == 2 * BATCH
    finally:
        client.close()
    output = server.output
    assert "Traceback" not in output, output


def test_a_second_signal_forces_the_exit(launch: Launcher, redis_url: str) -> None:
    server = launch(REDIS_URL=redis_url, OJS_KEY_PREFIX=f"sf{uuid.uuid4().hex[:8]}", OJS_SHUTDOWN_TIMEOUT="60")
    server.wait_ready()
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Two batches of the largest size (10,000 jobs each) keep the server busy well past both signals,
        # however fast it stores a batch.
        batch = {"jobs": [{"type": "t.batch", "args": [i]} for i in range(2 * BATCH)]}
        pending = [pool.submit(server.request, "POST", "/ojs/v1/jobs/batch", batch) for _ in range(2)]
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        # Apart, so the two are not merged into one pending signal; the batches are still being stored.
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(15)
        for request in pending:
            request.exception(timeout=15)
    # Forced: the process does not wait out the 60 s timeout, and says why.
    assert code in (0, 1), server.output
    assert "again; exiting without waiting" in server.output
