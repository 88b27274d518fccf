"""Everything a measurement needs: the server, the load processes, a Redis client and a set-up stub."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from ojs.v1 import service_pb2_grpc
from redis.asyncio import Redis

from bench.load import LoadResult, LoadSpec, enqueue_backlog
from bench.metrics import Cost, cost_snapshot
from bench.pool import LoadPool, load_pool
from bench.server import RunningServer, flush, ojs_server

# Quiet time after set-up (flush, back-log) before a measurement starts: lets Redis write its AOF.
SETTLE_S = 0.2
# Longest wait for a background AOF rewrite (of a million-job data set: seconds) before measuring anyway.
_PERSISTENCE_WAIT_S = 300.0


@dataclass
class BenchContext:
    server: RunningServer
    pool: LoadPool
    redis: Redis
    # The benchmark process's own stub, for untimed set-up (back-logs, probes).
    stub: Any

    async def reset(self, backlog: int = 0, *, queue: str = "q") -> None:
        """Empty Redis, then (untimed) put `backlog` jobs in `queue`, then `settle()`."""
        await flush(self.redis)
        if backlog:
            await enqueue_backlog(self.stub, backlog, queue=queue)
        await self.settle()

    async def settle(self) -> None:
        """Let the set-up's after-effects pass before a measurement: an AOF rewrite or RDB save it set off, and
        the disk writes it left in the page cache.

        A rewrite started by a run's own writes stays in that run's figures (Redis child CPU).
        """
        deadline = asyncio.get_running_loop().time() + _PERSISTENCE_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            info = await self.redis.info("persistence")
            busy = ("aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress")
            if not any(int(info.get(key, 0)) for key in busy):
                break
            await asyncio.sleep(0.1)
        # Write out the page cache the set-up dirtied (a million-job fill leaves hundreds of MB of AOF): the kernel
        # would otherwise flush it during the measurement, and Redis's AOF fsync would wait behind it.
        await asyncio.to_thread(os.sync)
        await asyncio.sleep(SETTLE_S)

    async def measure(
        self, spec: LoadSpec, *, processes: int | None = None, pid: int | None = None
    ) -> tuple[LoadResult, Cost]:
        """Run `spec` on the load processes; what it did, and what it cost Redis and the server meanwhile.

        `pid` names another server process to take the CPU of (the floor server).
        """
        measured = self.server.pid if pid is None else pid
        before = await cost_snapshot(self.redis, measured)
        result = await self.pool.run(spec, processes=processes)
        after = await cost_snapshot(self.redis, measured)
        return result, Cost.between(before, after)


@contextlib.asynccontextmanager
async def bench_context(
    load_processes: int, *, settings: Mapping[str, str] | None = None
) -> AsyncIterator[BenchContext]:
    """`settings`: OJS_* variables for the server (see `ojs_server`)."""
    async with (
        ojs_server(settings) as server,
        load_pool(server, load_processes) as pool,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        redis = Redis.from_url(server.redis_url)
        try:
            yield BenchContext(server=server, pool=pool, redis=redis, stub=service_pb2_grpc.OJSServiceStub(channel))
        finally:
            await redis.aclose()
