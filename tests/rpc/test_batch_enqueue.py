"""EnqueueBatch over a real grpc.aio channel: both request forms, per-index errors, limits."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
from google.protobuf import struct_pb2
from ojs.v1 import job_pb2, queue_pb2

from server.domain.ids import is_uuid7, new_uuid7
from tests.rpc.calls import enqueue_reply, fetch_queue, get_job, queue_stats, value_list
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue

S = job_pb2
Q = queue_pb2


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
    assert (await queue_stats(stub, queue)).available == 3
    fetched = await fetch_queue(stub, queue)
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
    assert (await queue_stats(stub, queue)).available == 3


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
    assert await fetch_queue(stub, queue) == []
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
    assert await fetch_queue(stub, queue) == []


async def test_batch_over_the_limit_is_resource_exhausted(stub: Any) -> None:
    queue = new_queue()
    jobs = [{"type": "batch.big", "args": [], "options": {"queue": queue}}] * 10_001
    error = await failure(stub.EnqueueBatch(S.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs}))))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(error)
    assert info.reason == "payload_too_large"
    assert info.metadata["max_jobs"] == "10000"
    assert await fetch_queue(stub, queue) == []


async def test_batch_unique_conflict_is_already_exists_and_stores_nothing(stub: Any) -> None:
    queue = new_queue()
    unique = {"keys": ["type", "queue"]}
    held = (
        await enqueue_reply(stub, {"type": "batch.u", "args": [], "options": {"queue": queue, "unique": unique}})
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
    assert (await queue_stats(stub, queue)).available == 1
