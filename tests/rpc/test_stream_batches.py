"""StreamJobBatches: several streamed jobs per message, settled with AckBatch, over real gRPC."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
import pytest
from ojs.v1 import job_pb2, worker_pb2

from tests.support import new_queue

W = worker_pb2


async def enqueue(stub: Any, queue: str, n: int) -> list[str]:
    body = {"jobs": [{"type": "batch.job", "args": [i], "options": {"queue": queue}} for i in range(n)]}
    reply = await stub.EnqueueBatch(job_pb2.EnqueueBatchRequest(batch_json=orjson.dumps(body)))
    return [job.id for job in reply.jobs]


async def test_batches_respect_max_batch_and_the_window_and_deliver_every_job_once(stub: Any) -> None:
    queue = new_queue("batches")
    ids = await enqueue(stub, queue, 300)
    stream = W.StreamJobsRequest(queues=[queue], worker_id="batcher", max_concurrent=50, json_only=True)
    call = stub.StreamJobBatches(W.StreamJobBatchesRequest(stream=stream, max_batch=20))
    seen: list[str] = []
    sizes: list[int] = []
    async for batch in call:
        sizes.append(len(batch.jobs))
        seen += [job.id for job in batch.jobs]
        # Nothing acked yet beyond what came before: the window bounds what is held.
        entries = [W.SettleEntry(job_id=job.id, lease_token=job.lease_token) for job in batch.jobs]
        reply = await stub.AckBatch(W.AckBatchRequest(worker_id="batcher", entries=entries))
        assert reply.settled == len(entries)
        if len(seen) == 300:
            break
    call.cancel()
    assert sorted(seen) == sorted(ids)
    assert max(sizes) == 20 and all(1 <= size <= 20 for size in sizes)
    # Many jobs per message, not one.
    assert len(sizes) <= 300 // 2


async def test_without_max_batch_one_message_carries_a_whole_claim(stub: Any) -> None:
    queue = new_queue("batches")
    await enqueue(stub, queue, 30)
    stream = W.StreamJobsRequest(queues=[queue], worker_id="whole", max_concurrent=10)
    call = stub.StreamJobBatches(W.StreamJobBatchesRequest(stream=stream))
    first = await asyncio.wait_for(call.read(), 5)
    assert len(first.jobs) == 10
    # The window is full: nothing more comes until some are settled.
    pending = asyncio.ensure_future(call.read())
    await asyncio.sleep(0.4)
    assert not pending.done()
    job = first.jobs[0]
    await stub.AckBatch(W.AckBatchRequest(worker_id="whole", entries=[W.SettleEntry(job_id=job.id)]))
    second = await asyncio.wait_for(pending, 5)
    assert len(second.jobs) == 1
    assert second.jobs[0].id not in {j.id for j in first.jobs}
    call.cancel()


async def test_a_negative_max_batch_is_refused(stub: Any) -> None:
    stream = W.StreamJobsRequest(queues=[new_queue("batches")], worker_id="w")
    call = stub.StreamJobBatches(W.StreamJobBatchesRequest(stream=stream, max_batch=-1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_claim_too_large_for_one_message_is_split_across_messages(stub: Any) -> None:
    queue = new_queue("batches")
    # Six jobs of about 900 kB each: more than one reply may carry (4 MiB), less than two.
    filler = "x" * 900_000
    body = {"jobs": [{"type": "batch.big", "args": [i, filler], "options": {"queue": queue}} for i in range(6)]}
    reply = await stub.EnqueueBatch(job_pb2.EnqueueBatchRequest(batch_json=orjson.dumps(body), ids_only=True))
    ids = [job.id for job in reply.jobs]
    stream = W.StreamJobsRequest(queues=[queue], worker_id="big", max_concurrent=6, json_only=True)
    call = stub.StreamJobBatches(W.StreamJobBatchesRequest(stream=stream))
    first = await asyncio.wait_for(call.read(), 10)
    second = await asyncio.wait_for(call.read(), 10)
    call.cancel()
    assert len(first.jobs) == 4 and len(second.jobs) == 2
    assert sorted(job.id for job in [*first.jobs, *second.jobs]) == sorted(ids)
    assert max(first.ByteSize(), second.ByteSize()) <= 4 * 1024 * 1024
