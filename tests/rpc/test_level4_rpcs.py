"""Level 4 over a real grpc.aio channel: batch enqueue, unique jobs, pause/resume, queue stats, manifest."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import duration_pb2, struct_pb2
from ojs.v1 import job_pb2, queue_pb2, service_pb2, worker_pb2

from server.domain.ids import is_uuid7, new_uuid7
from tests.rpc.rich_status import error_info, failure

S = job_pb2
Q = queue_pb2
W = worker_pb2


# --------------------------------------------------------------------------- helpers


def new_queue(prefix: str = "l4") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def ms_of(timestamp: Any) -> int:
    return int(timestamp.seconds * 1000 + timestamp.nanos // 1_000_000)


def value_list(items: list[Any]) -> list[struct_pb2.Value]:
    values = struct_pb2.ListValue()
    values.extend(items)
    return list(values.values)


async def enqueue_json(stub: Any, body: dict[str, Any]) -> Any:
    return await stub.Enqueue(S.EnqueueRequest(job_json=orjson.dumps(body)))


async def fetch(stub: Any, queue: str, count: int = 10) -> list[Any]:
    return list((await stub.Fetch(W.FetchRequest(queues=[queue], count=count, worker_id="l4-rpc"))).jobs)


async def get_job(stub: Any, job_id: str) -> Any:
    return (await stub.GetJob(S.GetJobRequest(job_id=job_id))).job


async def stats(stub: Any, queue: str) -> Any:
    response = await stub.QueueStats(Q.QueueStatsRequest(queue=queue))
    assert response.queue == queue
    return response.stats


async def all_queues(stub: Any) -> dict[str, Any]:
    response = await stub.ListQueues(Q.ListQueuesRequest(limit=1000))
    rows = {row.name: row for row in response.queues}
    cursor = response.next_cursor
    while cursor:
        response = await stub.ListQueues(Q.ListQueuesRequest(limit=1000, cursor=cursor))
        rows.update({row.name: row for row in response.queues})
        cursor = response.next_cursor
    return rows


# --------------------------------------------------------------------------- EnqueueBatch


async def test_enqueue_batch_with_batch_json(stub: Any) -> None:
    queue = new_queue()
    ids = [new_uuid7() for _ in range(3)]
    jobs = [
        {"id": i, "type": "batch.json", "args": [n, {"k": "v"}], "options": {"queue": queue}} for n, i in enumerate(ids)
    ]
    response = await stub.EnqueueBatch(S.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs})))
    assert response.count == 3
    assert [job.id for job in response.jobs] == ids
    assert all(job.state == S.JOB_STATE_AVAILABLE and job.queue == queue for job in response.jobs)
    assert not response.errors
    assert (await stats(stub, queue)).available == 3
    fetched = await fetch(stub, queue)
    assert [job.id for job in fetched] == ids


async def test_enqueue_batch_with_official_fields_and_default_options(stub: Any) -> None:
    queue = new_queue()
    meta = struct_pb2.Struct()
    meta.update({"tenant": "acme"})
    own_id = new_uuid7()
    request = S.EnqueueBatchRequest(
        jobs=[
            S.BatchJobEntry(type="batch.first", args=value_list([42, "x"])),
            S.BatchJobEntry(type="batch.second", args=value_list([{"n": 1}]), options=S.EnqueueOptions(priority=9)),
            S.BatchJobEntry(job_json=orjson.dumps({"id": own_id, "type": "batch.third", "args": []})),
        ],
        default_options=S.EnqueueOptions(queue=queue, priority=3, tags=["from-default"], meta=meta, max_attempts=4),
    )
    response = await stub.EnqueueBatch(request)
    assert response.count == 3
    first, second, third = response.jobs
    assert [j.type for j in response.jobs] == ["batch.first", "batch.second", "batch.third"]
    assert {j.queue for j in response.jobs} == {queue}
    assert [j.priority for j in response.jobs] == [3, 9, 3]
    assert third.id == own_id
    assert all(is_uuid7(j.id) for j in response.jobs)
    stored = await get_job(stub, first.id)
    assert list(stored.tags) == ["from-default"]
    assert stored.max_attempts == 4
    assert orjson.loads(stored.args_json) == [42, "x"]
    assert dict(stored.meta) == {"tenant": "acme"}
    assert (await get_job(stub, second.id)).priority == 9
    assert (await stats(stub, queue)).available == 3


async def test_invalid_batch_is_rejected_with_per_index_errors(stub: Any) -> None:
    queue = new_queue()
    jobs: list[dict[str, Any]] = [{"type": "batch.ok", "args": [i], "options": {"queue": queue}} for i in range(5)]
    del jobs[1]["type"]
    jobs[3]["args"] = "nope"
    error = await failure(stub.EnqueueBatch(S.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs}))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(error)
    assert info.reason == "invalid_request"
    assert info.metadata["index"] == "1"
    details = orjson.loads(info.metadata["details_json"])
    assert [e["index"] for e in details["errors"]] == [1, 3]
    assert details["errors"][0]["field"] == "type"
    assert details["errors"][1]["field"] == "args"
    assert all(e["code"] == "invalid_request" for e in details["errors"])
    assert await fetch(stub, queue) == []
    missing = await failure(stub.QueueStats(Q.QueueStatsRequest(queue=queue)))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_invalid_official_batch_entry_is_rejected(stub: Any) -> None:
    queue = new_queue()
    request = S.EnqueueBatchRequest(
        jobs=[S.BatchJobEntry(type="batch.ok"), S.BatchJobEntry(type="Not A Type")],
        default_options=S.EnqueueOptions(queue=queue),
    )
    error = await failure(stub.EnqueueBatch(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = orjson.loads(error_info(error).metadata["details_json"])
    assert [e["index"] for e in details["errors"]] == [1]
    assert await fetch(stub, queue) == []


async def test_batch_over_the_limit_is_resource_exhausted(stub: Any) -> None:
    queue = new_queue()
    jobs = [{"type": "batch.big", "args": [], "options": {"queue": queue}}] * 10_001
    error = await failure(stub.EnqueueBatch(S.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs}))))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(error)
    assert info.reason == "payload_too_large"
    assert info.metadata["max_jobs"] == "10000"
    assert await fetch(stub, queue) == []


async def test_batch_unique_conflict_is_already_exists_and_stores_nothing(stub: Any) -> None:
    queue = new_queue()
    unique = {"keys": ["type", "queue"]}
    held = (
        await enqueue_json(stub, {"type": "batch.u", "args": [], "options": {"queue": queue, "unique": unique}})
    ).job
    jobs = [
        {"type": "batch.plain", "args": [], "options": {"queue": queue}},
        {"type": "batch.u", "args": [], "options": {"queue": queue, "unique": unique}},
    ]
    error = await failure(stub.EnqueueBatch(S.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs}))))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(error)
    assert info.metadata["existing_job_id"] == held.id
    assert info.metadata["index"] == "1"
    assert (await stats(stub, queue)).available == 1


# --------------------------------------------------------------------------- unique jobs


async def test_enqueue_unique_ignore_returns_the_existing_job(stub: Any) -> None:
    queue = new_queue()
    request = S.EnqueueRequest(
        type="unique.ignore",
        args=value_list([{"user_id": 42, "note": "first"}]),
        options=S.EnqueueOptions(
            queue=queue,
            unique=S.UniquePolicy(
                key=["type", "args"], args_keys=["user_id"], on_conflict=S.UNIQUE_CONFLICT_ACTION_IGNORE
            ),
        ),
    )
    first = await stub.Enqueue(request)
    assert first.deduplicated is False
    assert first.job.state == S.JOB_STATE_AVAILABLE

    request.args[0].struct_value["note"] = "second"
    second = await stub.Enqueue(request)
    assert second.deduplicated is True
    assert second.job.id == first.job.id
    assert second.job.state == S.JOB_STATE_AVAILABLE
    assert orjson.loads(second.job.args_json) == [{"user_id": 42, "note": "first"}]
    assert (await stats(stub, queue)).available == 1

    other_user = S.EnqueueRequest()
    other_user.CopyFrom(request)
    other_user.args[0].struct_value["user_id"] = 43
    third = await stub.Enqueue(other_user)
    assert third.deduplicated is False
    assert third.job.id != first.job.id


async def test_enqueue_unique_use_existing_in_job_json(stub: Any) -> None:
    queue = new_queue()
    body = {
        "type": "unique.json",
        "args": [{"order": "o-1"}],
        "options": {"queue": queue, "unique": {"args_keys": ["order"], "on_conflict": "use_existing"}},
    }
    first = await enqueue_json(stub, body)
    second = await enqueue_json(stub, {**body, "id": new_uuid7()})
    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert second.job.id == first.job.id


async def test_enqueue_unique_reject_is_already_exists(stub: Any) -> None:
    queue = new_queue()
    request = S.EnqueueRequest(
        type="unique.reject",
        args=value_list([{"user_id": 1}]),
        options=S.EnqueueOptions(queue=queue, unique=S.UniquePolicy(args_keys=["user_id"])),
    )
    first = await stub.Enqueue(request)
    error = await failure(stub.Enqueue(request))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(error)
    assert info.reason == "duplicate"
    assert info.metadata["existing_job_id"] == first.job.id
    assert info.metadata["existing_job_state"] == "available"


async def test_enqueue_unique_replace_cancels_the_old_job(stub: Any) -> None:
    queue = new_queue()
    request = S.EnqueueRequest(
        type="unique.replace",
        args=value_list([{"user_id": 1}]),
        options=S.EnqueueOptions(
            queue=queue,
            unique=S.UniquePolicy(args_keys=["user_id"], on_conflict=S.UNIQUE_CONFLICT_ACTION_REPLACE),
        ),
    )
    first = await stub.Enqueue(request)
    second = await stub.Enqueue(request)
    assert second.deduplicated is False
    assert second.job.id != first.job.id
    assert (await get_job(stub, first.job.id)).state == S.JOB_STATE_CANCELLED
    assert [j.id for j in await fetch(stub, queue)] == [second.job.id]


async def test_enqueue_unique_period_and_states_from_proto(stub: Any) -> None:
    queue = new_queue()
    request = S.EnqueueRequest(
        type="unique.states",
        args=value_list([]),
        options=S.EnqueueOptions(
            queue=queue,
            unique=S.UniquePolicy(states=[S.JOB_STATE_AVAILABLE], period=duration_pb2.Duration(seconds=3600)),
        ),
    )
    first = await stub.Enqueue(request)
    assert (await failure(stub.Enqueue(request))).code() == grpc.StatusCode.ALREADY_EXISTS
    await fetch(stub, queue)
    second = await stub.Enqueue(request)
    assert second.job.id != first.job.id


@pytest.mark.parametrize(
    "unique",
    [
        {"keys": ["argz"]},
        {"keys": ["meta"]},
        {"args_keys": ["absent"]},
        {"states": ["done"]},
        {"period": "soon"},
        {"on_conflict": "merge"},
        {"on_conflict": ["reject"]},
    ],
    ids=["dimension", "meta-keys", "args-keys", "states", "period", "action", "action-not-a-string"],
)
async def test_invalid_unique_policy_is_invalid_argument(stub: Any, unique: dict[str, Any]) -> None:
    queue = new_queue()
    body = {"type": "unique.bad", "args": [{"present": 1}], "options": {"queue": queue, "unique": unique}}
    error = await failure(enqueue_json(stub, body))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"
    assert await fetch(stub, queue) == []


# --------------------------------------------------------------------------- pause and resume


async def test_pause_and_resume_report_queue_info(stub: Any) -> None:
    queue = new_queue()
    await enqueue_json(stub, {"type": "pause.job", "args": [], "options": {"queue": queue}})
    before = int(time.time() * 1000)
    paused = (await stub.PauseQueue(Q.PauseQueueRequest(queue=queue))).queue
    assert paused.name == queue
    assert paused.paused is True
    assert paused.HasField("paused_at")
    assert before - 1000 <= ms_of(paused.paused_at) <= int(time.time() * 1000) + 1000
    assert paused.available_count == 1
    assert paused.HasField("created_at")

    again = (await stub.PauseQueue(Q.PauseQueueRequest(queue=queue))).queue
    assert again.paused is True
    assert ms_of(again.paused_at) == ms_of(paused.paused_at)

    accepted = await enqueue_json(stub, {"type": "pause.job", "args": [], "options": {"queue": queue}})
    assert accepted.job.state == S.JOB_STATE_AVAILABLE
    assert await fetch(stub, queue) == []
    listed = (await all_queues(stub))[queue]
    assert listed.paused is True
    assert ms_of(listed.paused_at) == ms_of(paused.paused_at)
    assert listed.available_count == 2
    assert (await stats(stub, queue)).paused is True

    resumed = (await stub.ResumeQueue(Q.ResumeQueueRequest(queue=queue))).queue
    assert resumed.name == queue
    assert resumed.paused is False
    assert not resumed.HasField("paused_at")
    assert resumed.available_count == 2
    assert len(await fetch(stub, queue)) == 2
    listed = (await all_queues(stub))[queue]
    assert listed.paused is False
    assert not listed.HasField("paused_at")


async def test_pause_rejects_a_bad_queue_name(stub: Any) -> None:
    for name in ("", "Upper Case"):
        error = await failure(stub.PauseQueue(Q.PauseQueueRequest(queue=name)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = await failure(stub.ResumeQueue(Q.ResumeQueueRequest(queue="")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# --------------------------------------------------------------------------- queue stats


async def test_queue_stats_fields(stub: Any) -> None:
    queue = new_queue()

    async def put(**options: Any) -> Any:
        return (await enqueue_json(stub, {"type": "stats.job", "args": [], "options": {"queue": queue, **options}})).job

    done, failed, cancelled, waiting = [await put() for _ in range(4)]
    await put(scheduled_at="+PT1H")
    await put(pending=True)
    first = await stats(stub, queue)
    assert (first.available, first.active, first.scheduled, first.pending) == (4, 0, 1, 1)
    assert (first.completed, first.discarded, first.cancelled, first.completed_last_hour) == (0, 0, 0, 0)

    fetched = await fetch(stub, queue, count=2)
    assert [j.id for j in fetched] == [done.id, failed.id]
    middle = await stats(stub, queue)
    assert (middle.available, middle.active) == (2, 2)

    await stub.Ack(W.AckRequest(job_id=done.id))
    await stub.Nack(W.NackRequest(job_id=failed.id, error=S.JobError(code="boom", message="x"), retryable=False))
    await stub.CancelJob(S.CancelJobRequest(job_id=cancelled.id))
    final = await stats(stub, queue)
    assert (final.available, final.active, final.scheduled, final.pending, final.retryable, final.dead) == (
        1,
        0,
        1,
        1,
        0,
        0,
    )
    assert (final.completed, final.discarded, final.cancelled) == (1, 1, 1)
    assert final.completed_last_hour == 1
    assert final.failed_last_hour == 1
    assert final.avg_duration_ms >= 0
    assert final.avg_wait_ms >= 0
    assert final.throughput_per_second >= 0
    assert final.paused is False
    assert (await get_job(stub, waiting.id)).state == S.JOB_STATE_AVAILABLE


async def test_queue_stats_of_an_unknown_queue_is_not_found(stub: Any) -> None:
    error = await failure(stub.QueueStats(Q.QueueStatsRequest(queue=new_queue("never"))))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"
    bad = await failure(stub.QueueStats(Q.QueueStatsRequest(queue="Bad Name")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_queue_stats_after_a_batch(stub: Any) -> None:
    queue = new_queue()
    jobs = [{"type": "stats.batch", "args": [i], "options": {"queue": queue}} for i in range(100)]
    await stub.EnqueueBatch(S.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs})))
    assert (await stats(stub, queue)).available == 100


# --------------------------------------------------------------------------- manifest


async def test_manifest_declares_level_4_with_strong_uniqueness(stub: Any) -> None:
    call = stub.Manifest(service_pb2.ManifestRequest())
    response = await call
    assert response.conformance_level == 4
    document = orjson.loads(response.manifest_json)
    assert document["conformance_level"] == 4
    assert document["unique_job_strength"] == "strong"
    capabilities = document["capabilities"]
    for name in ("unique_jobs", "batch_enqueue", "pause_resume", "rate_limiting", "priority_queues"):
        assert capabilities[name] is True, name
    trailers = dict(await call.trailing_metadata())
    assert trailers["x-ojs-conformance-level"] == "4"
