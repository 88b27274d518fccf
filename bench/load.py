"""Load functions: what a load process does to the server, one `LoadSpec` at a time.

They run inside a load process (see `bench.pool`) with its own event loop, one
gRPC channel and one aiohttp session, so the server's CPU is its own. Each
function does its share of a spec's jobs and records in a `Tally` how many jobs
it settled (an enqueue answered, an ack recorded) and when the last one was;
elapsed time runs from the function's start to that last settlement, so the
throughput is not diluted by the time it takes to notice the end.

Failures of an individual ack are counted (`settle_errors`); any other failure
ends the run. An RPC the server answers UNIMPLEMENTED (AckBatch while it is
being written) raises `Unimplemented`, which the process reports as skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import grpc
import orjson
from ojs.v1 import job_pb2, service_pb2_grpc, worker_pb2

__all__ = [
    "LOADS",
    "Budget",
    "Clients",
    "LoadFunction",
    "LoadKind",
    "LoadResult",
    "LoadSpec",
    "SharedCount",
    "Tally",
    "Unimplemented",
    "ack_batch",
    "batch_json",
    "describe_error",
    "enqueue_backlog",
    "in_parallel",
    "job_json",
    "run_load",
]

MEDIA_TYPE = "application/openjobspec+json"

LoadKind = Literal[
    "enqueue_grpc",
    "enqueue_batch_grpc",
    "enqueue_http",
    "enqueue_batch_http",
    "fetch_ack_grpc",
    "fetch_ackbatch_grpc",
    "stream_ack_grpc",
    "fetch_ack_http",
    "cycle_grpc",
    "cycle_http",
    "cycle_batch_grpc",
    "stream_batch_ackbatch_grpc",
    "fetch_ackbatch_http",
    "floor_http",
    "floor_http_seq",
    "floor_grpc_unary",
    "floor_grpc_seq",
    "floor_grpc_stream",
    "floor_redis",
    "floor_redis_pipelined",
]


def job_json(queue: str) -> bytes:
    """The benchmark's job: a no-op with one small argument."""
    return b'{"type":"bench.noop","args":[1],"options":{"queue":"%s"}}' % queue.encode()


def batch_json(size: int, queue: str) -> bytes:
    return b'{"jobs":[' + b",".join([job_json(queue)] * size) + b"]}"


@dataclass(frozen=True)
class LoadSpec:
    kind: LoadKind
    # Jobs of the whole run, across every load process.
    jobs: int
    # Requests in flight (enqueue) or worker loops (fetch); 1 for the sequential cycles.
    concurrency: int = 1
    # Jobs per EnqueueBatch, Fetch count, or StreamJobs max_concurrent.
    batch: int = 1
    queue: str = "q"
    timeout_s: float = 300.0
    # Floors: the address of what they call (the floor server's HTTP URL or gRPC target, or a Redis URL).
    target: str = ""


@dataclass
class LoadResult:
    jobs: int = 0
    elapsed_s: float = 0.0
    # CPU of the load process during the run (all its threads).
    client_cpu_s: float = 0.0
    settle_errors: int = 0
    first_error: str = ""
    # Why the run did not happen (the server does not implement an RPC it needs).
    skipped: str = ""
    # Sequential cycles: the duration of each, in ms.
    latencies_ms: list[float] = field(default_factory=list)


class Unimplemented(Exception):
    """The server answered UNIMPLEMENTED."""


