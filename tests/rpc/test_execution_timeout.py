"""Execution timeouts over a real grpc.aio channel."""

from __future__ import annotations

from typing import Any

import grpc
from ojs.v1 import job_pb2, worker_pb2

from tests.rpc.calls import (
    Clocked,
    dead_letter_ids,
    enqueue,
    extend,
    fetch_one,
    get_job,
    heartbeat,
    ms_of,
    wait_for_state,
)
from tests.rpc.rich_status import failure
from tests.support import new_queue, new_worker, wait_for

S = job_pb2
W = worker_pb2


async def test_execution_timeout_discards_the_job(clocked: Clocked) -> None:
    stub = clocked.stub
    queue = new_queue("timeout")
    job = await enqueue(stub, queue, timeout_ms=1000, retry={"max_attempts": 1})
    fetched = await fetch_one(stub, queue, worker_id=new_worker(), visibility_timeout_ms=600_000)
    assert ms_of(fetched.lease_expires_at) == clocked.clock.now_ms() + 600_000
    clocked.clock.advance(1_000)
    discarded = await wait_for_state(stub, job.id, S.JOB_STATE_DISCARDED)
    assert discarded.error.type == "timeout"
    assert discarded.error.code == "timeout"
    assert discarded.error.attempt == 1
    assert not discarded.HasField("lease_expires_at")
    error = await failure(stub.Ack(W.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_execution_timeout_is_not_extended_by_heartbeats(clocked: Clocked) -> None:
    stub, clock = clocked.stub, clocked.clock
    queue = new_queue("timeout")
    worker = new_worker()
    job = await enqueue(stub, queue, timeout_ms=1000, retry={"max_attempts": 1, "on_exhaustion": "dead_letter"})
    await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=600_000)

    async def discarded() -> Any:
        clock.advance(250)
        await heartbeat(stub, worker_id=worker, active_job_ids=[job.id], extend_by=extend(600))
        stored = await get_job(stub, job.id)
        return stored if stored.state == S.JOB_STATE_DISCARDED else None

    stored = await wait_for(discarded)
    assert stored.error.type == "timeout"
    assert await dead_letter_ids(stub, queue=queue) == [job.id]
