"""Pickup latency: enqueue → delivery to an idle worker, for StreamJobs and for long-poll Fetch.

One job is enqueued at a time and the clock runs from just before the Enqueue
call to the moment the worker holds the job, so each figure includes the
enqueue round trip. Also measured: the Redis commands that idle workers cause
(`INFO commandstats` deltas while one stream and one long poll wait on an empty queue).
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import grpc
from ojs.v1 import job_pb2, service_pb2_grpc, worker_pb2
from redis.asyncio import Redis

from bench.metrics import figure, percentile
from bench.server import RunningServer, ojs_server

# An idle worker gets a job within milliseconds; this long means it never will.
_DELIVERY_TIMEOUT_S = 30.0


def _job(index: int, queue: str) -> bytes:
    return b'{"type":"bench.noop","args":[%d],"options":{"queue":"%s"}}' % (index, queue.encode())


async def _stream_latencies(stub: Any, jobs: int, queue: str) -> list[float]:
    call = stub.StreamJobs(worker_pb2.StreamJobsRequest(queues=[queue], worker_id="bench", max_concurrent=1))
    latencies: list[float] = []
    try:
        await asyncio.sleep(0.2)
        for i in range(jobs):
            started = time.perf_counter()
            await stub.Enqueue(job_pb2.EnqueueRequest(job_json=_job(i, queue)))
            try:
                job = await asyncio.wait_for(call.read(), _DELIVERY_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(
                    f"StreamJobs did not deliver job {i} of queue {queue} within {_DELIVERY_TIMEOUT_S:.0f} s"
                ) from None
            latencies.append((time.perf_counter() - started) * 1000)
            await stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="bench"))
    finally:
        call.cancel()
    return latencies


async def _long_poll_latencies(stub: Any, jobs: int, queue: str) -> list[float]:
    latencies: list[float] = []
    for i in range(jobs):
        waiting = asyncio.ensure_future(
            stub.Fetch(worker_pb2.FetchRequest(queues=[queue], worker_id="bench", wait_ms=5000))
        )
        # Let the poll reach the server and start waiting before the job exists.
        await asyncio.sleep(0.002)
        started = time.perf_counter()
        await stub.Enqueue(job_pb2.EnqueueRequest(job_json=_job(i, queue)))
        response = await waiting
        if not response.jobs:
            raise RuntimeError(f"a long-poll Fetch on queue {queue} returned no job after 5 s")
        latencies.append((time.perf_counter() - started) * 1000)
        for job in response.jobs:
            await stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="bench"))
    return latencies


async def _command_rates(redis: Redis, seconds: float) -> dict[str, float]:
    before = await redis.info("commandstats")
    await asyncio.sleep(seconds)
    after = await redis.info("commandstats")
    rates = {
        name: (stats["calls"] - before.get(name, {}).get("calls", 0)) / seconds
        for name, stats in after.items()
        if stats["calls"] != before.get(name, {}).get("calls", 0)
    }
    # The measuring connection's own INFO calls are not the server's doing.
    rates.pop("cmdstat_info", None)
    return rates


async def _idle_commands(server: RunningServer, stub: Any, seconds: float) -> dict[str, dict[str, float]]:
    """Redis commands per second with no worker, then with an idle stream and an idle long poll."""
    redis = Redis.from_url(server.redis_url)
    baseline = await _command_rates(redis, seconds)
    stream = stub.StreamJobs(worker_pb2.StreamJobsRequest(queues=["bench-idle"], worker_id="idle", max_concurrent=4))
    poll = asyncio.ensure_future(
        stub.Fetch(worker_pb2.FetchRequest(queues=["bench-idle"], worker_id="idle", wait_ms=int(seconds * 1000) + 5000))
    )
    await asyncio.sleep(1.0)
    with_workers = await _command_rates(redis, seconds)
    stream.cancel()
    poll.cancel()
    await redis.aclose()
    names = set(baseline) | set(with_workers)
    extra = {name: round(with_workers.get(name, 0) - baseline.get(name, 0), 2) for name in names}
    return {
        "server_background_loops": baseline,
        "added_by_idle_workers": {name: rate for name, rate in extra.items() if abs(rate) >= 0.05},
    }


async def measure_pickup(server: RunningServer, *, jobs: int, idle_seconds: float, runs: int = 1) -> dict[str, Any]:
    """Latency percentiles of both modes (median of the runs, and every run's value), then idle commands."""
    results: dict[str, Any] = {"jobs": jobs}
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.OJSServiceStub(channel)
        modes = (
            ("stream_jobs", _stream_latencies, "bench-stream"),
            ("long_poll_fetch", _long_poll_latencies, "bench-poll"),
        )
        for name, measure, queue in modes:
            # A queue of its own per run: a worker of an earlier run the server has not yet let go of
            # must not take this run's jobs.
            runs_samples = [await measure(stub, jobs, f"{queue}-{run}") for run in range(runs)]
            results[name] = {
                "p50_ms": figure([statistics.median(samples) for samples in runs_samples]),
                "p99_ms": figure([percentile(samples, 0.99) for samples in runs_samples]),
                "max_ms": figure([max(samples) for samples in runs_samples]),
            }
        results["idle_redis_commands_per_s"] = await _idle_commands(server, stub, idle_seconds)
    return results


async def run_pickup(*, jobs: int, idle_seconds: float, json_path: str | None) -> int:
    async with ojs_server() as server:
        results: dict[str, Any] = {"jobs": jobs, "machine": platform.platform(), "python": platform.python_version()}
        results.update(await measure_pickup(server, jobs=jobs, idle_seconds=idle_seconds))
    print(f"{'mode':<18}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name in ("stream_jobs", "long_poll_fetch"):
        row = results[name]
        p50, p99, top = (row[key]["median"] for key in ("p50_ms", "p99_ms", "max_ms"))
        print(f"{name:<18}{p50:>10.2f}{p99:>10.2f}{top:>10.2f}")
    idle = results["idle_redis_commands_per_s"]
    print("Redis commands/s of the server's own loops:", json.dumps(idle["server_background_loops"]))
    print("Redis commands/s added by idle workers:", json.dumps(idle["added_by_idle_workers"]) or "none")
    if json_path:
        await asyncio.to_thread(Path(json_path).write_text, json.dumps(results, indent=2))
    return 0
