"""The throughput extensions: AckBatch, group-committed single acks, json_only and ids_only replies."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
import pytest
from ojs.v1 import job_pb2, worker_pb2

from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue

W = worker_pb2


async def enqueue_many(stub: Any, queue: str, count: int, **options: Any) -> list[str]:
    job_options: dict[str, Any] = {"queue": queue, **options}
    jobs = [{"type": "fast.noop", "args": [i, {"k": "v"}], "options": job_options} for i in range(count)]
    reply = await stub.EnqueueBatch(job_pb2.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs})))
    return [job.id for job in reply.jobs]


async def fetch(stub: Any, queue: str, count: int, worker: str = "w1") -> list[Any]:
    reply = await stub.Fetch(W.FetchRequest(queues=[queue], count=count, worker_id=worker))
    return list(reply.jobs)


async def state_of(stub: Any, job_id: str) -> int:
    return int((await stub.GetJob(job_pb2.GetJobRequest(job_id=job_id))).job.state)


async def test_ack_batch_settles_every_entry_in_one_call(stub: Any) -> None:
    queue = new_queue("fast")
    await enqueue_many(stub, queue, 300)
    jobs = await fetch(stub, queue, 300)
    entries = [W.SettleEntry(job_id=job.id, lease_token=job.lease_token, result_json=b'{"n":1}') for job in jobs]
    reply = await stub.AckBatch(W.AckBatchRequest(worker_id="w1", entries=entries))
    assert reply.settled == 300
    assert [result.job_id for result in reply.results] == [job.id for job in jobs]
    assert all(result.ok and result.state == job_pb2.JOB_STATE_COMPLETED for result in reply.results)
    assert not any(result.HasField("job") for result in reply.results)
    done = (await stub.GetJob(job_pb2.GetJobRequest(job_id=jobs[0].id))).job
    assert done.state == job_pb2.JOB_STATE_COMPLETED
    assert orjson.loads(done.result_json) == {"n": 1}


async def test_ack_batch_refuses_entries_one_by_one(stub: Any) -> None:
    queue = new_queue("fast")
    await enqueue_many(stub, queue, 4, retry={"max_attempts": 3})
    first, second, third, fourth = await fetch(stub, queue, 4)
    entries = [
        W.SettleEntry(job_id=first.id, lease_token=first.lease_token),
        W.SettleEntry(job_id=second.id, lease_token=second.lease_token + 1),  # stale lease
        W.SettleEntry(job_id="0190c5a0-0000-7000-8000-000000000000"),  # unknown
        W.SettleEntry(job_id=third.id, error=job_pb2.JobError(code="boom", message="failed")),
        W.SettleEntry(job_id=first.id),  # already completed by the first entry
        W.SettleEntry(job_id=""),
        W.SettleEntry(job_id=fourth.id, error=job_pb2.JobError(code="x", message="again"), requeue=True),
    ]
    reply = await stub.AckBatch(W.AckBatchRequest(worker_id="w1", entries=entries, return_jobs=True))
    ok = [result.ok for result in reply.results]
    assert ok == [True, False, False, True, False, False, True]
    assert reply.settled == 3
    stale, unknown, repeated, missing = reply.results[1], reply.results[2], reply.results[4], reply.results[5]
    assert stale.error_code == "conflict" and "lease" in stale.error_message
    assert unknown.error_code == "not_found"
    assert repeated.error_code == "conflict" and repeated.state == job_pb2.JOB_STATE_COMPLETED
    assert missing.error_code == "invalid_request"
    failed, requeued = reply.results[3], reply.results[6]
    assert failed.state == job_pb2.JOB_STATE_RETRYABLE
    assert failed.job.errors[0].code == "boom" and failed.job.errors[0].attempt == 1
    assert requeued.state == job_pb2.JOB_STATE_AVAILABLE and not requeued.job.errors
    # The stale entry left its job active for the worker that holds it.
    assert await state_of(stub, second.id) == job_pb2.JOB_STATE_ACTIVE


async def test_ack_batch_checks_the_worker(stub: Any) -> None:
    queue = new_queue("fast")
    await enqueue_many(stub, queue, 1)
    (job,) = await fetch(stub, queue, 1, worker="owner")
    reply = await stub.AckBatch(W.AckBatchRequest(worker_id="intruder", entries=[W.SettleEntry(job_id=job.id)]))
    assert not reply.results[0].ok and reply.results[0].error_code == "conflict"
    assert await state_of(stub, job.id) == job_pb2.JOB_STATE_ACTIVE


async def test_ack_batch_nack_reaches_the_dead_letter_queue(stub: Any) -> None:
    queue = new_queue("fast")
    await enqueue_many(stub, queue, 1, retry={"max_attempts": 1})
    (job,) = await fetch(stub, queue, 1)
    entry = W.SettleEntry(job_id=job.id, error=job_pb2.JobError(code="fatal", message="no"))
    reply = await stub.AckBatch(W.AckBatchRequest(worker_id="w1", entries=[entry]))
    assert reply.results[0].state == job_pb2.JOB_STATE_DISCARDED


@pytest.mark.parametrize("size", [0, 10_001])
async def test_ack_batch_rejects_an_empty_or_oversized_call(stub: Any, size: int) -> None:
    entries = [W.SettleEntry(job_id=f"id-{i}") for i in range(size)]
    error = await failure(stub.AckBatch(W.AckBatchRequest(worker_id="w1", entries=entries)))
    expected = grpc.StatusCode.INVALID_ARGUMENT if size == 0 else grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.code() == expected
    assert error_info(error).reason == ("invalid_request" if size == 0 else "payload_too_large")


async def test_ack_batch_rejects_a_result_that_is_not_json(stub: Any) -> None:
    queue = new_queue("fast")
    await enqueue_many(stub, queue, 1)
    (job,) = await fetch(stub, queue, 1)
    entry = W.SettleEntry(job_id=job.id, result_json=b"{not json")
    error = await failure(stub.AckBatch(W.AckBatchRequest(worker_id="w1", entries=[entry])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await state_of(stub, job.id) == job_pb2.JOB_STATE_ACTIVE


async def test_concurrent_single_acks_each_get_their_own_reply(stub: Any) -> None:
    """Single acks sent together are committed together; each still gets its own job or error."""
    queue = new_queue("fast")
    await enqueue_many(stub, queue, 400)
    jobs = await fetch(stub, queue, 400)
    stale = {job.id for job in jobs[::50]}

    async def ack(job: Any) -> Any:
        token = job.lease_token + 1 if job.id in stale else job.lease_token
        return await stub.Ack(W.AckRequest(job_id=job.id, worker_id="w1", lease_token=token))

    replies = await asyncio.gather(*(ack(job) for job in jobs), return_exceptions=True)
    for job, reply in zip(jobs, replies, strict=True):
        if job.id in stale:
            assert isinstance(reply, grpc.aio.AioRpcError)
            assert reply.code() == grpc.StatusCode.FAILED_PRECONDITION
        else:
            assert not isinstance(reply, BaseException), reply
            assert reply.job.id == job.id
            assert reply.job.state == job_pb2.JOB_STATE_COMPLETED
    assert all([await state_of(stub, job_id) == job_pb2.JOB_STATE_ACTIVE for job_id in stale])


async def test_json_only_replies_leave_out_the_value_copies(stub: Any) -> None:
    queue = new_queue("fast")
    body = {"type": "fast.noop", "args": [1, {"k": "v"}], "meta": {"m": 1}, "options": {"queue": queue}}
    enqueued = await stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(body), json_only=True))
    assert not enqueued.job.args and not enqueued.job.HasField("meta")
    assert orjson.loads(enqueued.job.args_json) == [1, {"k": "v"}]
    fetched = await stub.Fetch(W.FetchRequest(queues=[queue], worker_id="w1", json_only=True))
    job = fetched.jobs[0]
    assert not job.args and orjson.loads(job.args_json) == [1, {"k": "v"}]
    assert orjson.loads(job.meta_json) == {"m": 1}
    acked = await stub.Ack(W.AckRequest(job_id=job.id, worker_id="w1", result_json=b'{"r":2}', json_only=True))
    assert not acked.job.HasField("result") and orjson.loads(acked.job.result_json) == {"r": 2}
    # Without the flag, official clients still get the Value copies.
    plain = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert len(plain.args) == 2 and plain.HasField("result")


async def test_ids_only_batch_reply(stub: Any) -> None:
    queue = new_queue("fast")
    jobs = [{"type": "fast.noop", "args": [i], "options": {"queue": queue}} for i in range(5)]
    request = job_pb2.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs}), ids_only=True)
    reply = await stub.EnqueueBatch(request)
    assert reply.count == 5
    assert all(job.id and job.state == job_pb2.JOB_STATE_AVAILABLE and not job.type for job in reply.jobs)
    fetched = await fetch(stub, queue, 5)
    assert [job.id for job in fetched] == [job.id for job in reply.jobs]
