"""Two `ojs-server` processes on one Redis: a waiting worker gets the jobs enqueued through either.

A process wakes its own waiters when it enqueues and skips its own notification
when it comes back; the other process is woken by that notification. Each
delivery must come well before the waiters' periodic re-check (15 s).
"""

from __future__ import annotations

import time

import grpc
from ojs.v1 import service_pb2_grpc, worker_pb2

from .processes import Launcher, ServerProcess

QUEUE = "wakeups-two"
DELIVERY_S = 5.0


def enqueue(server: ServerProcess, i: int) -> str:
    status, body = server.request(
        "POST", "/ojs/v1/jobs", {"type": "e2e.wake", "args": [i], "options": {"queue": QUEUE}}
    )
    assert status == 201, body
    job_id: str = body["job"]["id"]
    return job_id


def test_a_stream_and_a_long_poll_get_jobs_enqueued_through_either_server(launch: Launcher, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "OJS_KEY_PREFIX": f"wake{time.time_ns()}"}
    servers = [launch(**env) for _ in range(2)]
    for server in servers:
        server.wait_ready()
    channel = grpc.insecure_channel(f"127.0.0.1:{servers[1].grpc_port}")
    stub = service_pb2_grpc.OJSServiceStub(channel)
    try:
        stream = stub.StreamJobs(
            worker_pb2.StreamJobsRequest(queues=[QUEUE], worker_id="streamer", max_concurrent=1),
            timeout=60,
        )
        # The stream on server 1 waits; jobs come through server 0, then through server 1 itself.
        for i, via in enumerate([servers[0], servers[1], servers[0]]):
            time.sleep(0.3)
            started = time.monotonic()
            job_id = enqueue(via, i)
            delivered = next(stream)
            assert delivered.id == job_id
            assert time.monotonic() - started < DELIVERY_S
            stub.Ack(worker_pb2.AckRequest(job_id=job_id, worker_id="streamer"), timeout=10)
        stream.cancel()

        # A long poll on server 0, woken by an enqueue through server 1.
        with grpc.insecure_channel(f"127.0.0.1:{servers[0].grpc_port}") as other:
            poll = service_pb2_grpc.OJSServiceStub(other).Fetch.future(
                worker_pb2.FetchRequest(queues=[QUEUE], worker_id="poller", wait_ms=30_000), timeout=60
            )
            time.sleep(0.3)
            started = time.monotonic()
            job_id = enqueue(servers[1], 9)
            fetched = poll.result(timeout=30)
            assert [job.id for job in fetched.jobs] == [job_id]
            assert time.monotonic() - started < DELIVERY_S
    finally:
        channel.close()
    for server in servers:
        assert server.terminate() == 0, server.output
