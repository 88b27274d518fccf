"""Chaos runs: a back-log of jobs worked off by gRPC workers while a process is killed underneath.

Workers fetch batches and settle them with AckBatch, retrying every failure after a short pause, and record each
delivery. A job whose ack was lost with a killed process comes back after its (short) lease and is delivered
again: a duplicate. The outcome says how many distinct jobs were delivered and completed, how many deliveries
were duplicates, and the most jobs the workers held at once (what can be in flight when the fault hits).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from ojs.v1 import job_pb2, queue_pb2, service_pb2_grpc, worker_pb2

QUEUE = "chaos"
WORKERS = 8
BATCH = 50
# Short leases, so jobs held by a killed process come back quickly.
LEASE_ENV = {"OJS_DEFAULT_VISIBILITY_TIMEOUT_MS": "2000", "OJS_REAPER_INTERVAL_MS": "200"}
# Reconnect quickly after the server comes back.
# A connection of its own per worker, so the workers are spread over the processes of `--workers N`.
_CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


@dataclasses.dataclass
class Outcome:
    enqueued: int
    delivered: int
    distinct: int
    acked: int
    failed_calls: int
    most_held: int
    completed: int = 0
    left_active: int = 0
    left_available: int = 0

    @property
    def duplicates(self) -> int:
        return self.delivered - self.distinct

    @property
    def lost(self) -> int:
        return self.enqueued - self.completed


def _stub(target: str) -> tuple[grpc.aio.Channel, Any]:
    channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
    return channel, service_pb2_grpc.OJSServiceStub(channel)


async def enqueue(target: str, jobs: int) -> set[str]:
    """Put `jobs` jobs in the queue; their ids."""
    channel, stub = _stub(target)
    ids: set[str] = set()
    job = b'{"type":"chaos.job","args":[1],"options":{"queue":"%s"}}' % QUEUE.encode()
    try:
        for start in range(0, jobs, 1000):
            payload = b'{"jobs":[' + b",".join([job] * min(1000, jobs - start)) + b"]}"
            request = job_pb2.EnqueueBatchRequest(batch_json=payload, json_only=True, ids_only=True)
            reply = await stub.EnqueueBatch(request, timeout=60)
            ids.update(job.id for job in reply.jobs)
    finally:
        await channel.close()
    return ids


class Workers:
    def __init__(self, target: Callable[[], str]) -> None:
        self._target = target
        self.deliveries: Counter[str] = Counter()
        self.acked: set[str] = set()
        self.failed_calls = 0
        self.held = 0
        self.most_held = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for index in range(WORKERS):
                group.create_task(self._work(index))

    async def _work(self, index: int) -> None:
        worker_id = f"chaos-{os.getpid()}-{index}"
        target = self._target()
        channel, stub = _stub(target)
        fetch = worker_pb2.FetchRequest(queues=[QUEUE], count=BATCH, worker_id=worker_id, json_only=True)
        try:
            while not self.stop.is_set():
                if self._target() != target:
                    await channel.close()
                    target = self._target()
                    channel, stub = _stub(target)
                try:
                    reply = await stub.Fetch(fetch, timeout=10)
                except grpc.aio.AioRpcError:
                    self.failed_calls += 1
                    await asyncio.sleep(0.1)
                    continue
                if not reply.jobs:
                    await asyncio.sleep(0.05)
                    continue
                await self._settle(stub, worker_id, list(reply.jobs))
        finally:
            await channel.close()

    async def _settle(self, stub: Any, worker_id: str, jobs: list[Any]) -> None:
        self.held += len(jobs)
        self.most_held = max(self.most_held, self.held)
        try:
            for job in jobs:
                self.deliveries[job.id] += 1
            entries = [worker_pb2.SettleEntry(job_id=job.id, lease_token=job.lease_token or None) for job in jobs]
            request = worker_pb2.AckBatchRequest(worker_id=worker_id, entries=entries)
            try:
                reply = await stub.AckBatch(request, timeout=10)
            except grpc.aio.AioRpcError:
                # The jobs stay leased; they come back when their lease runs out.
                self.failed_calls += 1
                return
            self.acked.update(result.job_id for result in reply.results if result.ok)
        finally:
            self.held -= len(jobs)


async def queue_stats(target: str) -> Any:
    channel, stub = _stub(target)
    try:
        reply = await stub.QueueStats(queue_pb2.QueueStatsRequest(queue=QUEUE), timeout=10)
        return reply.stats
    finally:
        await channel.close()


async def work_off(
    target: Callable[[], str],
    ids: set[str],
    fault: Callable[[], Any],
    *,
    fault_after: int,
    timeout_s: float = 120.0,
) -> Outcome:
    """Work the back-log off, calling `fault()` (may be a coroutine) once `fault_after` jobs were acked."""
    workers = Workers(target)
    running = asyncio.create_task(workers.run())
    deadline = time.monotonic() + timeout_s
    faulted = False
    try:
        while time.monotonic() < deadline:
            if running.done():
                running.result()
            if not faulted and len(workers.acked) >= fault_after:
                faulted = True
                result = fault()
                if asyncio.iscoroutine(result):
                    await result
            # An ack may have been recorded by a process killed before it replied: the server's counts decide.
            if faulted and len(ids.intersection(workers.deliveries)) == len(ids):
                stats = await _settled_stats(target())
                if stats is not None and stats.completed >= len(ids) and stats.active == 0 and stats.available == 0:
                    break
            await asyncio.sleep(0.1)
    finally:
        workers.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 30)
    stats = await queue_stats(target())
    delivered_ids = set(workers.deliveries) & ids
    return Outcome(
        enqueued=len(ids),
        delivered=sum(count for job_id, count in workers.deliveries.items() if job_id in ids),
        distinct=len(delivered_ids),
        acked=len(workers.acked & ids),
        failed_calls=workers.failed_calls,
        most_held=workers.most_held,
        completed=int(stats.completed),
        left_active=int(stats.active),
        left_available=int(stats.available + stats.scheduled + stats.retryable),
    )


async def _settled_stats(target: str) -> Any:
    try:
        return await queue_stats(target)
    except grpc.aio.AioRpcError:
        return None


def redis_pid(data_dir: Path) -> int:
    return int((data_dir / "redis.pid").read_text().strip())


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def children_of(pid: int, marker: str) -> list[int]:
    """Pids of the live child processes of `pid` whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z" and marker in cmdline:
            found.append(int(entry.name))
    return found


def kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    os.kill(pid, sig)
