"""The worker registry over a real grpc.aio channel: operator directives, ListWorkers."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from ojs.v1 import worker_pb2

from server.domain.clock import now_ms
from tests.rpc.calls import enqueue, fetch, fetch_one, find_worker, heartbeat, ms_of
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue, new_worker

W = worker_pb2


async def test_operator_directive_reaches_the_worker(stub: Any) -> None:
    worker = new_worker()
    first = await heartbeat(stub, worker_id=worker, current_state=W.WORKER_STATE_RUNNING)
    assert first.directed_state == W.WORKER_STATE_RUNNING

    set_terminate = await stub.SetWorkerDirective(
        W.SetWorkerDirectiveRequest(worker_id=worker, directive=W.WORKER_STATE_TERMINATE)
    )
    assert set_terminate.worker.worker_id == worker
    assert set_terminate.worker.directive == W.WORKER_STATE_TERMINATE
    assert set_terminate.worker.state == W.WORKER_STATE_RUNNING
    assert set_terminate.worker.HasField("last_heartbeat_at")
    for _ in range(2):
        # Stays in force until an operator clears it.
        response = await heartbeat(stub, worker_id=worker, current_state=W.WORKER_STATE_RUNNING)
        assert response.directed_state == W.WORKER_STATE_TERMINATE

    await stub.SetWorkerDirective(W.SetWorkerDirectiveRequest(worker_id=worker, directive=W.WORKER_STATE_QUIET))
    assert (await heartbeat(stub, worker_id=worker)).directed_state == W.WORKER_STATE_QUIET

    cleared = await stub.SetWorkerDirective(
        W.SetWorkerDirectiveRequest(worker_id=worker, directive=W.WORKER_STATE_RUNNING)
    )
    assert cleared.worker.directive == W.WORKER_STATE_RUNNING
    assert (await heartbeat(stub, worker_id=worker)).directed_state == W.WORKER_STATE_RUNNING


async def test_directive_set_before_the_first_heartbeat_is_delivered(stub: Any) -> None:
    worker = new_worker()
    response = await stub.SetWorkerDirective(
        W.SetWorkerDirectiveRequest(worker_id=worker, directive=W.WORKER_STATE_QUIET)
    )
    assert response.worker.directive == W.WORKER_STATE_QUIET
    assert not response.worker.HasField("last_heartbeat_at")
    assert (await heartbeat(stub, worker_id=worker)).directed_state == W.WORKER_STATE_QUIET


async def test_operator_directive_applies_to_job_heartbeats_too(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(stub, queue)
    await fetch_one(stub, queue, worker_id=worker)
    await stub.SetWorkerDirective(W.SetWorkerDirectiveRequest(worker_id=worker, directive=W.WORKER_STATE_TERMINATE))
    response = await heartbeat(stub, id=job.id, worker_id=worker)
    assert response.directed_state == W.WORKER_STATE_TERMINATE


async def test_list_workers_reports_heartbeats(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    jobs = [await enqueue(stub, queue) for _ in range(2)]
    await fetch(stub, [queue], count=2, worker_id=worker)
    before = now_ms()
    await heartbeat(stub, worker_id=worker, current_state=W.WORKER_STATE_QUIET, active_job_ids=[j.id for j in jobs])
    after = now_ms()
    info = await find_worker(stub, worker)
    assert info.state == W.WORKER_STATE_QUIET
    assert info.directive == W.WORKER_STATE_RUNNING
    assert info.active_jobs == 2
    assert info.HasField("last_heartbeat_at")
    assert before <= ms_of(info.last_heartbeat_at) <= after

    await stub.SetWorkerDirective(W.SetWorkerDirectiveRequest(worker_id=worker, directive=W.WORKER_STATE_TERMINATE))
    await heartbeat(stub, worker_id=worker, current_state=W.WORKER_STATE_TERMINATE)
    info = await find_worker(stub, worker)
    assert info.state == W.WORKER_STATE_TERMINATE
    assert info.directive == W.WORKER_STATE_TERMINATE
    assert info.active_jobs == 0


async def test_list_workers_pages(stub: Any) -> None:
    prefix = f"pg-{uuid.uuid4().hex[:8]}"
    mine = [f"{prefix}-{i}" for i in range(3)]
    for worker in mine:
        await heartbeat(stub, worker_id=worker)
    seen: list[str] = []
    cursor = ""
    total = None
    for _ in range(10_000):
        page = await stub.ListWorkers(W.ListWorkersRequest(limit=1, cursor=cursor))
        assert len(page.workers) <= 1
        total = page.total
        seen.extend(w.worker_id for w in page.workers)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == total
    assert [w for w in seen if w.startswith(prefix)] == mine


async def test_list_workers_rejects_a_bad_limit(stub: Any) -> None:
    error = await failure(stub.ListWorkers(W.ListWorkersRequest(limit=5000)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_set_worker_directive_unspecified_is_invalid(stub: Any) -> None:
    error = await failure(
        stub.SetWorkerDirective(
            W.SetWorkerDirectiveRequest(worker_id=new_worker(), directive=W.WORKER_STATE_UNSPECIFIED)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(error)
    assert info.reason == "invalid_request"
    assert info.metadata["field"] == "directive"


async def test_set_worker_directive_without_a_worker_is_invalid(stub: Any) -> None:
    error = await failure(stub.SetWorkerDirective(W.SetWorkerDirectiveRequest(directive=W.WORKER_STATE_QUIET)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "worker_id"