class SharedCount:
    """A job counter shared by the load processes of a pool (a `multiprocessing.Value('q')`)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def add(self, n: int) -> int:
        with self._value.get_lock():
            self._value.value += n
            total: int = self._value.value
            return total

    @property
    def value(self) -> int:
        current: int = self._value.value
        return current

    def reset(self) -> None:
        with self._value.get_lock():
            self._value.value = 0


class Clients:
    """The load process's connections to the server, kept from one run to the next."""

    def __init__(self, grpc_target: str, http_url: str) -> None:
        self.channel = grpc.aio.insecure_channel(grpc_target)
        self.stub: Any = service_pb2_grpc.OJSServiceStub(self.channel)
        self._http_url = http_url
        self._session: aiohttp.ClientSession | None = None
        self._name = f"bench-{os.getpid()}"
        # Connections to other servers (the floors), by address, kept warm like the ones above.
        self.extra: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[object]]] = []

    def keep(self, key: str, connection: Any, close: Callable[[], Awaitable[object]]) -> Any:
        """Keep `connection` under `key` for the process's life; `close` ends it."""
        self.extra[key] = connection
        self._closers.append(close)
        return connection

    def worker_id(self, index: int) -> str:
        return f"{self._name}-{index}"

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=512), headers={"Content-Type": MEDIA_TYPE}
            )
        async with self._session.post(self._http_url + path, data=body) as response:
            return response.status, await response.read()

    async def post_ok(self, path: str, body: bytes, status: int) -> Any:
        """POST and parse the JSON reply; any other status than `status` ends the run."""
        got, payload = await self.post(path, body)
        if got != status:
            raise RuntimeError(f"POST {path} answered {got}: {payload[:300]!r}")
        return orjson.loads(payload)

    async def close(self) -> None:
        for close in self._closers:
            await close()
        if self._session is not None:
            await self._session.close()
        await self.channel.close()


class Tally:
    """Jobs settled by one run and when the last one was."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last = self.started
        self.jobs = 0
        self.errors = 0
        self.first_error = ""
        self.latencies_ms: list[float] = []

    def restart(self) -> None:
        """Start the clock now (after a warm-up that is not measured)."""
        self.started = self.last = time.perf_counter()

    def settled(self, n: int = 1) -> None:
        self.jobs += n
        self.last = time.perf_counter()

    def failed(self, n: int, message: str) -> None:
        self.errors += n
        self.first_error = self.first_error or message


class Budget:
    """Jobs a process's worker loops have yet to claim."""

    def __init__(self, jobs: int) -> None:
        self.left = jobs

    def take(self, most: int) -> int:
        n = min(most, self.left)
        self.left -= n
        return n

    def give_back(self, n: int) -> None:
        self.left += n


