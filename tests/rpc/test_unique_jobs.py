"""Unique jobs over a real grpc.aio channel: conflict actions, period and states from proto."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import duration_pb2
from ojs.v1 import job_pb2

from server.domain.ids import new_uuid7
from tests.rpc.calls import enqueue_reply, fetch_queue, get_job, queue_stats, value_list
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue

S = job_pb2


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
    assert (await queue_stats(stub, queue)).available == 1

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
    first = await enqueue_reply(stub, body)
    second = await enqueue_reply(stub, {**body, "id": new_uuid7()})
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
    assert [j.id for j in await fetch_queue(stub, queue)] == [second.job.id]


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
    await fetch_queue(stub, queue)
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
    error = await failure(enqueue_reply(stub, body))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"
    assert await fetch_queue(stub, queue) == []
