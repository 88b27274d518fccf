"""Level 1 (reliable delivery) over a real grpc.aio channel: leases, heartbeats, workers, dead letter, timeouts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import duration_pb2
from ojs.v1 import job_pb2, queue_pb2, service_pb2, worker_pb2

from server.domain.ids import new_uuid7
from tests.rpc.rich_status import error_info, failure

S = job_pb2
W = worker_pb2

# Background loops tick every 250 ms; anything they must do is given this long.
SETTLE_S = 5.0


# --------------------------------------------------------------------------- helpers


def new_queue(prefix: str = "l1") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_worker(prefix: str = "worker") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms_of(timestamp: Any) -> int:
    return int(timestamp.seconds * 1000 + timestamp.nanos // 1_000_000)


async def enqueue_json(stub: Any, body: dict[str, Any]) -> Any:
    response = await stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(body)))
    return response.job


async def enqueue(stub: Any, queue: str, *, job_type: str = "test.echo", **options: Any) -> Any:
    return await enqueue_json(stub, {"type": job_type, "args": [], "options": {"queue": queue, **options}})


async def fetch(
    stub: Any, queues: list[str], *, count: int = 1, worker_id: str = "", visibility_timeout_ms: int | None = None
) -> list[Any]:
    request = W.FetchRequest(queues=queues, count=count, worker_id=worker_id)
    if visibility_timeout_ms is not None:
        request.visibility_timeout_ms = visibility_timeout_ms
    return list((await stub.Fetch(request)).jobs)


async def fetch_one(stub: Any, queue: str, **kwargs: Any) -> Any:
    [job] = await fetch(stub, [queue], **kwargs)
    return job


async def get_job(stub: Any, job_id: str) -> Any:
    return (await stub.GetJob(job_pb2.GetJobRequest(job_id=job_id))).job


async def wait_for(check: Callable[[], Awaitable[Any]], *, seconds: float = SETTLE_S) -> Any:
    """Poll until `check` returns something truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.05)


async def wait_for_state(stub: Any, job_id: str, state: int, *, seconds: float = SETTLE_S) -> Any:
    async def check() -> Any:
        job = await get_job(stub, job_id)
        return job if job.state == state else None

    return await wait_for(check, seconds=seconds)


def extend(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


async def heartbeat(stub: Any, **fields: Any) -> Any:
    return await stub.Heartbeat(W.HeartbeatRequest(**fields))


async def all_workers(stub: Any) -> list[Any]:
    workers: list[Any] = []
    cursor = ""
    while True:
        page = await stub.ListWorkers(W.ListWorkersRequest(limit=1000, cursor=cursor))
        workers.extend(page.workers)
        if not page.next_cursor:
            return workers
        cursor = page.next_cursor


async def find_worker(stub: Any, worker_id: str) -> Any:
    matches = [w for w in await all_workers(stub) if w.worker_id == worker_id]
    assert len(matches) == 1, f"worker {worker_id} listed {len(matches)} times"
    return matches[0]


DEAD_LETTER_RETRY = {"max_attempts": 1, "on_exhaustion": "dead_letter"}


async def dead_letter_job(stub: Any, queue: str, *, job_type: str = "dl.job", code: str = "boom") -> Any:
    """A job that exhausted its single attempt under on_exhaustion=dead_letter."""
    job = await enqueue(stub, queue, job_type=job_type, retry=DEAD_LETTER_RETRY)
    await fetch_one(stub, queue)
    response = await stub.Nack(W.NackRequest(job_id=job.id, error=job_pb2.JobError(code=code, message=f"{code}!")))
    assert response.state == S.JOB_STATE_DISCARDED
    return response.job


async def dead_letter_ids(stub: Any, **filters: Any) -> list[str]:
    response = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(limit=1000, **filters))
    return [job.id for job in response.jobs]


# --------------------------------------------------------------------------- lease tokens


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


async def test_late_ack_after_the_lease_expired_is_rejected(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue(stub, queue)
    worker_a, worker_b = new_worker("a"), new_worker("b")
    first = await fetch_one(stub, queue, worker_id=worker_a, visibility_timeout_ms=1000)
    assert first.worker_id == worker_a

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


async def test_expired_lease_on_the_last_attempt_dead_letters(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue(stub, queue, retry=DEAD_LETTER_RETRY)
    await fetch_one(stub, queue, visibility_timeout_ms=1000)
    discarded = await wait_for_state(stub, job.id, S.JOB_STATE_DISCARDED)
    assert discarded.error.type == "visibility_timeout"
    assert job.id in await dead_letter_ids(stub, queue=queue)


# --------------------------------------------------------------------------- heartbeats


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


async def test_heartbeats_keep_a_short_lease_alive(stub: Any) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(stub, queue)
    fetched = await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=1000)
    # Three lease lengths, heartbeating well inside each.
    until = time.monotonic() + 3.0
    while time.monotonic() < until:
        response = await heartbeat(stub, worker_id=worker, active_job_ids=[job.id], extend_by=extend(1))
        assert list(response.jobs_extended) == [job.id]
        await asyncio.sleep(0.3)
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


# --------------------------------------------------------------------------- worker directives and registry


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


# --------------------------------------------------------------------------- dead letter


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


# --------------------------------------------------------------------------- execution timeout


async def test_execution_timeout_discards_the_job(stub: Any) -> None:
    queue = new_queue("timeout")
    job = await enqueue(stub, queue, timeout_ms=1000, retry={"max_attempts": 1})
    fetched = await fetch_one(stub, queue, worker_id=new_worker(), visibility_timeout_ms=600_000)
    assert ms_of(fetched.lease_expires_at) >= now_ms() + 500_000
    discarded = await wait_for_state(stub, job.id, S.JOB_STATE_DISCARDED)
    assert discarded.error.type == "timeout"
    assert discarded.error.code == "timeout"
    assert discarded.error.attempt == 1
    assert not discarded.HasField("lease_expires_at")
    error = await failure(stub.Ack(W.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_execution_timeout_is_not_extended_by_heartbeats(stub: Any) -> None:
    queue = new_queue("timeout")
    worker = new_worker()
    job = await enqueue(stub, queue, timeout_ms=1000, retry={"max_attempts": 1, "on_exhaustion": "dead_letter"})
    await fetch_one(stub, queue, worker_id=worker, visibility_timeout_ms=600_000)

    async def discarded() -> Any:
        await heartbeat(stub, worker_id=worker, active_job_ids=[job.id], extend_by=extend(600))
        stored = await get_job(stub, job.id)
        return stored if stored.state == S.JOB_STATE_DISCARDED else None

    stored = await wait_for(discarded)
    assert stored.error.type == "timeout"
    assert await dead_letter_ids(stub, queue=queue) == [job.id]


# --------------------------------------------------------------------------- manifest


async def test_manifest_reports_the_implemented_level(stub: Any) -> None:
    call = stub.Manifest(service_pb2.ManifestRequest())
    response = await call
    assert response.conformance_level == 4
    document = orjson.loads(response.manifest_json)
    assert document["conformance_level"] == 4
    assert document["capabilities"]["dead_letter"] is True
    assert document["capabilities"]["cron_jobs"] is True
    trailers = dict(await call.trailing_metadata())
    assert trailers["x-ojs-conformance-level"] == "4"
