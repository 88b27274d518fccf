"""StreamJobs, StreamEvents and long-poll Fetch over real gRPC."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from ojs.v1 import events_pb2, job_pb2, queue_pb2, worker_pb2

from tests.rpc.calls import Clocked, fetch
from tests.support import new_queue, wait_for


async def enqueue(stub: Any, queue: str, n: int) -> list[str]:
    body = {"jobs": [{"type": "stream.job", "args": [i], "options": {"queue": queue}} for i in range(n)]}
    response = await stub.EnqueueBatch(job_pb2.EnqueueBatchRequest(batch_json=orjson.dumps(body)))
    return [job.id for job in response.jobs]


async def test_stream_never_holds_more_than_max_concurrent(stub: Any) -> None:
    queue = new_queue("stream")
    await enqueue(stub, queue, 1000)
    call = stub.StreamJobs(worker_pb2.StreamJobsRequest(queues=[queue], worker_id="streamer", max_concurrent=5))
    delivered = 0
    acks_sent = 0
    excess = 0
    acks: list[asyncio.Future[Any]] = []

    async def ack_later(job_id: str) -> None:
        nonlocal acks_sent
        await asyncio.sleep(0.002)
        acks_sent += 1
        await stub.Ack(worker_pb2.AckRequest(job_id=job_id, worker_id="streamer"))

    async for job in call:
        delivered += 1
        # The server cannot have seen more acks than were sent, so this bounds what it holds.
        excess = max(excess, delivered - acks_sent - 5)
        acks.append(asyncio.ensure_future(ack_later(job.id)))
        if delivered == 1000:
            break
    call.cancel()
    await asyncio.gather(*acks)
    assert delivered == 1000
    assert excess <= 0, f"{excess} jobs beyond max_concurrent were in flight"


async def test_long_poll_fetch_wakes_on_enqueue(stub: Any) -> None:
    queue = new_queue("stream")
    started = time.monotonic()
    waiting = asyncio.ensure_future(stub.Fetch(worker_pb2.FetchRequest(queues=[queue], wait_ms=5000)))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    [job_id] = await enqueue(stub, queue, 1)
    response = await waiting
    assert [j.id for j in response.jobs] == [job_id]
    assert time.monotonic() - started < 3


async def test_long_poll_times_out_empty(stub: Any) -> None:
    started = time.monotonic()
    response = await stub.Fetch(worker_pb2.FetchRequest(queues=[new_queue("stream")], wait_ms=400))
    assert list(response.jobs) == []
    assert 0.35 <= time.monotonic() - started < 3


async def test_stream_events_live_and_resumed(stub: Any) -> None:
    queue = new_queue("stream")
    call = stub.StreamEvents(events_pb2.StreamEventsRequest(queues=[queue]))
    seen: list[events_pb2.Event] = []

    async def collect() -> None:
        async for event in call:
            if event.type.startswith("job."):
                seen.append(event)
            if len(seen) == 3:
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.3)
    [job_id] = await enqueue(stub, queue, 1)
    [job] = (await stub.Fetch(worker_pb2.FetchRequest(queues=[queue]))).jobs
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id))
    await asyncio.wait_for(collector, 10)
    call.cancel()
    assert [e.type for e in seen] == ["job.enqueued", "job.started", "job.completed"]
    assert {e.job_id for e in seen} == {job_id}
    resumed = stub.StreamEvents(events_pb2.StreamEventsRequest(queues=[queue], after=seen[0].cursor))
    replayed = []
    async for event in resumed:
        replayed.append(event.type)
        if len(replayed) == 2:
            break
    resumed.cancel()
    assert replayed == ["job.started", "job.completed"]


async def test_paused_queue_stream_resumes(stub: Any) -> None:
    queue = new_queue("stream")
    await stub.PauseQueue(queue_pb2.PauseQueueRequest(queue=queue))
    await enqueue(stub, queue, 3)
    call = stub.StreamJobs(worker_pb2.StreamJobsRequest(queues=[queue], worker_id="p", max_concurrent=10))
    first = asyncio.ensure_future(call.read())
    await asyncio.sleep(0.5)
    assert not first.done()
    await stub.ResumeQueue(queue_pb2.ResumeQueueRequest(queue=queue))
    job = await asyncio.wait_for(first, 5)
    assert job.queue == queue
    call.cancel()


async def test_a_dropped_streams_jobs_come_back_after_their_lease(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue("stream")
    [job_id] = await enqueue(stub, queue, 1)
    call = stub.StreamJobs(
        worker_pb2.StreamJobsRequest(queues=[queue], worker_id="gone", max_concurrent=1, visibility_timeout_ms=1000)
    )
    job = await asyncio.wait_for(call.read(), 5)
    assert job.id == job_id
    call.cancel()
    clocked.clock.advance(1000)
    [again] = await wait_for(lambda: fetch(stub, [queue], worker_id="rescuer"))
    assert again.id == job_id and again.attempt == 2 and again.worker_id == "rescuer"
