"""Floors: what the bare stack costs, measured in the same run and with the same load processes as the scenarios.

- HTTP: a bare aiohttp handler that parses the JSON body and renders a reply (`bench.floor_server`);
- gRPC: a bare `grpc.aio` unary echo, and a bare bidi stream with one message each way per call;
- Redis: EVALSHA of a trivial script (`return 1`), one call at a time per lane, and in pipelines of 100.

Each floor reports calls/s, the floor server's CPU per call (Redis's CPU for the Redis floors) and, for
the sequential floors, the latency of one call. Every scenario is then also reported as a ratio to its floor
(see `FLOOR_OF` and `bench.report`). The job each call carries is the scenarios' job JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
from redis.asyncio import Redis

from bench.floor_server import CHAT, ECHO
from bench.load import Budget, Clients, LoadFunction, LoadKind, LoadSpec, SharedCount, Tally, in_parallel, job_json
from bench.metrics import figure, percentile
from bench.server import REPO, free_port, stop_process

# Calls before the clock starts: connections opened, scripts loaded, caches warm.
_WARM_UP = 200
_TRIVIAL_SCRIPT = "return 1"
_MEDIA_TYPE = "application/openjobspec+json"


def _identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class Floor:
    name: str
    title: str
    kind: LoadKind
    # What it calls: the floor server over "http" or "grpc", or the server's "redis".
    via: str
    calls: int
    quick_calls: int
    concurrency: int = 50
    batch: int = 1
    # One call at a time (a latency figure): runs on a single load process.
    sequential: bool = False


FLOORS: tuple[Floor, ...] = (
    Floor("http", "bare aiohttp POST (parse body, render reply), 50 in flight", "floor_http", "http", 10_000, 1_000),
    Floor(
        "http_seq", "bare aiohttp POST, one at a time", "floor_http_seq", "http", 2_000, 200, 1, sequential=True
    ),
    Floor("grpc_unary", "bare grpc.aio unary echo, 50 in flight", "floor_grpc_unary", "grpc", 10_000, 1_000),
    Floor(
        "grpc_seq", "bare grpc.aio unary echo, one at a time", "floor_grpc_seq", "grpc", 2_000, 200, 1, sequential=True
    ),
    Floor(
        "grpc_stream", "bare grpc.aio bidi stream, one message each way, 50 streams", "floor_grpc_stream", "grpc",
        20_000, 2_000,
    ),
    Floor("redis", "Redis EVALSHA of `return 1`, 50 in flight", "floor_redis", "redis", 50_000, 5_000),
    Floor(
        "redis_pipelined", "Redis EVALSHA of `return 1`, pipelines of 100, 4 in flight", "floor_redis_pipelined",
        "redis", 200_000, 20_000, 4, 100,
    ),
)  # fmt: skip

# The floor each scenario is compared with; "cycle" scenarios compare with three sequential bare calls.
FLOOR_OF: Mapping[str, str] = {
    "enqueue_grpc": "grpc_unary",
    "enqueue_batch100_grpc": "grpc_unary",
    "enqueue_batch1000_grpc": "grpc_unary",
    "enqueue_http": "http",
    "enqueue_batch100_http": "http",
    "fetch1_ack_grpc": "grpc_unary",
    "fetch10_ack_grpc": "grpc_unary",
    "fetch100_ack_grpc": "grpc_unary",
    "stream_ack_grpc": "grpc_stream",
    "stream_batch_ackbatch_grpc": "grpc_stream",
    "fetch100_ackbatch_grpc": "grpc_unary",
    "fetch10_ack_http": "http",
    "fetch100_ackbatch_http": "http",
    "cycle_grpc": "grpc_seq",
    "cycle_http": "http_seq",
    "cycle_batch100_grpc": "grpc_seq",
}
# Bare calls a scenario's floor stands for: a sequential cycle is three calls (enqueue, fetch, ack).
CALLS_PER_FLOOR: Mapping[str, int] = {"cycle_grpc": 3, "cycle_http": 3, "cycle_batch100_grpc": 3}


# ---- load functions (run in the load processes) ----


async def _session(c: Clients, url: str) -> aiohttp.ClientSession:
    key = f"http:{url}"
    if key not in c.extra:
        opened = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), headers={"Content-Type": _MEDIA_TYPE})
        c.keep(key, opened, opened.close)
    session: aiohttp.ClientSession = c.extra[key]
    return session


def _channel(c: Clients, target: str) -> grpc.aio.Channel:
    key = f"grpc:{target}"
    if key not in c.extra:
        opened = grpc.aio.insecure_channel(target)
        c.keep(key, opened, opened.close)
    channel: grpc.aio.Channel = c.extra[key]
    return channel


async def _redis(c: Clients, url: str) -> tuple[Redis, str]:
    key = f"redis:{url}"
    if key not in c.extra:
        client = Redis.from_url(url)
        sha = await client.script_load(_TRIVIAL_SCRIPT)
        c.keep(key, (client, sha), client.aclose)
    pair: tuple[Redis, str] = c.extra[key]
    return pair


async def _lanes(spec: LoadSpec, share: int, tally: Tally, call: Any, *, record_latency: bool = False) -> None:
    """Warm up, then run `spec.concurrency` lanes of `call()` until `share` calls (of `spec.batch` each) are done."""
    for _ in range(min(_WARM_UP, max(1, share // 10))):
        await call()
    tally.restart()
    budget = Budget(share)

    async def lane(_: int) -> None:
        while size := budget.take(spec.batch):
            started = time.perf_counter()
            await call()
            if record_latency:
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            tally.settled(size)

    await in_parallel(spec.concurrency, lane)


async def floor_http(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    session = await _session(c, spec.target)
    body = job_json(spec.queue)

    async def call() -> None:
        async with session.post(spec.target + "/echo", data=body) as response:
            if response.status != 201:
                raise RuntimeError(f"floor POST /echo answered {response.status}")
            await response.read()

    await _lanes(spec, share, tally, call, record_latency=spec.concurrency == 1)


async def floor_grpc_unary(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    echo = _channel(c, spec.target).unary_unary(ECHO, request_serializer=_identity, response_deserializer=_identity)
    body = job_json(spec.queue)

    async def call() -> None:
        await echo(body)

    await _lanes(spec, share, tally, call, record_latency=spec.concurrency == 1)


async def floor_grpc_stream(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    chat = _channel(c, spec.target).stream_stream(CHAT, request_serializer=_identity, response_deserializer=_identity)
    body = job_json(spec.queue)
    calls = [chat() for _ in range(spec.concurrency)]
    free = list(calls)

    async def call() -> None:
        stream = free.pop()
        try:
            await stream.write(body)
            await stream.read()
        finally:
            free.append(stream)

    try:
        await _lanes(spec, share, tally, call)
    finally:
        for stream in calls:
            stream.cancel()


async def floor_redis(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    client, sha = await _redis(c, spec.target)

    async def call() -> None:
        if spec.batch == 1:
            await client.evalsha(sha, 0)
            return
        pipe = client.pipeline(transaction=False)
        for _ in range(spec.batch):
            pipe.evalsha(sha, 0)
        await pipe.execute()

    await _lanes(spec, share, tally, call)


FLOOR_LOADS: Mapping[LoadKind, LoadFunction] = {
    "floor_http": floor_http,
    "floor_http_seq": floor_http,
    "floor_grpc_unary": floor_grpc_unary,
    "floor_grpc_seq": floor_grpc_unary,
    "floor_grpc_stream": floor_grpc_stream,
    "floor_redis": floor_redis,
    "floor_redis_pipelined": floor_redis,
}


# ---- the floor server and the measurement (run in the benchmark process) ----


@dataclass(frozen=True)
class FloorServer:
    http_url: str
    grpc_target: str
    pid: int


@contextlib.asynccontextmanager
async def floor_server() -> AsyncIterator[FloorServer]:
    http_port, grpc_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.floor_server",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            line = await process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the floor server did not start (exit {process.returncode})")
        yield FloorServer(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process.pid)
    finally:
        await stop_process(process)


def _spec(floor: Floor, *, quick: bool, target: str) -> LoadSpec:
    calls = floor.quick_calls if quick else floor.calls
    return LoadSpec(
        kind=floor.kind,
        jobs=calls,
        concurrency=floor.concurrency,
        batch=floor.batch,
        target=target,
        timeout_s=max(120.0, calls / 200),
    )


async def measure_floors(ctx: Any, *, runs: int, quick: bool, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every floor, `runs` times each: their medians and every run's value."""
    out: dict[str, Any] = {}
    async with floor_server() as server:
        targets = {"http": server.http_url, "grpc": server.grpc_target, "redis": ctx.server.redis_url}
        for floor in FLOORS:
            if only and floor.name not in only:
                continue
            spec = _spec(floor, quick=quick, target=targets[floor.via])
            print(f"floor: {floor.name} ({floor.title}, {spec.jobs:,} calls)", file=sys.stderr, flush=True)
            rates: list[float] = []
            server_cpu: list[float | None] = []
            redis_cpu: list[float] = []
            client_cpu: list[float] = []
            latency: list[float] = []
            for _ in range(runs):
                await ctx.settle()
                pid = ctx.server.pid if floor.via == "redis" else server.pid
                result, cost = await ctx.measure(spec, processes=1 if floor.sequential else None, pid=pid)
                per_call = cost.per_job(result.jobs)
                if result.latencies_ms:
                    rates.append(1000 / statistics.mean(result.latencies_ms))
                    latency.append(percentile(result.latencies_ms, 0.5))
                else:
                    rates.append(result.jobs / result.elapsed_s if result.elapsed_s > 0 else 0.0)
                server_cpu.append(per_call.redis_cpu_us if floor.via == "redis" else per_call.server_cpu_us)
                redis_cpu.append(per_call.redis_cpu_us)
                client_cpu.append(result.client_cpu_s * 1e6 / max(result.jobs, 1))
            out[floor.name] = {
                "title": floor.title,
                "via": floor.via,
                "calls_per_run": spec.jobs,
                "calls_per_s": figure(rates, 1),
                # The floor server's CPU per call; for the Redis floors, redis-server's.
                "server_cpu_us_per_call": figure(server_cpu, 2),
                "redis_cpu_us_per_call": figure(redis_cpu, 2),
                "client_cpu_us_per_call": figure(client_cpu, 2),
                **({"latency_p50_ms": figure(latency)} if latency else {}),
            }
    return out
