"""`ojs.v1.OJSService` over a real grpc.aio channel, with the real servicer, store and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import duration_pb2, json_format, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from ojs.v1 import events_pb2, job_pb2, queue_pb2, service_pb2, service_pb2_grpc, worker_pb2
from redis.asyncio import Redis

from server.app import build_servicer
from server.config import Settings
from server.domain.ids import is_uuid7, new_uuid7
from server.rpc.server import GrpcServer
from server.store.facade import Store
from server.store.keys import KeySchema
from tests.rpc.rich_status import error_details, error_info, failure

S = job_pb2


# --------------------------------------------------------------------------- helpers


def new_queue(prefix: str = "rpc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def value_list(items: list[Any]) -> list[struct_pb2.Value]:
    values = struct_pb2.ListValue()
    values.extend(items)
    return list(values.values)


def canonical_of(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical(raw: bytes) -> bytes:
    return canonical_of(orjson.loads(raw))


def values_to_python(values: Any) -> Any:
    return json_format.MessageToDict(struct_pb2.ListValue(values=list(values)))


async def enqueue_json(stub: Any, body: dict[str, Any]) -> Any:
    response = await stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(body)))
    return response.job


async def enqueue_simple(stub: Any, queue: str, *, priority: int = 0, **extra: Any) -> Any:
    options: dict[str, Any] = {"queue": queue, "priority": priority, **extra}
    return await enqueue_json(stub, {"type": "test.echo", "args": [priority], "options": options})


async def fetch(stub: Any, queues: list[str], *, count: int = 1, worker_id: str = "") -> list[Any]:
    response = await stub.Fetch(worker_pb2.FetchRequest(queues=queues, count=count, worker_id=worker_id))
    return list(response.jobs)


def ms_of(timestamp: Any) -> int:
    return int(timestamp.seconds * 1000 + timestamp.nanos // 1_000_000)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def private_server(redis_url: str, *, api_key: str | None, prefix: str) -> AsyncIterator[str]:
    """The servicer stack built by hand on its own port."""
    redis = Redis.from_url(redis_url)
    store = Store(redis, KeySchema(prefix))
    servicer = build_servicer(store, Settings(default_visibility_timeout_ms=60_000))
    server = GrpcServer(servicer, api_key=api_key)
    port = server.bind("127.0.0.1", 0)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await redis.aclose()


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


# --------------------------------------------------------------------------- fetch, ack, nack


async def test_fetch_ack_get_job(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    [active] = await fetch(stub, [queue], worker_id="worker-1")
    assert active.id == job.id
    assert active.state == S.JOB_STATE_ACTIVE
    assert active.attempt == 1
    assert active.worker_id == "worker-1"
    assert active.HasField("started_at")
    assert active.HasField("lease_expires_at")

    result = b'{"ok":true,"n":[1,2,3]}'
    ack = await stub.Ack(worker_pb2.AckRequest(job_id=job.id, result_json=result))
    assert ack.acknowledged is True
    assert ack.job.state == S.JOB_STATE_COMPLETED

    done = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert done.state == S.JOB_STATE_COMPLETED
    assert orjson.loads(done.result_json) == {"ok": True, "n": [1, 2, 3]}
    assert json_format.MessageToDict(done.result) == {"ok": True, "n": [1, 2, 3]}
    assert done.HasField("completed_at")
    assert not done.HasField("error")

    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "completed"


async def test_ack_with_a_struct_result(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    result = struct_pb2.Struct()
    result.update({"sent": True, "count": 2})
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id, result=result))
    done = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert canonical(done.result_json) == canonical_of({"sent": True, "count": 2})


@pytest.mark.parametrize("result", [b"[1,2,3]", b'"done"', b"42", b"null", b"true", b'{"a":{"b":[1.5,null]}}'])
async def test_ack_with_any_json_result(stub: Any, result: bytes) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id, result_json=result))
    done = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert done.result_json == result
    assert done.HasField("result") == result.startswith(b"{")


async def test_ack_with_a_non_finite_struct_result_is_invalid(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    result = struct_pb2.Struct()
    result.update({"ratio": float("nan")})
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id, result=result)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason in {"invalid_request", "invalid_payload"}
    still = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert still.state == S.JOB_STATE_ACTIVE


async def test_ack_with_invalid_result_json(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id, result_json=b"{not json")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_payload"
    still = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert still.state == S.JOB_STATE_ACTIVE


async def test_ack_of_an_available_job_is_a_conflict(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "available"


async def test_ack_of_an_unknown_job_is_not_found(stub: Any) -> None:
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=new_uuid7())))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"


async def test_ack_from_another_worker_is_rejected(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue], worker_id="worker-a")
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="worker-b")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "conflict"
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="worker-a"))


async def test_nack_with_the_default_policy_is_retryable(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    before = now_ms()
    response = await stub.Nack(
        worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="smtp_down", message="connection refused"))
    )
    after = now_ms()
    assert response.state == S.JOB_STATE_RETRYABLE
    assert response.HasField("next_attempt_at")
    assert response.job.state == S.JOB_STATE_RETRYABLE
    assert response.job.HasField("retry_delay_ms")
    delay = response.job.retry_delay_ms
    # Default policy: 1 s with jitter in [0.5, 1.5).
    assert 500 <= delay <= 1500
    due = ms_of(response.next_attempt_at)
    assert before + delay - 1000 <= due <= after + delay + 1000
    assert response.job.error.code == "smtp_down"
    assert response.job.error.message == "connection refused"
    assert len(response.job.errors) == 1
    assert response.job.errors[0].attempt == 1

    stored = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert stored.state == S.JOB_STATE_RETRYABLE
    assert stored.retry_delay_ms == delay
    assert await fetch(stub, [queue]) == []


async def test_nack_not_retryable_is_discarded(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    response = await stub.Nack(
        worker_pb2.NackRequest(
            job_id=job.id, error=job_pb2.JobError(code="fatal", message="bad input"), retryable=False
        )
    )
    assert response.state == S.JOB_STATE_DISCARDED
    assert response.job.state == S.JOB_STATE_DISCARDED
    assert response.job.HasField("discarded_at")
    assert not response.HasField("next_attempt_at")


async def test_nack_with_retryable_true_still_follows_the_policy(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_json(
        stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "retry": {"max_attempts": 1}}}
    )
    await fetch(stub, [queue])
    response = await stub.Nack(
        worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x", message="y"), retryable=True)
    )
    assert response.state == S.JOB_STATE_DISCARDED


async def test_nack_matching_non_retryable_errors_is_discarded(stub: Any) -> None:
    queue = new_queue()
    body = {
        "type": "test.echo",
        "args": [],
        "options": {"queue": queue, "retry": {"max_attempts": 5, "non_retryable_errors": ["Auth.*"]}},
    }
    job = await enqueue_json(stub, body)
    await fetch(stub, [queue])
    details = struct_pb2.Struct()
    details.update({"error_class": "Auth.TokenExpired"})
    response = await stub.Nack(
        worker_pb2.NackRequest(
            job_id=job.id, error=job_pb2.JobError(code="handler_error", message="token expired", details=details)
        )
    )
    assert response.state == S.JOB_STATE_DISCARDED


async def test_nack_with_requeue_makes_the_job_available(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    response = await stub.Nack(
        worker_pb2.NackRequest(
            job_id=job.id, error=job_pb2.JobError(code="cancelled", message="shutdown"), requeue=True
        )
    )
    assert response.state == S.JOB_STATE_AVAILABLE
    [again] = await fetch(stub, [queue])
    assert again.id == job.id
    assert again.attempt == 2


async def test_nack_of_an_available_job_is_a_conflict(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    error = await failure(stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x"))))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).metadata["current_state"] == "available"


async def fetch_within(stub: Any, queue: str, seconds: float) -> list[Any]:
    deadline = time.monotonic() + seconds
    while True:
        jobs = await fetch(stub, [queue])
        if jobs or time.monotonic() > deadline:
            return jobs
        await asyncio.sleep(0.05)


async def test_retry_is_fetchable_after_its_backoff(stub: Any) -> None:
    queue = new_queue()
    retry = {"max_attempts": 2, "initial_interval_ms": 200, "jitter": False}
    job = await enqueue_json(stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "retry": retry}})
    await fetch(stub, [queue])
    first = await stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="e1", message="one")))
    assert first.state == S.JOB_STATE_RETRYABLE
    assert first.job.retry_delay_ms == 200

    [again] = await fetch_within(stub, queue, 5.0)
    assert again.id == job.id
    assert again.attempt == 2
    assert again.state == S.JOB_STATE_ACTIVE

    second = await stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="e2", message="two")))
    assert second.state == S.JOB_STATE_DISCARDED
    assert [(e.code, e.attempt) for e in second.job.errors] == [("e1", 1), ("e2", 2)]
    assert second.job.error.code == "e2"


async def test_scheduled_job_becomes_fetchable(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_json(
        stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "scheduled_at": "+PT0.3S"}}
    )
    assert job.state == S.JOB_STATE_SCHEDULED
    [fetched] = await fetch_within(stub, queue, 5.0)
    assert fetched.id == job.id
    assert fetched.attempt == 1


async def test_cancelled_retryable_job_is_never_fetched(stub: Any) -> None:
    queue = new_queue()
    retry = {"initial_interval_ms": 100, "jitter": False}
    job = await enqueue_json(stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "retry": retry}})
    await fetch(stub, [queue])
    await stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=job_pb2.JobError(code="x")))
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    assert response.previous_state == S.JOB_STATE_RETRYABLE
    assert not response.job.HasField("next_attempt_at")
    await asyncio.sleep(0.4)
    assert await fetch(stub, [queue]) == []
    assert (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job.state == S.JOB_STATE_CANCELLED


async def test_cancelled_scheduled_job_is_never_fetched(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_json(
        stub, {"type": "test.echo", "args": [], "options": {"queue": queue, "scheduled_at": "+PT0.2S"}}
    )
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    assert response.previous_state == S.JOB_STATE_SCHEDULED
    await asyncio.sleep(0.4)
    assert await fetch(stub, [queue]) == []


async def test_fetch_without_queues_is_invalid(stub: Any) -> None:
    error = await failure(stub.Fetch(worker_pb2.FetchRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "invalid_request"


async def test_fetch_from_an_empty_queue_returns_at_once(stub: Any) -> None:
    started = time.monotonic()
    assert await fetch(stub, [new_queue()]) == []
    assert time.monotonic() - started < 1.5


async def test_fetch_visibility_timeout_sets_the_lease(stub: Any) -> None:
    queue = new_queue()
    await enqueue_simple(stub, queue)
    before = now_ms()
    response = await stub.Fetch(worker_pb2.FetchRequest(queues=[queue], visibility_timeout_ms=30_000))
    [job] = response.jobs
    lease = ms_of(job.lease_expires_at)
    assert before + 29_000 <= lease <= now_ms() + 31_000


async def test_fetch_uses_the_job_visibility_timeout(stub: Any) -> None:
    queue = new_queue()
    await enqueue_simple(stub, queue, visibility_timeout_ms=5000)
    before = now_ms()
    [job] = await fetch(stub, [queue])
    assert before + 4000 <= ms_of(job.lease_expires_at) <= now_ms() + 6000
    assert job.visibility_timeout.seconds == 5


async def test_fetch_without_any_visibility_timeout_uses_a_long_default(stub: Any) -> None:
    queue = new_queue()
    await enqueue_simple(stub, queue)
    [job] = await fetch(stub, [queue])
    # SPEC-GUIDE §0.14: the default lease must be at least 120 s.
    assert ms_of(job.lease_expires_at) >= now_ms() + 119_000


async def test_lease_is_released_on_ack_and_nack(stub: Any) -> None:
    queue = new_queue()
    acked, nacked = await enqueue_simple(stub, queue), await enqueue_simple(stub, queue)
    await fetch(stub, [queue], count=2)
    done = (await stub.Ack(worker_pb2.AckRequest(job_id=acked.id))).job
    assert not done.HasField("lease_expires_at")
    failed = (await stub.Nack(worker_pb2.NackRequest(job_id=nacked.id, error=job_pb2.JobError(code="x")))).job
    assert not failed.HasField("lease_expires_at")


async def test_priority_order_then_fifo(stub: Any) -> None:
    queue = new_queue()
    jobs = [await enqueue_simple(stub, queue, priority=p) for p in (10, 0, -10, 10)]
    order = []
    for _ in range(4):
        [job] = await fetch(stub, [queue])
        order.append(job.id)
    assert order == [jobs[0].id, jobs[3].id, jobs[1].id, jobs[2].id]
    assert await fetch(stub, [queue]) == []


async def test_priority_order_in_one_batch(stub: Any) -> None:
    queue = new_queue()
    jobs = [await enqueue_simple(stub, queue, priority=p) for p in (-100, 100, 0, 100, -100)]
    fetched = await fetch(stub, [queue], count=10)
    assert [j.id for j in fetched] == [jobs[1].id, jobs[3].id, jobs[2].id, jobs[0].id, jobs[4].id]


async def test_fetch_follows_the_order_of_queues(stub: Any) -> None:
    first, second = new_queue("first"), new_queue("second")
    in_second = await enqueue_simple(stub, second, priority=100)
    in_first = await enqueue_simple(stub, first, priority=-100)
    [job] = await fetch(stub, [first, second])
    assert job.id == in_first.id
    [job] = await fetch(stub, [first, second])
    assert job.id == in_second.id


async def test_fetch_many_across_queues_keeps_queue_order(stub: Any) -> None:
    a, b = new_queue("a"), new_queue("b")
    in_a = [await enqueue_simple(stub, a) for _ in range(2)]
    in_b = [await enqueue_simple(stub, b) for _ in range(2)]
    fetched = await fetch(stub, [b, a], count=3)
    assert [j.id for j in fetched] == [in_b[0].id, in_b[1].id, in_a[0].id]


async def test_concurrent_fetches_claim_a_job_once(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    results = await asyncio.gather(*(fetch(stub, [queue], worker_id=f"w{i}") for i in range(10)))
    winners = [r for r in results if r]
    assert len(winners) == 1
    assert [j.id for j in winners[0]] == [job.id]


async def test_concurrent_fetches_share_jobs_without_duplicates(stub: Any) -> None:
    queue = new_queue()
    ids = {(await enqueue_simple(stub, queue)).id for _ in range(20)}
    results = await asyncio.gather(*(fetch(stub, [queue], count=3) for _ in range(10)))
    claimed = [j.id for r in results for j in r]
    assert len(claimed) == len(set(claimed)) == 20
    assert set(claimed) == ids


# --------------------------------------------------------------------------- cancel


async def test_cancel_available_job(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id, reason="not needed"))
    assert response.job.state == S.JOB_STATE_CANCELLED
    assert response.previous_state == S.JOB_STATE_AVAILABLE
    assert response.job.HasField("cancelled_at")
    assert not response.job.HasField("completed_at")
    assert await fetch(stub, [queue]) == []


async def test_cancel_active_job(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    response = await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    assert response.previous_state == S.JOB_STATE_ACTIVE
    assert response.job.state == S.JOB_STATE_CANCELLED
    error = await failure(stub.Ack(worker_pb2.AckRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_completed_job_is_a_conflict(stub: Any) -> None:
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id))
    error = await failure(stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert info.reason == "conflict"
    assert info.metadata["current_state"] == "completed"


async def test_cancel_twice_is_a_conflict(stub: Any) -> None:
    job = await enqueue_simple(stub, new_queue())
    await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    error = await failure(stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_unknown_job_is_not_found(stub: Any) -> None:
    error = await failure(stub.CancelJob(job_pb2.CancelJobRequest(job_id=new_uuid7())))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"


# --------------------------------------------------------------------------- queues and events


async def test_list_queues(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    for queue, count in (("beta", 2), ("alpha", 1), ("gamma", 3)):
        for _ in range(count):
            await enqueue_simple(stub, queue)
    await fetch(stub, ["gamma"])
    response = await stub.ListQueues(queue_pb2.ListQueuesRequest())
    assert [q.name for q in response.queues] == ["alpha", "beta", "gamma"]
    assert [q.available_count for q in response.queues] == [1, 2, 2]
    assert all(not q.paused for q in response.queues)
    assert all(q.HasField("created_at") for q in response.queues)
    assert response.total == 3
    assert response.next_cursor == ""


async def test_list_queues_pages(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    for queue in ("q1", "q2", "q3"):
        await enqueue_simple(stub, queue)
    first = await stub.ListQueues(queue_pb2.ListQueuesRequest(limit=2))
    assert [q.name for q in first.queues] == ["q1", "q2"]
    assert first.next_cursor
    second = await stub.ListQueues(queue_pb2.ListQueuesRequest(limit=2, cursor=first.next_cursor))
    assert [q.name for q in second.queues] == ["q3"]
    assert second.next_cursor == ""
    error = await failure(stub.ListQueues(queue_pb2.ListQueuesRequest(limit=5000)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_queues_after_flush_is_empty(stub: Any, ojs_http: Any) -> None:
    await enqueue_simple(stub, new_queue())
    await ojs_http.flush()
    response = await stub.ListQueues(queue_pb2.ListQueuesRequest())
    assert list(response.queues) == []


async def test_list_events_filters_by_type_and_queue(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue, other = new_queue("events"), new_queue("other")
    jobs = [await enqueue_simple(stub, queue) for _ in range(3)]
    await enqueue_simple(stub, other)
    await fetch(stub, [queue])
    response = await stub.ListEvents(events_pb2.ListEventsRequest(types=["job.enqueued"], queues=[queue]))
    assert [e.job_id for e in response.events] == [j.id for j in jobs]
    for event in response.events:
        assert event.type == "job.enqueued"
        assert event.queue == queue
        assert event.job_type == "test.echo"
        data = orjson.loads(event.data_json)
        assert data["job_type"] == "test.echo"
        assert data["queue"] == queue
        assert event.HasField("timestamp")
        assert event.cursor
    assert response.has_more is False


async def test_list_events_of_a_lifecycle(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id))
    response = await stub.ListEvents(events_pb2.ListEventsRequest(job_id=job.id))
    assert [e.type for e in response.events] == ["job.enqueued", "job.started", "job.completed"]
    started = orjson.loads(response.events[1].data_json)
    assert started["attempt"] == 1
    completed = orjson.loads(response.events[2].data_json)
    assert completed["duration_ms"] >= 0


async def test_list_events_type_patterns(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    everything = await stub.ListEvents(events_pb2.ListEventsRequest(types=["job.*"], queues=[queue]))
    assert [e.type for e in everything.events] == ["job.enqueued", "job.started", "job.cancelled"]
    some = await stub.ListEvents(events_pb2.ListEventsRequest(types=["job.started", "job.cancelled"]))
    assert [e.type for e in some.events] == ["job.started", "job.cancelled"]
    by_type = await stub.ListEvents(events_pb2.ListEventsRequest(job_types=["other.type"]))
    assert list(by_type.events) == []


async def test_list_events_pages_with_a_cursor(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue = new_queue()
    jobs = [await enqueue_simple(stub, queue) for _ in range(5)]
    first = await stub.ListEvents(events_pb2.ListEventsRequest(queues=[queue], limit=2))
    assert [e.job_id for e in first.events] == [j.id for j in jobs[:2]]
    assert first.has_more is True
    rest = await stub.ListEvents(events_pb2.ListEventsRequest(queues=[queue], after=first.cursor, limit=10))
    assert [e.job_id for e in rest.events] == [j.id for j in jobs[2:]]
    error = await failure(stub.ListEvents(events_pb2.ListEventsRequest(after="bogus")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# --------------------------------------------------------------------------- system


async def test_manifest(stub: Any) -> None:
    response = await stub.Manifest(service_pb2.ManifestRequest())
    document = orjson.loads(response.manifest_json)
    assert isinstance(document, dict)
    assert document["specversion"] == "1.0"
    assert "grpc" in document["protocols"]
    assert "http" in document["protocols"]
    assert isinstance(document["implementation"]["name"], str)
    assert document["conformance_level"] == response.conformance_level
    assert response.implementation.name == document["implementation"]["name"]
    assert set(response.protocols) == set(document["protocols"])
    assert response.backend == "redis"


async def test_health_is_ok(stub: Any) -> None:
    response = await stub.Health(service_pb2.HealthRequest())
    assert response.status == service_pb2.HEALTH_STATUS_OK
    details = json_format.MessageToDict(response.details)
    assert details["backend"]["status"] == "connected"
    assert response.HasField("timestamp")


async def test_standard_health_check(grpc_target: str) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest())
        assert overall.status == health_pb2.HealthCheckResponse.SERVING
        service = await health.Check(health_pb2.HealthCheckRequest(service="ojs.v1.OJSService"))
        assert service.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(grpc_target: str) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names: set[str] = set()
        async for response in call:
            names.update(s.name for s in response.list_services_response.service)
    assert "ojs.v1.OJSService" in names
    assert "grpc.health.v1.Health" in names


# --------------------------------------------------------------------------- backend unreachable


async def test_backend_unreachable() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0")
    store = Store(redis, KeySchema("x"))
    servicer = build_servicer(store, Settings(default_visibility_timeout_ms=60_000))
    server = GrpcServer(servicer, api_key=None)
    port = server.bind("127.0.0.1", 0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.OJSServiceStub(channel)
            request = job_pb2.EnqueueRequest(type="test.echo", args=value_list([1]))
            error = await failure(stub.Enqueue(request, timeout=30))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            info = error_info(error)
            assert info.reason == "backend_unavailable"
            assert info.metadata["retryable"] == "true"

            error = await failure(stub.GetJob(job_pb2.GetJobRequest(job_id=new_uuid7()), timeout=30))
            assert error.code() == grpc.StatusCode.UNAVAILABLE

            health = await stub.Health(service_pb2.HealthRequest(), timeout=30)
            assert health.status == service_pb2.HEALTH_STATUS_UNHEALTHY
            details = json_format.MessageToDict(health.details)
            assert details["backend"]["status"] == "disconnected"
    finally:
        await server.stop(0)
        await redis.aclose()


# --------------------------------------------------------------------------- authentication


async def test_api_key_is_required(redis_url: str) -> None:
    async with (
        private_server(redis_url, api_key="secret", prefix="authtest") as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = service_pb2_grpc.OJSServiceStub(channel)
        request = job_pb2.EnqueueRequest(type="test.echo", args=value_list([1]), options=job_pb2.EnqueueOptions())

        error = await failure(stub.Enqueue(request))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(error).reason == "unauthenticated"

        error = await failure(stub.Enqueue(request, metadata=(("x-ojs-api-key", "wrong"),)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        error = await failure(stub.Enqueue(request, metadata=(("authorization", "Bearer wrong"),)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        error = await failure(stub.Enqueue(request, metadata=(("authorization", "secret"),)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED

        job = (await stub.Enqueue(request, metadata=(("x-ojs-api-key", "secret"),))).job
        assert job.state == S.JOB_STATE_AVAILABLE
        got = await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=(("authorization", "Bearer secret"),))
        assert got.job.id == job.id

        health = health_pb2_grpc.HealthStub(channel)
        checked = await health.Check(health_pb2.HealthCheckRequest())
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        probe = await stub.Health(service_pb2.HealthRequest())
        assert probe.status == service_pb2.HEALTH_STATUS_OK
        manifest = await stub.Manifest(service_pb2.ManifestRequest())
        assert orjson.loads(manifest.manifest_json)["specversion"] == "1.0"


async def test_reflection_requires_the_api_key(redis_url: str) -> None:
    async with (
        private_server(redis_url, api_key="secret", prefix="authtest") as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")

        async def list_services(metadata: tuple[tuple[str, str], ...]) -> set[str]:
            names: set[str] = set()
            call = reflection.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)
            async for response in call:
                names.update(s.name for s in response.list_services_response.service)
            return names

        error = await failure(list_services(()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "ojs.v1.OJSService" in await list_services((("x-ojs-api-key", "secret"),))


async def test_streaming_rpcs_require_the_api_key(redis_url: str) -> None:
    async with (
        private_server(redis_url, api_key="secret", prefix="authtest") as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = service_pb2_grpc.OJSServiceStub(channel)
        call = stub.StreamEvents(events_pb2.StreamEventsRequest())

        async def drain() -> None:
            async for _ in call:
                pass

        error = await failure(drain())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
