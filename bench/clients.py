"""Client processes of `python -m bench load`: many concurrent HTTP or gRPC clients doing enqueue, fetch, ack.

Each process runs `clients` client loops of one protocol until its deadline. A client loop enqueues a job,
fetches one job and acks it, over and over; every call has a client-side timeout, so a hanging server shows up as
an error instead of a stuck benchmark.

The server shedding load on purpose is counted apart (`shed`): over HTTP a 503 with `Retry-After` whose error
names the delay (`details.retry_after_s`; the gateway puts a default Retry-After on every 503, meant or not), over
gRPC `UNAVAILABLE` with `retry-after` trailing metadata. The client then waits as told and tries the same call
again, as a well-behaved client would. Every other failure is an error, counted by kind (status and code, reset,
refused, timeout, ...).

HTTP clients share one connection pool per process without a limit, so N clients hold N connections; each gRPC
client has its own channel and connection (a local subchannel pool), as separate worker processes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import aiohttp
import grpc
import orjson
from ojs.v1 import job_pb2, service_pb2_grpc, worker_pb2

from bench.load import MEDIA_TYPE, job_json

__all__ = ["ClientReport", "Protocol", "Shed", "run_client_process"]

Protocol = Literal["http", "grpc"]
QUEUE = "load"
# A server asking for longer than this is waited for this long (the run is only so long).
_MAX_RETRY_WAIT_S = 5.0


@dataclass
class ClientReport:
    """What one process's clients did in the measured window."""

    protocol: str
    clients: int
    # Jobs acked: one full enqueue-fetch-ack cycle each.
    jobs: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    # Deliberate refusals with a retry delay (503 + Retry-After, UNAVAILABLE + retry-after).
    shed: Counter[str] = field(default_factory=Counter)
    first_errors: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


class Shed(Exception):
    """The server refused a call on purpose and named a delay."""

    def __init__(self, kind: str, retry_after_s: float) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after_s = retry_after_s


class CallFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HttpClients:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._base = base_url
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"Content-Type": MEDIA_TYPE},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )

    async def call(self, path: str, body: bytes, expected: int) -> Any:
        try:
            async with self.session.post(self._base + path, data=body) as response:
                payload = await response.read()
                if response.status == expected:
                    return orjson.loads(payload)
                retry = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise CallFailed("timeout", f"no answer to POST {path}") from None
        except aiohttp.ServerDisconnectedError as exc:
            raise CallFailed("disconnected", str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            raise CallFailed("connect failed", str(exc)) from None
        except aiohttp.ClientOSError as exc:
            raise CallFailed("connection reset" if "reset" in str(exc).lower() else "socket error", str(exc)) from None
        except aiohttp.ClientError as exc:
            raise CallFailed(type(exc).__name__, str(exc)) from None
        code = ""
        named_delay = False
        with contextlib.suppress(Exception):
            error = orjson.loads(payload)["error"]
            code = str(error["code"])
            named_delay = "retry_after_s" in (error.get("details") or {})
        kind = f"HTTP {response.status} {code}".strip()
        if response.status == 503 and retry is not None:
            if named_delay:
                raise Shed(kind + " + Retry-After", retry)
            kind += " (a failure, not shedding: no retry_after_s)"
        raise CallFailed(kind, payload[:200].decode(errors="replace"))

    async def close(self) -> None:
        await self.session.close()


async def _http_client(clients: HttpClients, index: int, report: ClientReport, run: _Run) -> None:
    worker_id = f"load-http-{id(report)}-{index}"
    enqueue = job_json(QUEUE)
    fetch = orjson.dumps({"queues": [QUEUE], "count": 1, "worker_id": worker_id})
    await run.started.wait()
    while run.going():
        if await run.call(report, "enqueue", clients.call("/ojs/v1/jobs", enqueue, 201)) is None:
            continue
        reply = await run.call(report, "fetch", clients.call("/ojs/v1/workers/fetch", fetch, 200))
        if not reply or not reply["jobs"]:
            continue
        job = reply["jobs"][0]
        ack = orjson.dumps({"job_id": job["id"], "worker_id": worker_id, "lease_token": job["lease_token"]})
        # A shed ack is retried (with the same lease) so the job is not left leased.
        while run.going(grace=True):
            outcome = await run.call(report, "ack", clients.call("/ojs/v1/workers/ack", ack, 200), retry=True)
            if outcome is not _RETRY:
                if outcome is not None:
                    report.jobs += run.counts()
                break


def _grpc_failure(exc: grpc.aio.AioRpcError) -> Exception:
    code = exc.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallFailed("timeout", exc.details() or "")
    retry = None
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after" and isinstance(value, str):
            retry = _retry_after(value)
    if code == grpc.StatusCode.UNAVAILABLE and retry is not None:
        return Shed("UNAVAILABLE + retry-after", retry)
    return CallFailed(f"gRPC {code.name}", exc.details() or "")


async def _grpc_call(coro: Any) -> Any:
    try:
        return await coro
    except grpc.aio.AioRpcError as exc:
        raise _grpc_failure(exc) from None


async def _grpc_client(target: str, index: int, report: ClientReport, run: _Run, timeout_s: float) -> None:
    # Its own connection, as a separate worker process would have.
    channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
    stub: Any = service_pb2_grpc.OJSServiceStub(channel)
    worker_id = f"load-grpc-{id(report)}-{index}"
    enqueue = job_pb2.EnqueueRequest(job_json=job_json(QUEUE), json_only=True)
    fetch = worker_pb2.FetchRequest(queues=[QUEUE], count=1, worker_id=worker_id, json_only=True)
    try:
        await channel.channel_ready()
        await run.started.wait()
        while run.going():
            if await run.call(report, "enqueue", _grpc_call(stub.Enqueue(enqueue, timeout=timeout_s))) is None:
                continue
            reply = await run.call(report, "fetch", _grpc_call(stub.Fetch(fetch, timeout=timeout_s)))
            if reply is None or not reply.jobs:
                continue
            job = reply.jobs[0]
            ack = worker_pb2.AckRequest(job_id=job.id, worker_id=worker_id, lease_token=job.lease_token or None)
            while run.going(grace=True):
                outcome = await run.call(report, "ack", _grpc_call(stub.Ack(ack, timeout=timeout_s)), retry=True)
                if outcome is not _RETRY:
                    if outcome is not None:
                        report.jobs += run.counts()
                    break
    finally:
        await channel.close()


_RETRY = object()


class _Run:
    """The measured window, shared by the clients of one process."""

    def __init__(self, duration_s: float, timeout_s: float) -> None:
        self.duration_s = duration_s
        self.timeout_s = timeout_s
        self.started = asyncio.Event()
        self.start = 0.0
        self.end = 0.0

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.end = self.start + self.duration_s
        self.started.set()

    def going(self, *, grace: bool = False) -> bool:
        """Whether to start another cycle (or, with `grace`, finish the one under way)."""
        return time.perf_counter() < self.end + (self.timeout_s if grace else 0.0)

    def counts(self) -> int:
        """1 if now is inside the measured window."""
        return 1 if time.perf_counter() <= self.end else 0

    async def call(self, report: ClientReport, op: str, coro: Any, *, retry: bool = False) -> Any:
        """Await one call and record it; None after a failure (or `_RETRY` after a shed call, with `retry`)."""
        began = time.perf_counter()
        try:
            result = await coro
        except Shed as exc:
            report.shed[f"{op}: {exc.kind}"] += 1
            await asyncio.sleep(min(exc.retry_after_s, _MAX_RETRY_WAIT_S))
            return _RETRY if retry else None
        except CallFailed as exc:
            key = f"{op}: {exc.kind}"
            report.errors[key] += 1
            report.first_errors.setdefault(key, exc.detail)
            return None
        if began <= self.end:
            report.calls[op] += 1
            report.latencies_ms.setdefault(op, []).append((time.perf_counter() - began) * 1000)
        return result if result is not None else {}


async def _run_clients(
    protocol: Protocol, clients: int, target: str, duration_s: float, timeout_s: float, conn: Connection
) -> ClientReport:
    report = ClientReport(protocol=protocol, clients=clients)
    run = _Run(duration_s, timeout_s)
    if protocol == "http":
        http = HttpClients(target, timeout_s)
        loops = [_http_client(http, index, report, run) for index in range(clients)]
    else:
        loops = [_grpc_client(target, index, report, run, timeout_s) for index in range(clients)]
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    try:
        # gRPC clients connect before reporting ready; the start signal then begins the window everywhere.
        await asyncio.sleep(0.5 if protocol == "grpc" else 0)
        conn.send(("ready", None))
        await asyncio.to_thread(conn.recv)
        run.begin()
        await asyncio.gather(*tasks)
        report.elapsed_s = time.perf_counter() - run.start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if protocol == "http":
            await http.close()
    return report


def run_client_process(
    conn: Connection, protocol: Protocol, clients: int, target: str, duration_s: float, timeout_s: float
) -> None:
    """Entry point of a client process: report "ready", wait for "go", run, send the `ClientReport`."""
    try:
        report = asyncio.run(_run_clients(protocol, clients, target, duration_s, timeout_s, conn))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", report))
