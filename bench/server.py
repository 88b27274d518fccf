"""Start a real `ojs-server` process on free ports, for measuring.

By default the server starts its own private Redis (embedded, AOF on, in a
temporary data directory). With `REDIS_URL` set in the environment the server
uses that Redis instead; `flush()` then empties that database between
scenarios, so point it at a scratch database.

`BENCH_SERVER_TREE` names another checkout whose server is measured instead
(with this checkout's load), for before/after figures in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

REPO = Path(__file__).resolve().parents[1]


def server_tree() -> Path:
    """The checkout whose server is started: this one, or BENCH_SERVER_TREE."""
    return Path(os.environ.get("BENCH_SERVER_TREE") or REPO).resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    grpc_target: str
    http_url: str
    redis_url: str
    # The `ojs-server` process itself (its embedded redis-server is a separate child process).
    pid: int
    # True when REDIS_URL named a Redis the server does not own.
    external_redis: bool


@contextlib.asynccontextmanager
async def ojs_server(settings: Mapping[str, str] | None = None) -> AsyncIterator[RunningServer]:
    """The server runs as a separate process, so the load generator's CPU is not its CPU.

    `settings`: OJS_* variables for the server (those of the calling shell are not passed on).
    """
    with tempfile.TemporaryDirectory(prefix="ojs-bench-") as data_dir:
        grpc_port, http_port = free_port(), free_port()
        # OJS_* settings of the calling shell would skew the figures; REDIS_URL passes through, and so do the
        # settings BENCH_SERVER_ENV lists ("OJS_METRICS=false,..."), for figures with a setting on and off.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OJS_")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(server_tree()), str(server_tree() / "gen")]),
            OJS_DATA_DIR=data_dir,
            OJS_PORT=str(http_port),
            OJS_GRPC_PORT=str(grpc_port),
            OJS_LOG_LEVEL="WARNING",
        )
        chosen = os.environ.get("BENCH_SERVER_ENV", "")
        env.update(dict(item.split("=", 1) for item in chosen.split(",") if "=" in item))
        env.update(settings or {})
        external = env.get("REDIS_URL", "").strip()
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "server", env=env, cwd=data_dir)
        try:
            target = f"127.0.0.1:{grpc_port}"
            await _wait_serving(target, process)
            yield RunningServer(
                grpc_target=target,
                http_url=f"http://127.0.0.1:{http_port}",
                redis_url=external or f"unix://{data_dir}/redis.sock",
                pid=process.pid,
                external_redis=bool(external),
            )
        finally:
            await stop_process(process)


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; returns once it is gone."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()


async def flush(redis: Redis) -> None:
    """Empty the server's Redis database (the server is built to survive that underneath it)."""
    # Synchronous FLUSHDB: the next scenario must not share the CPU with a background free.
    await redis.flushdb(asynchronous=False)


async def _wait_serving(target: str, process: asyncio.subprocess.Process) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError(f"ojs-server exited with {process.returncode}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("ojs-server did not start within 60 s")
