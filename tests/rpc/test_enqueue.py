"""Enqueue and GetJob over a real grpc.aio channel: both request forms, options, validation errors."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import duration_pb2, json_format, struct_pb2
from ojs.v1 import job_pb2

from server.domain.clock import now_ms
from server.domain.ids import is_uuid7, new_uuid7
from tests.rpc.calls import (
    canonical,
    canonical_of,
    enqueue_json,
    enqueue_simple,
    fetch,
    ms_of,
    value_list,
    values_to_python,
)
from tests.rpc.rich_status import error_details, error_info, failure
from tests.support import new_queue

S = job_pb2


# --------------------------------------------------------------------------- enqueue


async def test_enqueue_with_official_fields(stub: Any) -> None:
    queue = new_queue()
    args = ["user@example.com", 2.5, {"template": "welcome", "tags": [-0.5, "x"]}, None, True, []]
    request = job_pb2.EnqueueRequest(
        type="email.send",
        args=value_list(args),
        options=job_pb2.EnqueueOptions(
            queue=queue,
            priority=7,
            retry=job_pb2.RetryPolicy(
                max_attempts=5,
                initial_interval=duration_pb2.Duration(seconds=2),
                backoff_coefficient=3.0,
                max_interval=duration_pb2.Duration(seconds=60),
                jitter=False,
            ),
        ),
    )
    job = (await stub.Enqueue(request)).job
    assert is_uuid7(job.id)
    assert job.type == "email.send"
    assert job.queue == queue
    assert job.state == S.JOB_STATE_AVAILABLE
    assert job.priority == 7
    assert job.attempt == 0
    assert job.max_attempts == 5
    assert job.specversion == "1.0"
    # A Struct has no key order, so compare with sorted keys.
    assert canonical(job.args_json) == canonical_of(args)
    assert values_to_python(job.args) == args
    assert list(job.args) == list(request.args)
    policy = job.retry_policy
    assert policy.max_attempts == 5
    assert policy.initial_interval.seconds == 2
    assert policy.backoff_coefficient == 3.0
    assert policy.max_interval.seconds == 60
    assert policy.jitter is False
    assert job.HasField("created_at")
    assert job.HasField("enqueued_at")
    for absent in ("started_at", "completed_at", "error", "result"):
        assert not job.HasField(absent), absent
    assert abs(ms_of(job.created_at) - now_ms()) < 60_000
    stored = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert stored.args_json == job.args_json


async def test_official_integer_args_stay_integers(stub: Any) -> None:
    # A Value number holding an integral double is the JSON integer the client meant:
    # canonical JSON keeps `3`, not `3.0` (SPEC-GUIDE §1.2: ints stay ints).
    args = [3, -7, 0, {"count": 2, "ids": [10, 20]}, 1.5]
    request = job_pb2.EnqueueRequest(
        type="email.send", args=value_list(args), options=job_pb2.EnqueueOptions(queue=new_queue())
    )
    job = (await stub.Enqueue(request)).job
    assert canonical(job.args_json) == canonical_of(args)
    assert type(orjson.loads(job.args_json)[0]) is int


async def test_enqueue_with_job_json(stub: Any) -> None:
    queue = new_queue()
    args = [1, "two", {"three": 3.5, "list": [True, None]}, 2**53 + 1, -0.25, []]
    body = {
        "type": "report.generate",
        "args": args,
        "meta": {"tenant": "acme"},
        "custom_field": {"kept": [1, 2]},
        "options": {"queue": queue, "priority": -5, "tags": ["a", "b"]},
    }
    job = await enqueue_json(stub, body)
    assert is_uuid7(job.id)
    assert job.state == S.JOB_STATE_AVAILABLE
    assert job.queue == queue
    assert job.priority == -5
    assert list(job.tags) == ["a", "b"]
    assert job.args_json == orjson.dumps(args)
    assert orjson.loads(job.args_json)[3] == 2**53 + 1
    python_args = values_to_python(job.args)
    assert python_args[:3] == args[:3]
    assert python_args[4:] == args[4:]
    assert orjson.loads(job.meta_json) == {"tenant": "acme"}
    assert json_format.MessageToDict(job.meta) == {"tenant": "acme"}
    assert orjson.loads(job.extra_json) == {"custom_field": {"kept": [1, 2]}}


async def test_enqueue_keeps_the_client_id(stub: Any) -> None:
    job_id = new_uuid7()
    job = await enqueue_json(stub, {"id": job_id, "type": "test.echo", "args": [], "options": {"queue": new_queue()}})
    assert job.id == job_id


async def test_enqueue_response_matches_get_job(stub: Any) -> None:
    body = {
        "type": "test.echo",
        "args": [{"a": 1}],
        "meta": {"m": True},
        "extra": "x",
        "options": {
            "queue": new_queue(),
            "priority": 3,
            "tags": ["t"],
            "timeout_ms": 5000,
            "retry": {"max_attempts": 4},
        },
    }
    enqueued = await enqueue_json(stub, body)
    fetched = (await stub.GetJob(job_pb2.GetJobRequest(job_id=enqueued.id))).job
    assert fetched == enqueued


async def test_enqueue_official_options(stub: Any) -> None:
    queue = new_queue()
    meta = struct_pb2.Struct()
    meta.update({"tenant": "acme"})
    request = job_pb2.EnqueueRequest(
        type="test.echo",
        options=job_pb2.EnqueueOptions(
            queue=queue,
            max_attempts=2,
            tags=["x"],
            meta=meta,
            trace_id="trace-1",
            timeout=duration_pb2.Duration(seconds=30),
            visibility_timeout=duration_pb2.Duration(seconds=45),
        ),
    )
    job = (await stub.Enqueue(request)).job
    assert job.max_attempts == 2
    assert job.retry_policy.max_attempts == 2
    assert list(job.tags) == ["x"]
    assert orjson.loads(job.meta_json) == {"tenant": "acme", "trace_id": "trace-1"}
    assert job.trace_id == "trace-1"
    assert job.timeout.seconds == 30
    assert job.visibility_timeout.seconds == 45
    assert job.args_json == b"[]"


async def test_enqueue_official_delay_and_pending(stub: Any) -> None:
    queue = new_queue()
    later = job_pb2.EnqueueOptions(queue=queue)
    later.delay_until.FromMilliseconds(now_ms() + 3_600_000)
    scheduled = (await stub.Enqueue(job_pb2.EnqueueRequest(type="test.echo", options=later))).job
    assert scheduled.state == S.JOB_STATE_SCHEDULED
    pending = (
        await stub.Enqueue(
            job_pb2.EnqueueRequest(type="test.echo", options=job_pb2.EnqueueOptions(queue=queue, pending=True))
        )
    ).job
    assert pending.state == S.JOB_STATE_PENDING
    assert await fetch(stub, [queue]) == []


async def test_get_job_is_read_only(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    bodies = [
        (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job.SerializeToString(deterministic=True)
        for _ in range(3)
    ]
    assert bodies[0] == bodies[1] == bodies[2]


async def test_scheduled_job_is_not_fetchable_yet(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_json(
        stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "scheduled_at": "+PT1H"}}
    )
    assert job.state == S.JOB_STATE_SCHEDULED
    assert ms_of(job.scheduled_at) >= now_ms() + 3_500_000
    assert await fetch(stub, [queue]) == []


async def test_pending_job_is_activated(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_json(stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "pending": True}})
    assert job.state == S.JOB_STATE_PENDING
    assert await fetch(stub, [queue]) == []
    activated = (await stub.ActivateJob(job_pb2.ActivateJobRequest(job_id=job.id))).job
    assert activated.state == S.JOB_STATE_AVAILABLE
    assert [j.id for j in await fetch(stub, [queue])] == [job.id]
    error = await failure(stub.ActivateJob(job_pb2.ActivateJobRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "conflict"


# --------------------------------------------------------------------------- errors


async def test_get_unknown_job_is_not_found(stub: Any) -> None:
    error = await failure(stub.GetJob(job_pb2.GetJobRequest(job_id=new_uuid7())))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(error)
    assert info.reason == "not_found"
    assert info.domain == "openjobspec.org"
    assert info.metadata["retryable"] == "false"


async def test_get_job_with_a_malformed_id_is_not_found(stub: Any) -> None:
    error = await failure(stub.GetJob(job_pb2.GetJobRequest(job_id="not-a-uuid")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"


@pytest.mark.parametrize("job_type", ["Email.Send", "email send", "1email.send", "email@send!"])
async def test_invalid_type_is_invalid_argument(stub: Any, job_type: str) -> None:
    request = job_pb2.EnqueueRequest(type=job_type, args=value_list([1]))
    error = await failure(stub.Enqueue(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, bad_request = error_details(error)
    assert info.reason == "invalid_request"
    assert info.metadata["retryable"] == "false"
    assert bad_request is not None
    assert bad_request.field_violations[0].field == "type"


async def test_missing_type_is_invalid_argument(stub: Any) -> None:
    error = await failure(stub.Enqueue(job_pb2.EnqueueRequest(args=value_list([]))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"


async def test_args_not_a_list_in_job_json(stub: Any) -> None:
    error = await failure(stub.Enqueue(job_pb2.EnqueueRequest(job_json=b'{"type":"a.b","args":{"x":1}}')))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"


async def test_malformed_job_json_is_invalid_payload(stub: Any) -> None:
    error = await failure(stub.Enqueue(job_pb2.EnqueueRequest(job_json=b'{"type": "a.b", "args": [')))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_payload"


async def test_job_json_must_be_an_object(stub: Any) -> None:
    error = await failure(stub.Enqueue(job_pb2.EnqueueRequest(job_json=b"[]")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_payload"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_official_args_are_invalid(stub: Any, number: float) -> None:
    # JSON has no NaN or Infinity: a client error, not a server failure.
    request = job_pb2.EnqueueRequest(type="test.echo", args=[struct_pb2.Value(number_value=number)])
    error = await failure(stub.Enqueue(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(error)
    assert info.reason in {"invalid_request", "invalid_payload"}
    assert info.metadata["retryable"] == "false"


async def test_bad_retry_policy_is_a_validation_error(stub: Any) -> None:
    body = {"type": "test.echo", "args": [], "options": {"retry": {"backoff_coefficient": 0.5}}}
    error = await failure(stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(body))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "backoff_coefficient" in (error.details() or "")
    info, bad_request = error_details(error)
    assert info.reason == "validation_error"
    assert info.metadata["type"] == "validation_error"
    assert info.metadata["retryable"] == "false"
    assert bad_request is not None
    assert bad_request.field_violations[0].field == "retry.backoff_coefficient"


async def test_negative_max_attempts_is_a_validation_error(stub: Any) -> None:
    body = {"type": "test.echo", "args": [], "options": {"retry": {"max_attempts": -1}}}
    error = await failure(stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(body))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_attempts" in (error.details() or "")
    assert error_info(error).reason == "validation_error"


async def test_duplicate_client_id_is_already_exists(stub: Any) -> None:
    job_id = new_uuid7()
    body = {"id": job_id, "type": "test.echo", "args": [], "options": {"queue": new_queue()}}
    await enqueue_json(stub, body)
    error = await failure(stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(body))))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(error)
    assert info.reason == "duplicate"
    assert info.metadata["retryable"] == "false"


async def test_request_id_is_echoed_in_error_info(stub: Any) -> None:
    call = stub.GetJob(job_pb2.GetJobRequest(job_id=new_uuid7()), metadata=(("x-ojs-request-id", "req-123"),))
    error = await failure(call)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).metadata["request_id"] == "req-123"


async def test_request_id_is_echoed_on_success(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    call = stub.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=(("x-ojs-request-id", "req-456"),))
    await call
    trailers = await call.trailing_metadata()
    assert ("x-ojs-request-id", "req-456") in list(trailers)
