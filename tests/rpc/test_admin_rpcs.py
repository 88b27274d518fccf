"""OJSAdminService over a real gRPC channel: the same answers and errors as the admin routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from ojs.v1 import admin_pb2, admin_pb2_grpc, job_pb2, worker_pb2

from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue


@pytest.fixture
async def admin(grpc_target: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield admin_pb2_grpc.OJSAdminServiceStub(channel)


async def test_list_retry_and_bulk_over_grpc(admin: Any, stub: Any) -> None:
    queue = new_queue("rpc-adm")
    ids = []
    for _ in range(3):
        reply = await stub.Enqueue(
            job_pb2.EnqueueRequest(type="rpc.admin", options=job_pb2.EnqueueOptions(queue=queue))
        )
        ids.append(reply.job.id)
    listing = await admin.ListJobs(
        admin_pb2.ListJobsRequest(filter=admin_pb2.JobFilter(state=job_pb2.JOB_STATE_AVAILABLE, queue=queue), limit=2)
    )
    assert [row.id for row in listing.jobs] == ids[:0:-1] and listing.total == 3 and listing.next_cursor
    rest = await admin.ListJobs(
        admin_pb2.ListJobsRequest(
            filter=admin_pb2.JobFilter(state=job_pb2.JOB_STATE_AVAILABLE, queue=queue),
            limit=2,
            cursor=listing.next_cursor,
        )
    )
    assert [row.id for row in rest.jobs] == ids[:1]

    await stub.Fetch(worker_pb2.FetchRequest(queues=[queue], count=1, worker_id="rpc-w"))
    bulk = await admin.BulkJobs(
        admin_pb2.BulkJobsRequest(
            action=admin_pb2.BULK_ACTION_CANCEL,
            filter=admin_pb2.JobFilter(state=job_pb2.JOB_STATE_AVAILABLE, queue=queue),
            confirm=True,
        )
    )
    assert (bulk.matched, bulk.succeeded) == (2, 2)
    retried = await admin.RetryJob(admin_pb2.RetryJobRequest(job_id=ids[1]))
    assert retried.job.state == job_pb2.JOB_STATE_AVAILABLE and retried.job.attempt == 0

    summary = await admin.GetQueueSummary(admin_pb2.GetQueueSummaryRequest(queue=queue))
    assert (summary.queue.counts.available, summary.queue.counts.active, summary.queue.counts.cancelled) == (1, 1, 1)


async def test_admin_errors_carry_error_info(admin: Any) -> None:
    error = await failure(admin.ListJobs(admin_pb2.ListJobsRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error_info(error).reason == "invalid_request"
    error = await failure(admin.PurgeDeadLetter(admin_pb2.PurgeDeadLetterRequest(confirm=False)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = await failure(
        admin.GetWorkerDetail(admin_pb2.GetWorkerDetailRequest(worker_id="nobody-" + uuid.uuid4().hex))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND and error_info(error).reason == "not_found"
