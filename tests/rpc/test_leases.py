"""Leases over a real grpc.aio channel: lease tokens fence late acks and nacks; expiry requeues or dead-letters."""

from __future__ import annotations

from typing import Any

import grpc
from ojs.v1 import job_pb2, worker_pb2

from tests.rpc.calls import DEAD_LETTER_RETRY, Clocked, dead_letter_ids, enqueue, fetch_one, get_job, wait_for_state
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue, new_worker

S = job_pb2
W = worker_pb2


async def test_fetch_returns_a_lease_token(stub: Any) -> None:
    queue = new_queue()
    await enqueue(stub, queue)
    job = await fetch_one(stub, queue, worker_id=new_worker())
    assert job.lease_token > 0
    stored = await get_job(stub, job.id)
    assert stored.lease_token == job.lease_token


async def test_each_fetch_gets_a_new_lease_token(stub: Any) -> None:
    queue = new_queue()
    await enqueue(stub, queue)
    first = await fetch_one(stub, queue)
    await stub.Nack(W.NackRequest(job_id=first.id, error=job_pb2.JobError(code="x"), requeue=True))
    second = await fetch_one(stub, queue)
    assert second.id == first.id
    assert second.lease_token > first.lease_token


async def test_ack_with_a_wrong_lease_token_is_a_conflict(stub: Any) -> None:
    queue = new_queue()
    await enqueue(stub, queue)
    job = await fetch_one(stub, queue, worker_id="w-token")
    error = await failure(stub.Ack(W.AckRequest(job_id=job.id, lease_token=job.lease_token + 1)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["retryable"] == "false"
    assert info.metadata["current_lease_token"] == str(job.lease_token)
    still = await get_job(stub, job.id)
    assert still.state == S.JOB_STATE_ACTIVE
    assert still.lease_token == job.lease_token

    response = await stub.Ack(W.AckRequest(job_id=job.id, lease_token=job.lease_token, worker_id="w-token"))
    assert response.acknowledged is True
    assert response.job.state == S.JOB_STATE_COMPLETED


async def test_nack_with_a_wrong_lease_token_is_a_conflict(stub: Any) -> None:
    queue = new_queue()
    await enqueue(stub, queue)
    job = await fetch_one(stub, queue)
    error = await failure(
        stub.Nack(W.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x"), lease_token=job.lease_token - 1))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "conflict"
    assert (await get_job(stub, job.id)).state == S.JOB_STATE_ACTIVE
    response = await stub.Nack(
        W.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x"), lease_token=job.lease_token)
    )
    assert response.state == S.JOB_STATE_RETRYABLE


async def test_late_ack_after_the_lease_expired_is_rejected(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue()
    job = await enqueue(stub, queue)
    worker_a, worker_b = new_worker("a"), new_worker("b")
    first = await fetch_one(stub, queue, worker_id=worker_a, visibility_timeout_ms=1000)
    assert first.worker_id == worker_a
    assert (await get_job(stub, job.id)).state == S.JOB_STATE_ACTIVE

    clocked.clock.advance(1_000)
    requeued = await wait_for_state(stub, job.id, S.JOB_STATE_AVAILABLE)
    assert requeued.errors[-1].type == "visibility_timeout"
    assert requeued.errors[-1].attempt == 1
    assert not requeued.HasField("lease_expires_at")

    second = await fetch_one(stub, queue, worker_id=worker_b, visibility_timeout_ms=60_000)
    assert second.id == job.id
    assert second.attempt == 2
    assert second.worker_id == worker_b
    assert second.lease_token > first.lease_token

    error = await failure(stub.Ack(W.AckRequest(job_id=job.id, worker_id=worker_a)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_worker"] == worker_b

    # The old lease token alone is refused as well.
    error = await failure(stub.Ack(W.AckRequest(job_id=job.id, lease_token=first.lease_token)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "conflict"

    error = await failure(stub.Nack(W.NackRequest(job_id=job.id, worker_id=worker_a, error=job_pb2.JobError(code="x"))))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await get_job(stub, job.id)).state == S.JOB_STATE_ACTIVE

    response = await stub.Ack(W.AckRequest(job_id=job.id, worker_id=worker_b, lease_token=second.lease_token))
    assert response.job.state == S.JOB_STATE_COMPLETED


async def test_expired_lease_on_the_last_attempt_dead_letters(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue()
    job = await enqueue(stub, queue, retry=DEAD_LETTER_RETRY)
    await fetch_one(stub, queue, visibility_timeout_ms=1000)
    clocked.clock.advance(1_000)
    discarded = await wait_for_state(stub, job.id, S.JOB_STATE_DISCARDED)
    assert discarded.error.type == "visibility_timeout"
    assert job.id in await dead_letter_ids(stub, queue=queue)