async def in_parallel(count: int, loop: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Run `count` copies of `loop(index)`; the first failure cancels the others and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            for index in range(count):
                group.create_task(loop(index))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None


def describe_error(exc: BaseException) -> str:
    """A failure in one line: a gRPC status and its details, or the exception's type and message."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


def _lease(token: int) -> int | None:
    """A fetched job's lease token for its settlement; None (not sent) if the server gave none."""
    return token or None


async def _ack(c: Clients, job: job_pb2.Job, worker_id: str, tally: Tally) -> bool:
    request = worker_pb2.AckRequest(
        job_id=job.id, worker_id=worker_id, lease_token=_lease(job.lease_token), json_only=True
    )
    try:
        await c.stub.Ack(request)
    except grpc.aio.AioRpcError as exc:
        tally.failed(1, describe_error(exc))
        return False
    tally.settled()
    return True


async def ack_batch(c: Clients, jobs: Iterable[job_pb2.Job], worker_id: str, tally: Tally) -> int:
    """One AckBatch for `jobs`; the number settled."""
    entries = [worker_pb2.SettleEntry(job_id=job.id, lease_token=_lease(job.lease_token)) for job in jobs]
    try:
        reply = await c.stub.AckBatch(worker_pb2.AckBatchRequest(worker_id=worker_id, entries=entries))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise Unimplemented(f"AckBatch: {exc.details()}") from None
        raise
    tally.settled(reply.settled)
    if reply.settled < len(entries):
        refused = next((result for result in reply.results if not result.ok), None)
        reason = f"{refused.error_code}: {refused.error_message}" if refused else "no reason given"
        tally.failed(len(entries) - reply.settled, reason)
    settled: int = reply.settled
    return settled


# ---- enqueue ----


async def enqueue_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    request = job_pb2.EnqueueRequest(job_json=job_json(spec.queue), json_only=True)
    budget = Budget(share)

    async def sender(_: int) -> None:
        while budget.take(1):
            await c.stub.Enqueue(request)
            tally.settled()

    await in_parallel(spec.concurrency, sender)


async def enqueue_batch_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    requests: dict[int, job_pb2.EnqueueBatchRequest] = {}
    budget = Budget(share)

    async def sender(_: int) -> None:
        while size := budget.take(spec.batch):
            if size not in requests:
                payload = batch_json(size, spec.queue)
                requests[size] = job_pb2.EnqueueBatchRequest(batch_json=payload, json_only=True, ids_only=True)
            reply = await c.stub.EnqueueBatch(requests[size])
            if reply.errors:
                raise RuntimeError(f"EnqueueBatch refused {len(reply.errors)} of {size} jobs")
            tally.settled(size)

    await in_parallel(spec.concurrency, sender)


async def enqueue_http(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    body = job_json(spec.queue)
    budget = Budget(share)

    async def sender(_: int) -> None:
        while budget.take(1):
            await c.post_ok("/ojs/v1/jobs", body, 201)
            tally.settled()

    await in_parallel(spec.concurrency, sender)


async def enqueue_batch_http(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    bodies: dict[int, bytes] = {}
    budget = Budget(share)

    async def sender(_: int) -> None:
        while size := budget.take(spec.batch):
            body = bodies.setdefault(size, batch_json(size, spec.queue))
            reply = await c.post_ok("/ojs/v1/jobs/batch", body, 201)
            if reply.get("errors"):
                raise RuntimeError(f"POST /ojs/v1/jobs/batch refused {len(reply['errors'])} of {size} jobs")
            tally.settled(size)

    await in_parallel(spec.concurrency, sender)


# ---- processing a backlog ----


async def _fetch_and_settle(
    c: Clients,
    spec: LoadSpec,
    share: int,
    settle: Callable[[Iterable[job_pb2.Job], str], Awaitable[object]],
) -> None:
    """Worker loops: Fetch up to `batch` jobs, then settle them with `settle(jobs, worker_id)`."""
    budget = Budget(share)

    async def worker(index: int) -> None:
        worker_id = c.worker_id(index)
        while want := budget.take(spec.batch):
            request = worker_pb2.FetchRequest(queues=[spec.queue], count=want, worker_id=worker_id, json_only=True)
            reply = await c.stub.Fetch(request)
            budget.give_back(want - len(reply.jobs))
            if not reply.jobs:
                return
            await settle(reply.jobs, worker_id)

    await in_parallel(spec.concurrency, worker)


async def fetch_ack_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """Fetch up to `batch` jobs, then ack each with its own call, all at once."""

    async def ack_each(jobs: Iterable[job_pb2.Job], worker_id: str) -> None:
        await asyncio.gather(*(_ack(c, job, worker_id, tally) for job in jobs))

    await _fetch_and_settle(c, spec, share, ack_each)


async def fetch_ackbatch_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """Fetch up to `batch` jobs, then settle them all with one AckBatch."""
    await _fetch_and_settle(c, spec, share, lambda jobs, worker_id: ack_batch(c, jobs, worker_id, tally))


async def stream_ack_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """One StreamJobs call (`batch` = max_concurrent); each job is acked as it arrives, concurrently.

    Streams of several processes compete for the same jobs, so a process stops
    when the pool's shared count reaches the run's jobs rather than at a share.
    """
    worker_id = c.worker_id(0)
    request = worker_pb2.StreamJobsRequest(
        queues=[spec.queue], worker_id=worker_id, max_concurrent=spec.batch, json_only=True
    )

    async def ack(job: job_pb2.Job) -> int:
        return 1 if await _ack(c, job, worker_id, tally) else 0

    await consume_stream(c.stub.StreamJobs(request), ack, spec, shared, tally, "StreamJobs")


async def consume_stream(
    call: Any,
    settle: Callable[[Any], Awaitable[int]],
    spec: LoadSpec,
    shared: SharedCount,
    tally: Tally,
    name: str,
) -> None:
    """Settle each message of a job stream as it arrives, concurrently, until the pool's shared count of
    settled jobs reaches the run's jobs; `settle` returns how many jobs a message settled."""
    done = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()

    async def settle_one(message: Any) -> None:
        if shared.add(await settle(message)) >= spec.jobs:
            done.set()

    async def read() -> None:
        async for message in call:
            task = asyncio.create_task(settle_one(message))
            pending.add(task)
            task.add_done_callback(pending.discard)
        raise RuntimeError(f"{name} ended after {tally.jobs} jobs")

    async def until_done() -> None:
        # The shared count also moves with other processes' acks; look at it now and then.
        while shared.value < spec.jobs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.01)

    reader = asyncio.create_task(read())
    waiter = asyncio.create_task(until_done())
    try:
        finished, _ = await asyncio.wait((reader, waiter), return_when=asyncio.FIRST_COMPLETED)
        if reader in finished:
            reader.result()
    finally:
        call.cancel()
        for task in (reader, waiter, *pending):
            task.cancel()
        await asyncio.gather(reader, waiter, *pending, return_exceptions=True)


async def fetch_http(c: Clients, budget: Budget, want: int, queue: str, worker_id: str) -> list[Any]:
    """One POST /workers/fetch of up to `want` jobs; the part of `want` not delivered goes back to `budget`."""
    body = orjson.dumps({"queues": [queue], "count": want, "worker_id": worker_id})
    jobs: list[Any] = (await c.post_ok("/ojs/v1/workers/fetch", body, 200))["jobs"]
    budget.give_back(want - len(jobs))
    return jobs


async def fetch_ack_http(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """Worker loops over HTTP: POST /workers/fetch, then POST /workers/ack for each job, all at once."""
    budget = Budget(share)

    async def ack(job: dict[str, Any], worker_id: str) -> None:
        body = orjson.dumps({"job_id": job["id"], "worker_id": worker_id, "lease_token": job["lease_token"]})
        status, payload = await c.post("/ojs/v1/workers/ack", body)
        if status == 200:
            tally.settled()
        else:
            tally.failed(1, f"HTTP {status}: {payload[:200]!r}")

    async def worker(index: int) -> None:
        worker_id = c.worker_id(index)
        while want := budget.take(spec.batch):
            jobs = await fetch_http(c, budget, want, spec.queue, worker_id)
            if not jobs:
                return
            await asyncio.gather(*(ack(job, worker_id) for job in jobs))

    await in_parallel(spec.concurrency, worker)


# ---- full cycle, one client ----


async def cycle_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """Enqueue, Fetch, Ack: one job at a time, each call awaited before the next."""
    worker_id = c.worker_id(0)
    enqueue = job_pb2.EnqueueRequest(job_json=job_json(spec.queue), json_only=True)
    fetch = worker_pb2.FetchRequest(queues=[spec.queue], count=1, worker_id=worker_id, json_only=True)
    for _ in range(share):
        started = time.perf_counter()
        await c.stub.Enqueue(enqueue)
        reply = await c.stub.Fetch(fetch)
        if not reply.jobs:
            raise RuntimeError("Fetch right after Enqueue found no job")
        if await _ack(c, reply.jobs[0], worker_id, tally):
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)


async def cycle_http(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """POST /jobs, POST /workers/fetch, POST /workers/ack: one job at a time."""
    worker_id = c.worker_id(0)
    enqueue = job_json(spec.queue)
    fetch = orjson.dumps({"queues": [spec.queue], "count": 1, "worker_id": worker_id})
    for _ in range(share):
        started = time.perf_counter()
        await c.post_ok("/ojs/v1/jobs", enqueue, 201)
        jobs = (await c.post_ok("/ojs/v1/workers/fetch", fetch, 200))["jobs"]
        if not jobs:
            raise RuntimeError("POST /workers/fetch right after POST /jobs found no job")
        ack = {"job_id": jobs[0]["id"], "worker_id": worker_id, "lease_token": jobs[0]["lease_token"]}
        await c.post_ok("/ojs/v1/workers/ack", orjson.dumps(ack), 200)
        tally.settled()
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)


async def cycle_batch_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """EnqueueBatch of `batch`, Fetch of `batch`, one AckBatch: a round at a time."""
    worker_id = c.worker_id(0)
    enqueue = job_pb2.EnqueueBatchRequest(batch_json=batch_json(spec.batch, spec.queue), json_only=True, ids_only=True)
    fetch = worker_pb2.FetchRequest(queues=[spec.queue], count=spec.batch, worker_id=worker_id, json_only=True)
    for _ in range(max(1, share // spec.batch)):
        started = time.perf_counter()
        await c.stub.EnqueueBatch(enqueue)
        reply = await c.stub.Fetch(fetch)
        if not reply.jobs:
            raise RuntimeError("Fetch right after EnqueueBatch found no job")
        await ack_batch(c, reply.jobs, worker_id, tally)
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)


LoadFunction = Callable[[Clients, LoadSpec, int, Tally, SharedCount], Awaitable[None]]

LOADS: dict[LoadKind, LoadFunction] = {
    "enqueue_grpc": enqueue_grpc,
    "enqueue_batch_grpc": enqueue_batch_grpc,
    "enqueue_http": enqueue_http,
    "enqueue_batch_http": enqueue_batch_http,
    "fetch_ack_grpc": fetch_ack_grpc,
    "fetch_ackbatch_grpc": fetch_ackbatch_grpc,
    "stream_ack_grpc": stream_ack_grpc,
    "fetch_ack_http": fetch_ack_http,
    "cycle_grpc": cycle_grpc,
    "cycle_http": cycle_http,
    "cycle_batch_grpc": cycle_batch_grpc,
}


async def run_load(
    c: Clients, spec: LoadSpec, share: int, shared: SharedCount, loads: Mapping[LoadKind, LoadFunction] = LOADS
) -> LoadResult:
    """Run this process's `share` of `spec`; the result says what was done and how long it took."""
    cpu_before = time.process_time()
    tally = Tally()
    skipped = ""
    try:
        async with asyncio.timeout(spec.timeout_s):
            await loads[spec.kind](c, spec, share, tally, shared)
    except Unimplemented as exc:
        skipped = str(exc)
    except TimeoutError:
        message = f"{spec.kind} timed out after {spec.timeout_s:.0f} s, {tally.jobs} of {share} jobs done"
        raise RuntimeError(message) from None
    return LoadResult(
        jobs=tally.jobs,
        elapsed_s=tally.last - tally.started,
        client_cpu_s=time.process_time() - cpu_before,
        settle_errors=tally.errors,
        first_error=tally.first_error,
        skipped=skipped,
        latencies_ms=tally.latencies_ms,
    )


async def enqueue_backlog(stub: Any, jobs: int, *, queue: str = "q", batch: int = 1000, concurrency: int = 4) -> None:
    """Untimed set-up: put `jobs` jobs in `queue` with EnqueueBatch, `concurrency` calls in flight."""
    requests: dict[int, job_pb2.EnqueueBatchRequest] = {}
    budget = Budget(jobs)

    async def sender(_: int) -> None:
        while size := budget.take(batch):
            if size not in requests:
                requests[size] = job_pb2.EnqueueBatchRequest(
                    batch_json=batch_json(size, queue), json_only=True, ids_only=True
                )
            reply = await stub.EnqueueBatch(requests[size])
            if reply.errors:
                raise RuntimeError(f"EnqueueBatch refused {len(reply.errors)} of {size} jobs")

    await in_parallel(concurrency, sender)
