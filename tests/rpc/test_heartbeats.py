"""Worker and per-job heartbeats over a real grpc.aio channel: lease extension, job directives."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import duration_pb2
from ojs.v1 import job_pb2, worker_pb2

from server.domain.clock import now_ms
from server.domain.ids import new_uuid7
from tests.rpc.calls import (
    Clocked,
    enqueue,
    enqueue_json,
    extend,
    fetch,
    fetch_one,
    get_job,
    heartbeat,
    ms_of,
    wait_for_state,
)
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue, new_worker

S = job_pb2
W = worker_pb2


async def test_worker_heartbeat_extends_held_leases(stub: Any) -> None:
    queue = new_queue()
    worker, other = new_worker(), new_worker("other")
    mine, cancelled, theirs = [await enqueue(stub, queue) for _ in range(3)]
    await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=2000)
    await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=2000)
    await fetch_one(stub, queue, worker_id=other, visibility_timeout_ms=2000)
    await stub.CancelJob(job_pb2.CancelJobRequest(job_id=cancelled.id))
    unknown = new_uuid7()

    before = now_ms()
    response = await heartbeat(
        stub,
        worker_id=worker,
        active_job_ids=[mine.id, cancelled.id, theirs.id, unknown],
        extend_by=extend(60),
        current_state=W.WORKER_STATE_RUNNING,
    )
    after = now_ms()
    assert response.directed_state == W.WORKER_STATE_RUNNING
    assert list(response.jobs_extended) == [mine.id]
    assert list(response.jobs_cancelled) == [cancelled.id]
    assert list(response.jobs_not_held) == [theirs.id, unknown]
    assert before + 60_000 <= ms_of(response.new_deadline) <= after + 60_000
    assert before <= ms_of(response.server_time) <= after

    extended = await get_job(stub, mine.id)
    assert extended.state == S.JOB_STATE_ACTIVE
    assert ms_of(extended.lease_expires_at) == ms_of(response.new_deadline)
    # The other worker's lease was left alone.
    assert ms_of((await get_job(stub, theirs.id)).lease_expires_at) < before + 3000


async def test_heartbeat_without_extend_by_uses_the_job_visibility_timeout(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(stub, queue, visibility_timeout_ms=20_000)
    await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=2000)
    before = now_ms()
    response = await heartbeat(stub, worker_id=worker, active_job_ids=[job.id])
    after = now_ms()
    assert list(response.jobs_extended) == [job.id]
    assert before + 20_000 <= ms_of(response.new_deadline) <= after + 20_000


async def test_heartbeats_keep_a_short_lease_alive(clocked: Clocked) -> None:
    stub, clock = clocked.stub, clocked.clock
    queue, control_queue = new_queue(), new_queue("control")
    worker = new_worker()
    job = await enqueue(stub, queue)
    fetched = await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=1000)
    # Three lease lengths, heartbeating well inside each.
    for _ in range(3):
        clock.advance(700)
        response = await heartbeat(stub, worker_id=worker, active_job_ids=[job.id], extend_by=extend(1))
        assert list(response.jobs_extended) == [job.id]
    # A job without heartbeats whose lease ends before the last extension: once the reaper has requeued it,
    # the reaper has run at a time the heartbeated job would be long expired without its heartbeats.
    control = await enqueue(stub, control_queue)
    await fetch_one(stub, control_queue, worker_id=new_worker(), visibility_timeout_ms=500)
    clock.advance(900)
    await wait_for_state(stub, control.id, S.JOB_STATE_AVAILABLE)
    stored = await get_job(stub, job.id)
    assert stored.state == S.JOB_STATE_ACTIVE
    assert stored.attempt == 1
    assert list(stored.errors) == []
    ack = await stub.Ack(W.AckRequest(job_id=job.id, worker_id=worker, lease_token=fetched.lease_token))
    assert ack.job.state == S.JOB_STATE_COMPLETED


async def test_heartbeat_without_jobs_has_no_deadline(stub: Any) -> None:
    response = await heartbeat(stub, worker_id=new_worker())
    assert response.directed_state == W.WORKER_STATE_RUNNING
    assert not response.HasField("new_deadline")
    assert response.HasField("server_time")
    assert list(response.jobs_extended) == []


async def test_heartbeat_with_a_non_positive_extension_is_invalid(stub: Any) -> None:
    error = await failure(heartbeat(stub, worker_id=new_worker(), extend_by=duration_pb2.Duration(seconds=0)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"


async def test_heartbeat_with_a_malformed_job_id_is_invalid(stub: Any) -> None:
    error = await failure(heartbeat(stub, worker_id=new_worker(), active_job_ids=["not-a-job-id"]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"


async def test_per_job_heartbeat_by_the_holder(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(stub, queue)
    fetched = await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=2000)
    before = now_ms()
    response = await heartbeat(stub, id=job.id, worker_id=worker, extend_by=extend(45))
    after = now_ms()
    assert list(response.jobs_extended) == [job.id]
    assert response.directed_state == W.WORKER_STATE_RUNNING
    assert before + 45_000 <= ms_of(response.new_deadline) <= after + 45_000
    assert ms_of((await get_job(stub, job.id)).lease_expires_at) == ms_of(response.new_deadline)

    with_token = await heartbeat(
        stub, id=job.id, worker_id=worker, extend_by=extend(45), lease_token=fetched.lease_token
    )
    assert list(with_token.jobs_extended) == [job.id]


async def test_per_job_heartbeat_by_another_worker_is_a_conflict(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue(stub, queue)
    fetched = await fetch_one(stub, queue, worker_id=new_worker("holder"), visibility_timeout_ms=2000)
    error = await failure(heartbeat(stub, id=job.id, worker_id=new_worker("intruder"), extend_by=extend(60)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "active"
    # The lease was not extended.
    assert ms_of((await get_job(stub, job.id)).lease_expires_at) == ms_of(fetched.lease_expires_at)


async def test_per_job_heartbeat_with_a_stale_lease_token_is_a_conflict(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(stub, queue)
    fetched = await fetch_one(stub, queue, worker_id=worker)
    error = await failure(
        heartbeat(stub, id=job.id, worker_id=worker, extend_by=extend(60), lease_token=fetched.lease_token + 5)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "conflict"


async def test_per_job_heartbeat_of_an_unknown_job_is_not_found(stub: Any) -> None:
    error = await failure(heartbeat(stub, id=new_uuid7(), worker_id=new_worker(), extend_by=extend(60)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"


async def test_per_job_heartbeat_of_a_finished_job_is_a_conflict(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(stub, queue)
    await fetch_one(stub, queue, worker_id=worker)
    await stub.Ack(W.AckRequest(job_id=job.id, worker_id=worker))
    error = await failure(heartbeat(stub, id=job.id, worker_id=worker))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "completed"


@pytest.mark.parametrize(
    ("directive", "expected"), [("quiet", W.WORKER_STATE_QUIET), ("terminate", W.WORKER_STATE_TERMINATE)]
)
async def test_job_test_directive_is_relayed_on_heartbeat(stub: Any, directive: str, expected: int) -> None:
    queue = new_queue()
    worker = new_worker()
    body = {"type": "test.echo", "args": [], "options": {"queue": queue, "metadata": {"test_directive": directive}}}
    job = await enqueue_json(stub, body)
    assert orjson.loads(job.meta_json)["test_directive"] == directive
    await fetch_one(stub, queue, worker_id=worker)
    response = await heartbeat(stub, worker_id=worker, active_job_ids=[job.id])
    assert response.directed_state == expected
    assert list(response.jobs_extended) == [job.id]
    per_job = await heartbeat(stub, id=job.id, worker_id=worker)
    assert per_job.directed_state == expected


async def test_the_strongest_job_directive_wins(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    ids = []
    for directive in ("quiet", "terminate", None):
        options: dict[str, Any] = {"queue": queue}
        if directive:
            options["metadata"] = {"test_directive": directive}
        ids.append((await enqueue_json(stub, {"type": "test.echo", "args": [], "options": options})).id)
    await fetch(stub, [queue], count=3, worker_id=worker)
    response = await heartbeat(stub, worker_id=worker, active_job_ids=ids)
    assert response.directed_state == W.WORKER_STATE_TERMINATE
