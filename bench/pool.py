"""Load processes: separate Python processes that run `bench.load` functions on command.

Each process has its own event loop, gRPC channel and HTTP session, kept for the
pool's life (so connections are warm after the first run), and talks to the
benchmark over a pipe: it answers "ready" once connected, then runs each
`(LoadSpec, share)` it receives and sends back a `LoadResult`. The benchmark
takes its cost snapshots around `LoadPool.run`, while the load processes and
the server do the work. Processes start with `spawn`: forking a process that
already uses gRPC is not supported by grpcio.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import traceback
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.floor import FLOOR_LOADS
from bench.load import (
    LOADS,
    Clients,
    LoadFunction,
    LoadKind,
    LoadResult,
    LoadSpec,
    SharedCount,
    describe_error,
    run_load,
)
from bench.load_batched import BATCHED_LOADS
from bench.server import RunningServer

_START_TIMEOUT_S = 60.0
_ALL_LOADS: dict[LoadKind, LoadFunction] = {**LOADS, **BATCHED_LOADS, **FLOOR_LOADS}
_STOP_TIMEOUT_S = 10.0


class LoadError(RuntimeError):
    """A load process failed a run: the message in one line, the traceback in `details`."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _serve(conn: Connection, grpc_target: str, http_url: str, shared: Any) -> None:
    """Entry point of a load process."""
    asyncio.run(_serve_async(conn, grpc_target, http_url, SharedCount(shared)))


async def _serve_async(conn: Connection, grpc_target: str, http_url: str, shared: SharedCount) -> None:
    clients = Clients(grpc_target, http_url)
    try:
        await clients.channel.channel_ready()
        conn.send(("ready", None))
        while True:
            command: tuple[LoadSpec, int] | None = await asyncio.to_thread(conn.recv)
            if command is None:
                return
            spec, share = command
            try:
                conn.send(("ok", await run_load(clients, spec, share, shared, _ALL_LOADS)))
            except Exception as exc:
                conn.send(("error", (describe_error(exc), traceback.format_exc())))
    finally:
        await clients.close()


def _shares(jobs: int, parts: int) -> list[int]:
    """`jobs` split into `parts` near-equal shares."""
    base, extra = divmod(jobs, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _combine(results: list[LoadResult]) -> LoadResult:
    """One result for a run done by several processes at once: the jobs of all, the time of the slowest."""
    return LoadResult(
        jobs=sum(r.jobs for r in results),
        elapsed_s=max(r.elapsed_s for r in results),
        client_cpu_s=sum(r.client_cpu_s for r in results),
        settle_errors=sum(r.settle_errors for r in results),
        first_error=next((r.first_error for r in results if r.first_error), ""),
        skipped=next((r.skipped for r in results if r.skipped), ""),
        latencies_ms=[ms for r in results for ms in r.latencies_ms],
    )


class LoadPool:
    def __init__(self, server: RunningServer, processes: int) -> None:
        self._server = server
        self._size = processes
        self._context = multiprocessing.get_context("spawn")
        self._shared = self._context.Value("q", 0)
        self._processes: list[tuple[BaseProcess, Connection]] = []

    @property
    def size(self) -> int:
        return self._size

    async def start(self) -> None:
        for _ in range(self._size):
            mine, theirs = self._context.Pipe()
            process = self._context.Process(
                target=_serve,
                args=(theirs, self._server.grpc_target, self._server.http_url, self._shared),
                name="ojs-bench-load",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._processes.append((process, mine))
        for _, conn in self._processes:
            await self._receive(conn, _START_TIMEOUT_S)

    async def run(self, spec: LoadSpec, *, processes: int | None = None) -> LoadResult:
        """Run `spec` on `processes` of the pool at once (default: all), its jobs shared among them."""
        count = min(processes or self._size, self._size)
        SharedCount(self._shared).reset()
        chosen = self._processes[:count]
        for (_, conn), share in zip(chosen, _shares(spec.jobs, count), strict=True):
            conn.send((spec, share))
        # A stuck load process must not hang the suite: its own timeout plus a margin.
        # Every answer is read, even after a failure, so none is left in a pipe for the next run.
        answers = await asyncio.gather(
            *(self._receive(conn, spec.timeout_s + 30) for _, conn in chosen), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return _combine([answer for answer in answers if isinstance(answer, LoadResult)])

    async def _receive(self, conn: Connection, timeout_s: float) -> Any:
        if not await asyncio.to_thread(conn.poll, timeout_s):
            raise LoadError(f"no answer from a load process within {timeout_s:.0f} s")
        status, payload = conn.recv()
        if status == "error":
            message, details = payload
            raise LoadError(f"load process failed: {message}", details)
        return payload

    async def close(self) -> None:
        for _, conn in self._processes:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process, conn in self._processes:
            await asyncio.to_thread(process.join, _STOP_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
                await asyncio.to_thread(process.join, _STOP_TIMEOUT_S)
            conn.close()
        self._processes.clear()


@contextlib.asynccontextmanager
async def load_pool(server: RunningServer, processes: int) -> AsyncIterator[LoadPool]:
    pool = LoadPool(server, processes)
    try:
        await pool.start()
        yield pool
    finally:
        await pool.close()
