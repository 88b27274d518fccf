"""Dead letter over a real grpc.aio channel: listing, paging, retry, delete."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from ojs.v1 import job_pb2, queue_pb2, worker_pb2

from server.domain.ids import new_uuid7
from tests.rpc.calls import dead_letter_ids, dead_letter_job, enqueue, fetch_one, get_job
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue, new_worker

S = job_pb2
W = worker_pb2


async def test_exhausted_job_is_dead_lettered(stub: Any) -> None:
    queue = new_queue("dl")
    job = await dead_letter_job(stub, queue, code="smtp_down")
    assert job.HasField("discarded_at")
    response = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(queue=queue))
    assert response.total_count == 1
    assert response.next_cursor == ""
    [listed] = response.jobs
    assert listed.id == job.id
    assert listed.state == S.JOB_STATE_DISCARDED
    assert listed.queue == queue
    assert listed.retry_policy.on_exhaustion == "dead_letter"
    assert [(e.code, e.attempt) for e in listed.errors] == [("smtp_down", 1)]
    assert listed.error.message == "smtp_down!"


async def test_dead_letter_filters_by_queue_and_type(stub: Any) -> None:
    first, second = new_queue("dl-a"), new_queue("dl-b")
    kind = f"dl.kind{uuid.uuid4().hex[:8]}"
    a_kind = await dead_letter_job(stub, first, job_type=kind)
    a_other = await dead_letter_job(stub, first, job_type="dl.other")
    b_kind = await dead_letter_job(stub, second, job_type=kind)

    assert await dead_letter_ids(stub, queue=first) == [a_other.id, a_kind.id]
    assert await dead_letter_ids(stub, queue=second) == [b_kind.id]
    assert await dead_letter_ids(stub, type=kind) == [b_kind.id, a_kind.id]
    assert await dead_letter_ids(stub, queue=first, type=kind) == [a_kind.id]
    both = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(queue=first, type=kind))
    assert both.total_count == 1
    assert await dead_letter_ids(stub, queue=new_queue("dl-none")) == []
    unfiltered = await dead_letter_ids(stub)
    assert {a_kind.id, a_other.id, b_kind.id} <= set(unfiltered)


async def test_dead_letter_pages_newest_first(stub: Any) -> None:
    queue = new_queue("dl-page")
    jobs = [await dead_letter_job(stub, queue) for _ in range(3)]
    # Newest first; equal discard times fall back to the id, which is time-ordered.
    first = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(queue=queue, limit=1))
    assert [j.id for j in first.jobs] == [jobs[2].id]
    assert first.total_count == 3
    assert first.next_cursor
    second = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(queue=queue, limit=1, cursor=first.next_cursor))
    assert [j.id for j in second.jobs] == [jobs[1].id]
    assert second.next_cursor
    third = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(queue=queue, limit=1, cursor=second.next_cursor))
    assert [j.id for j in third.jobs] == [jobs[0].id]
    assert third.next_cursor == ""


async def test_dead_letter_paging_survives_retrying_the_page_just_read(stub: Any) -> None:
    # The operator workflow: read a page, retry what is on it, ask for the next page.
    queue = new_queue("dl-walk")
    jobs = [await dead_letter_job(stub, queue) for _ in range(3)]
    first = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(queue=queue, limit=1))
    assert [j.id for j in first.jobs] == [jobs[2].id]
    await stub.RetryDeadLetter(queue_pb2.RetryDeadLetterRequest(job_id=jobs[2].id))
    second = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(queue=queue, limit=1, cursor=first.next_cursor))
    assert [j.id for j in second.jobs] == [jobs[1].id], "the next page skipped a dead-lettered job"


async def test_dead_letter_rejects_bad_paging(stub: Any) -> None:
    error = await failure(stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(limit=5000)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "limit"
    error = await failure(stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(cursor="bogus")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "cursor"


async def test_retry_dead_letter(stub: Any) -> None:
    queue = new_queue("dl-retry")
    job = await dead_letter_job(stub, queue)
    response = await stub.RetryDeadLetter(queue_pb2.RetryDeadLetterRequest(job_id=job.id))
    retried = response.job
    assert retried.id == job.id
    assert retried.state == S.JOB_STATE_AVAILABLE
    assert retried.attempt == 0
    assert not retried.HasField("discarded_at")
    assert not retried.HasField("completed_at")
    assert [e.code for e in retried.errors] == ["boom"]
    assert (await get_job(stub, job.id)).state == S.JOB_STATE_AVAILABLE
    assert await dead_letter_ids(stub, queue=queue) == []

    again = await fetch_one(stub, queue, worker_id=new_worker())
    assert again.id == job.id
    assert again.attempt == 1
    await stub.Ack(W.AckRequest(job_id=job.id))
    assert (await get_job(stub, job.id)).state == S.JOB_STATE_COMPLETED

    error = await failure(stub.RetryDeadLetter(queue_pb2.RetryDeadLetterRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_retry_dead_letter_of_an_unknown_job_is_not_found(stub: Any) -> None:
    error = await failure(stub.RetryDeadLetter(queue_pb2.RetryDeadLetterRequest(job_id=new_uuid7())))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"


async def test_retry_dead_letter_of_a_live_job_is_not_found(stub: Any) -> None:
    job = await enqueue(stub, new_queue())
    error = await failure(stub.RetryDeadLetter(queue_pb2.RetryDeadLetterRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (await get_job(stub, job.id)).state == S.JOB_STATE_AVAILABLE


async def test_delete_dead_letter(stub: Any) -> None:
    queue = new_queue("dl-delete")
    job = await dead_letter_job(stub, queue)
    response = await stub.DeleteDeadLetter(queue_pb2.DeleteDeadLetterRequest(job_id=job.id))
    assert response.deleted is True
    assert response.job_id == job.id
    assert await dead_letter_ids(stub, queue=queue) == []
    error = await failure(stub.GetJob(job_pb2.GetJobRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    error = await failure(stub.DeleteDeadLetter(queue_pb2.DeleteDeadLetterRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"


async def test_delete_dead_letter_of_a_live_job_is_not_found(stub: Any) -> None:
    job = await enqueue(stub, new_queue())
    error = await failure(stub.DeleteDeadLetter(queue_pb2.DeleteDeadLetterRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (await get_job(stub, job.id)).state == S.JOB_STATE_AVAILABLE


async def test_dead_letter_rpcs_need_a_job_id(stub: Any) -> None:
    for call in (
        stub.RetryDeadLetter(queue_pb2.RetryDeadLetterRequest()),
        stub.DeleteDeadLetter(queue_pb2.DeleteDeadLetterRequest()),
    ):
        error = await failure(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_discarded_job_is_not_dead_lettered(stub: Any) -> None:
    queue = new_queue("dl-discard")
    job = await enqueue(stub, queue, retry={"max_attempts": 1, "on_exhaustion": "discard"})
    await fetch_one(stub, queue)
    response = await stub.Nack(W.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x", message="y")))
    assert response.state == S.JOB_STATE_DISCARDED
    assert await dead_letter_ids(stub, queue=queue) == []
    assert job.id not in await dead_letter_ids(stub)
    error = await failure(stub.RetryDeadLetter(queue_pb2.RetryDeadLetterRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_non_retryable_nack_under_dead_letter_policy_is_dead_lettered(stub: Any) -> None:
    queue = new_queue("dl-fatal")
    job = await enqueue(stub, queue, retry={"max_attempts": 5, "on_exhaustion": "dead_letter"})
    await fetch_one(stub, queue)
    response = await stub.Nack(W.NackRequest(job_id=job.id, error=job_pb2.JobError(code="fatal"), retryable=False))
    assert response.state == S.JOB_STATE_DISCARDED
    assert await dead_letter_ids(stub, queue=queue) == [job.id]
