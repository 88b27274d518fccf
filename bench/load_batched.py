"""Load functions of the batched delivery paths: StreamJobBatches with AckBatch, and HTTP batch acks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping

import orjson
from ojs.v1 import job_pb2, worker_pb2

from bench.load import (
    Budget,
    Clients,
    LoadFunction,
    LoadKind,
    LoadSpec,
    SharedCount,
    Tally,
    Unimplemented,
    ack_batch,
    in_parallel,
)


async def stream_batch_ackbatch_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """One StreamJobBatches call (`batch` = max_concurrent, whole claims per message), one AckBatch per message."""
    worker_id = c.worker_id(0)
    stream = worker_pb2.StreamJobsRequest(
        queues=[spec.queue], worker_id=worker_id, max_concurrent=spec.batch, json_only=True
    )
    request = worker_pb2.StreamJobBatchesRequest(stream=stream)
    call = c.stub.StreamJobBatches(request)
    acks: set[asyncio.Task[None]] = set()

    done = asyncio.Event()

    async def ack(jobs: Iterable[job_pb2.Job]) -> None:
        # Its own count, not the tally's: other batches settle meanwhile.
        if shared.add(await ack_batch(c, jobs, worker_id, tally)) >= spec.jobs:
            done.set()

    async def read() -> None:
        async for message in call:
            task = asyncio.create_task(ack(message.jobs))
            acks.add(task)
            task.add_done_callback(acks.discard)
        raise RuntimeError(f"StreamJobBatches ended after {tally.jobs} jobs")

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
        for task in (reader, waiter, *acks):
            task.cancel()
        await asyncio.gather(reader, waiter, *acks, return_exceptions=True)


async def fetch_ackbatch_http(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """Worker loops over HTTP: POST /workers/fetch, then one POST /workers/ack/batch for the jobs fetched."""
    budget = Budget(share)

    async def worker(index: int) -> None:
        worker_id = c.worker_id(index)
        while want := budget.take(spec.batch):
            body = orjson.dumps({"queues": [spec.queue], "count": want, "worker_id": worker_id})
            jobs = (await c.post_ok("/ojs/v1/workers/fetch", body, 200))["jobs"]
            budget.give_back(want - len(jobs))
            if not jobs:
                return
            acks = [{"job_id": job["id"], "lease_token": job["lease_token"]} for job in jobs]
            status, payload = await c.post(
                "/ojs/v1/workers/ack/batch", orjson.dumps({"worker_id": worker_id, "acks": acks})
            )
            if status == 404:
                raise Unimplemented("POST /ojs/v1/workers/ack/batch is not served")
            if status != 200:
                raise RuntimeError(f"POST /ojs/v1/workers/ack/batch answered {status}: {payload[:300]!r}")
            settled = orjson.loads(payload)["acknowledged"]
            tally.settled(settled)
            if settled < len(jobs):
                tally.failed(len(jobs) - settled, "a batch ack was refused")

    await in_parallel(spec.concurrency, worker)


BATCHED_LOADS: Mapping[LoadKind, LoadFunction] = {
    "stream_batch_ackbatch_grpc": stream_batch_ackbatch_grpc,
    "fetch_ackbatch_http": fetch_ackbatch_http,
}
