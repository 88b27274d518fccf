"""Fetch, ack, nack, retry and cancel over a real grpc.aio channel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import json_format, struct_pb2
from ojs.v1 import job_pb2, worker_pb2

from server.domain.clock import now_ms
from server.domain.ids import new_uuid7
from tests.rpc.calls import (
    Clocked,
    after_a_promoter_pass,
    canonical,
    canonical_of,
    enqueue_json,
    enqueue_simple,
    fetch,
    fetch_within,
    ms_of,
)
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue

S = job_pb2


# --------------------------------------------------------------------------- fetch, ack, nack


async def test_fetch_ack_get_job(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    [active] = await fetch(stub, [queue], worker_id="worker-1")
    assert active.id == job.id
    assert active.state == S.JOB_STATE_ACTIVE
    assert active.attempt == 1
    assert active.worker_id == "worker-1"
    assert active.HasField("started_at")
    assert active.HasField("lease_expires_at")

    result = b'{"ok":true,"n":[1,2,3]}'
    ack = await stub.Ack(worker_pb2.AckRequest(job_id=job.id, result_json=result))
    assert ack.acknowledged is True
    assert ack.job.state == S.JOB_STATE_COMPLETED

    done = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert done.state == S.JOB_STATE_COMPLETED
    assert orjson.loads(done.result_json) == {"ok": True, "n": [1, 2, 3]}
    assert json_format.MessageToDict(done.result) == {"ok": True, "n": [1, 2, 3]}
    assert done.HasField("completed_at")
    assert not done.HasField("error")

    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "completed"


async def test_ack_with_a_struct_result(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    result = struct_pb2.Struct()
    result.update({"sent": True, "count": 2})
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id, result=result))
    done = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert canonical(done.result_json) == canonical_of({"sent": True, "count": 2})


@pytest.mark.parametrize("result", [b"[1,2,3]", b'"done"', b"42", b"null", b"true", b'{"a":{"b":[1.5,null]}}'])
async def test_ack_with_any_json_result(stub: Any, result: bytes) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id, result_json=result))
    done = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert done.result_json == result
    assert done.HasField("result") == result.startswith(b"{")


async def test_ack_with_a_non_finite_struct_result_is_invalid(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    result = struct_pb2.Struct()
    result.update({"ratio": float("nan")})
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id, result=result)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason in {"invalid_request", "invalid_payload"}
    still = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert still.state == S.JOB_STATE_ACTIVE


async def test_ack_with_invalid_result_json(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id, result_json=b"{not json")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_payload"
    still = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert still.state == S.JOB_STATE_ACTIVE


async def test_ack_of_an_available_job_is_a_conflict(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "available"


async def test_ack_of_an_unknown_job_is_not_found(stub: Any) -> None:
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=new_uuid7())))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"


async def test_ack_from_another_worker_is_rejected(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue], worker_id="worker-a")
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="worker-b")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "conflict"
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="worker-a"))


async def test_nack_with_the_default_policy_is_retryable(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    before = now_ms()
    response = await stub.Nack(
        worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="smtp_down", message="connection refused"))
    )
    after = now_ms()
    assert response.state == S.JOB_STATE_RETRYABLE
    assert response.HasField("next_attempt_at")
    assert response.job.state == S.JOB_STATE_RETRYABLE
    assert response.job.HasField("retry_delay_ms")
    delay = response.job.retry_delay_ms
    # Default policy: 1 s with jitter in [0.5, 1.5).
    assert 500 <= delay <= 1500
    due = ms_of(response.next_attempt_at)
    assert before + delay - 1000 <= due <= after + delay + 1000
    assert response.job.error.code == "smtp_down"
    assert response.job.error.message == "connection refused"
    assert len(response.job.errors) == 1
    assert response.job.errors[0].attempt == 1

    stored = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert stored.state == S.JOB_STATE_RETRYABLE
    assert stored.retry_delay_ms == delay
    assert await fetch(stub, [queue]) == []


async def test_nack_not_retryable_is_discarded(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    response = await stub.Nack(
        worker_pb2.NackRequest(
            job_id=job.id, error=job_pb2.JobError(code="fatal", message="bad input"), retryable=False
        )
    )
    assert response.state == S.JOB_STATE_DISCARDED
    assert response.job.state == S.JOB_STATE_DISCARDED
    assert response.job.HasField("discarded_at")
    assert not response.HasField("next_attempt_at")


async def test_nack_with_retryable_true_still_follows_the_policy(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_json(
        stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "retry": {"max_attempts": 1}}}
    )
    await fetch(stub, [queue])
    response = await stub.Nack(
        worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x", message="y"), retryable=True)
    )
    assert response.state == S.JOB_STATE_DISCARDED


async def test_nack_matching_non_retryable_errors_is_discarded(stub: Any) -> None:
    queue = new_queue()
    body = {
        "type": "test.echo",
        "args": [],
        "options": {"queue": queue, "retry": {"max_attempts": 5, "non_retryable_errors": ["Auth.*"]}},
    }
    job = await enqueue_json(stub, body)
    await fetch(stub, [queue])
    details = struct_pb2.Struct()
    details.update({"error_class": "Auth.TokenExpired"})
    response = await stub.Nack(
        worker_pb2.NackRequest(
            job_id=job.id, error=job_pb2.JobError(code="handler_error", message="token expired", details=details)
        )
    )
    assert response.state == S.JOB_STATE_DISCARDED


async def test_nack_with_requeue_makes_the_job_available(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    response = await stub.Nack(
        worker_pb2.NackRequest(
            job_id=job.id, error=job_pb2.JobError(code="cancelled", message="shutdown"), requeue=True
        )
    )
    assert response.state == S.JOB_STATE_AVAILABLE
    [again] = await fetch(stub, [queue])
    assert again.id == job.id
    assert again.attempt == 2


async def test_nack_of_an_available_job_is_a_conflict(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    error = await failure(stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x"))))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).metadata["current_state"] == "available"


async def test_retry_is_fetchable_after_its_backoff(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue()
    retry = {"max_attempts": 2, "initial_interval_ms": 200, "jitter": False}
    job = await enqueue_json(stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "retry": retry}})
    await fetch(stub, [queue])
    first = await stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="e1", message="one")))
    assert first.state == S.JOB_STATE_RETRYABLE
    assert first.job.retry_delay_ms == 200
    assert await fetch(stub, [queue]) == []

    clocked.clock.advance(200)
    [again] = await fetch_within(stub, queue, 5.0)
    assert again.id == job.id
    assert again.attempt == 2
    assert again.state == S.JOB_STATE_ACTIVE

    second = await stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="e2", message="two")))
    assert second.state == S.JOB_STATE_DISCARDED
    assert [(e.code, e.attempt) for e in second.job.errors] == [("e1", 1), ("e2", 2)]
    assert second.job.error.code == "e2"


async def test_scheduled_job_becomes_fetchable(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue()
    job = await enqueue_json(
        stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "scheduled_at": "+PT0.3S"}}
    )
    assert job.state == S.JOB_STATE_SCHEDULED
    assert await fetch(stub, [queue]) == []
    clocked.clock.advance(300)
    [fetched] = await fetch_within(stub, queue, 5.0)
    assert fetched.id == job.id
    assert fetched.attempt == 1


async def test_cancelled_retryable_job_is_never_fetched(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue()
    retry = {"initial_interval_ms": 100, "jitter": False}
    job = await enqueue_json(stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "retry": retry}})
    await fetch(stub, [queue])
    await stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x")))
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    assert response.previous_state == S.JOB_STATE_RETRYABLE
    assert not response.job.HasField("next_attempt_at")
    clocked.clock.advance(400)
    await after_a_promoter_pass(clocked)
    assert await fetch(stub, [queue]) == []
    assert (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job.state == S.JOB_STATE_CANCELLED


async def test_cancelled_scheduled_job_is_never_fetched(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue()
    job = await enqueue_json(
        stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "scheduled_at": "+PT0.2S"}}
    )
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    assert response.previous_state == S.JOB_STATE_SCHEDULED
    clocked.clock.advance(400)
    await after_a_promoter_pass(clocked)
    assert await fetch(stub, [queue]) == []


async def test_fetch_without_queues_is_invalid(stub: Any) -> None:
    error = await failure(stub.Fetch(worker_pb2.FetchRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"


async def test_fetch_from_an_empty_queue_returns_at_once(stub: Any) -> None:
    started = time.monotonic()
    assert await fetch(stub, [new_queue()]) == []
    assert time.monotonic() - started < 1.5


async def test_fetch_visibility_timeout_sets_the_lease(stub: Any) -> None:
    queue = new_queue()
    await enqueue_simple(stub, queue)
    before = now_ms()
    response = await stub.Fetch(worker_pb2.FetchRequest(queues=[queue], visibility_timeout_ms=30_000))
    [job] = response.jobs
    lease = ms_of(job.lease_expires_at)
    assert before + 29_000 <= lease <= now_ms() + 31_000


async def test_fetch_uses_the_job_visibility_timeout(stub: Any) -> None:
    queue = new_queue()
    await enqueue_simple(stub, queue, visibility_timeout_ms=5000)
    before = now_ms()
    [job] = await fetch(stub, [queue])
    assert before + 4000 <= ms_of(job.lease_expires_at) <= now_ms() + 6000
    assert job.visibility_timeout.seconds == 5


async def test_fetch_without_any_visibility_timeout_uses_a_long_default(stub: Any) -> None:
    queue = new_queue()
    await enqueue_simple(stub, queue)
    [job] = await fetch(stub, [queue])
    # SPEC-GUIDE §0.14: the default lease must be at least 120 s.
    assert ms_of(job.lease_expires_at) >= now_ms() + 119_000


async def test_lease_is_released_on_ack_and_nack(stub: Any) -> None:
    queue = new_queue()
    acked, nacked = await enqueue_simple(stub, queue), await enqueue_simple(stub, queue)
    await fetch(stub, [queue], count=2)
    done = (await stub.Ack(worker_pb2.AckRequest(job_id=acked.id))).job
    assert not done.HasField("lease_expires_at")
    failed = (await stub.Nack(worker_pb2.NackRequest(job_id=nacked.id, error=job_pb2.JobError(code="x")))).job
    assert not failed.HasField("lease_expires_at")


async def test_priority_order_then_fifo(stub: Any) -> None:
    queue = new_queue()
    jobs = [await enqueue_simple(stub, queue, priority=p) for p in (10, 0, -10, 10)]
    order = []
    for _ in range(4):
        [job] = await fetch(stub, [queue])
        order.append(job.id)
    assert order == [jobs[0].id, jobs[3].id, jobs[1].id, jobs[2].id]
    assert await fetch(stub, [queue]) == []


async def test_priority_order_in_one_batch(stub: Any) -> None:
    queue = new_queue()
    jobs = [await enqueue_simple(stub, queue, priority=p) for p in (-100, 100, 0, 100, -100)]
    fetched = await fetch(stub, [queue], count=10)
    assert [j.id for j in fetched] == [jobs[1].id, jobs[3].id, jobs[2].id, jobs[0].id, jobs[4].id]


async def test_fetch_follows_the_order_of_queues(stub: Any) -> None:
    first, second = new_queue("first"), new_queue("second")
    in_second = await enqueue_simple(stub, second, priority=100)
    in_first = await enqueue_simple(stub, first, priority=-100)
    [job] = await fetch(stub, [first, second])
    assert job.id == in_first.id
    [job] = await fetch(stub, [first, second])
    assert job.id == in_second.id


async def test_fetch_many_across_queues_keeps_queue_order(stub: Any) -> None:
    a, b = new_queue("a"), new_queue("b")
    in_a = [await enqueue_simple(stub, a) for _ in range(2)]
    in_b = [await enqueue_simple(stub, b) for _ in range(2)]
    fetched = await fetch(stub, [b, a], count=3)
    assert [j.id for j in fetched] == [in_b[0].id, in_b[1].id, in_a[0].id]


async def test_concurrent_fetches_claim_a_job_once(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    results = await asyncio.gather(*(fetch(stub, [queue], worker_id=f"w{i}") for i in range(10)))
    winners = [r for r in results if r]
    assert len(winners) == 1
    assert [j.id for j in winners[0]] == [job.id]


async def test_concurrent_fetches_share_jobs_without_duplicates(stub: Any) -> None:
    queue = new_queue()
    ids = {(await enqueue_simple(stub, queue)).id for _ in range(20)}
    results = await asyncio.gather(*(fetch(stub, [queue], count=3) for _ in range(10)))
    claimed = [j.id for r in results for j in r]
    assert len(claimed) == len(set(claimed)) == 20
    assert set(claimed) == ids


# --------------------------------------------------------------------------- cancel


async def test_cancel_available_job(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id, reason="not needed"))
    assert response.job.state == S.JOB_STATE_CANCELLED
    assert response.previous_state == S.JOB_STATE_AVAILABLE
    assert response.job.HasField("cancelled_at")
    assert not response.job.HasField("completed_at")
    assert await fetch(stub, [queue]) == []


async def test_cancel_active_job(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    assert response.previous_state == S.JOB_STATE_ACTIVE
    assert response.job.state == S.JOB_STATE_CANCELLED
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_completed_job_is_a_conflict(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id))
    error = await failure(stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "completed"


async def test_cancel_twice_is_a_conflict(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    error = await failure(stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_unknown_job_is_not_found(stub: Any) -> None:
    error = await failure(stub.CancelJob(job_pb2.CancelJobRequest(job_id=new_uuid7())))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"
