"""Load functions of the batched delivery paths: StreamJobBatches with AckBatch, and HTTP batch acks."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from ojs.v1 import worker_pb2

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
    consume_stream,
    fetch_http,
    in_parallel,
)


async def stream_batch_ackbatch_grpc(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """One StreamJobBatches call with `concurrency` batches of `batch` jobs in flight, one AckBatch per message.

    The window (max_concurrent) holds several messages, as a worker keeps working on some batches while it
    acks others; with a window of one batch, the stream could claim nothing between a batch's delivery
    and its ack.
    """
    worker_id = c.worker_id(0)
    stream = worker_pb2.StreamJobsRequest(
        queues=[spec.queue], worker_id=worker_id, max_concurrent=spec.batch * spec.concurrency, json_only=True
    )
    request = worker_pb2.StreamJobBatchesRequest(stream=stream, max_batch=spec.batch)

    async def ack(message: worker_pb2.JobBatch) -> int:
        return await ack_batch(c, message.jobs, worker_id, tally)

    await consume_stream(c.stub.StreamJobBatches(request), ack, spec, shared, tally, "StreamJobBatches")


async def fetch_ackbatch_http(c: Clients, spec: LoadSpec, share: int, tally: Tally, shared: SharedCount) -> None:
    """Worker loops over HTTP: POST /workers/fetch, then one POST /workers/ack/batch for the jobs fetched."""
    budget = Budget(share)

    async def worker(index: int) -> None:
        worker_id = c.worker_id(index)
        while want := budget.take(spec.batch):
            jobs = await fetch_http(c, budget, want, spec.queue, worker_id)
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
