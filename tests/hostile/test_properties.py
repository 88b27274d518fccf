"""Properties over generated envelopes and messages: anything accepted can be fetched, rendered and acked;
anything else is a clean 4xx / INVALID_ARGUMENT (or the spec's code) that stores nothing.

Deterministic (derandomized, no example database) and sized to run in seconds.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import grpc
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ojs.v1 import job_pb2, worker_pb2
from redis.asyncio import Redis

from tests.hostile.conftest import Http, assert_envelope, assert_rich_error, stored_keys
from tests.rpc.rich_status import error_info

PROPERTY_SETTINGS = settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Refusals a client may get for a job it built (the spec's codes; 409 for a duplicate id).
HTTP_REFUSALS = {400: ("invalid_request", "invalid_payload"), 409: ("duplicate",), 413: ("payload_too_large",)}
HTTP_REFUSALS[422] = ("validation_error", "invalid_request")
GRPC_REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT: ("invalid_request", "invalid_payload", "validation_error"),
    grpc.StatusCode.ALREADY_EXISTS: ("duplicate",),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("payload_too_large",),
}

# Any Unicode, lone surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
names = st.one_of(st.sampled_from(["test.echo", "default", "q-1", "a.b_c"]), any_text, st.just("x" * 300))
wide_ints = st.one_of(st.integers(-(2**80), 2**80), st.integers(-1000, 1000), st.sampled_from([2**31, 2**53, 2**63]))
numbers = st.one_of(wide_ints, st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12,
)
datetimes = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(9999, 12, 31), timezones=st.just(dt.UTC)
)
times = st.one_of(
    datetimes.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.builds(lambda n, unit: f"+PT{n}{unit}", st.integers(0, 10**16), st.sampled_from("HMS")),
    st.builds(lambda n: f"+P{n}D", st.integers(0, 10**12)),
    any_text,
)
retry_policies = st.fixed_dictionaries(
    {},
    optional={
        "max_attempts": wide_ints,
        "initial_interval": st.one_of(times, st.sampled_from(["PT1S", "PT0.001S", "P99999999999D"])),
        "backoff_coefficient": numbers,
        "on_exhaustion": st.sampled_from(["discard", "dead_letter", "bogus"]),
        "backoff_strategy": st.sampled_from(["exponential", "linear", "constant", "polynomial", "none", "x"]),
        "jitter": st.booleans(),
    },
)
options = st.fixed_dictionaries(
    {},
    optional={
        "queue": names,
        "priority": wide_ints,
        "timeout_ms": wide_ints,
        "timeout": numbers,
        "visibility_timeout_ms": wide_ints,
        "scheduled_at": times,
        "expires_at": times,
        "retry": retry_policies,
        "unique": st.fixed_dictionaries(
            {}, optional={"on_conflict": st.sampled_from(["reject", "ignore", "replace", "x"]), "period": times}
        ),
        "tags": st.lists(any_text, max_size=3),
        "rate_limit": st.fixed_dictionaries({}, optional={"concurrency": wide_ints, "max_per_second": wide_ints}),
        "pending": st.one_of(st.booleans(), any_text),
    },
)
envelopes = st.fixed_dictionaries(
    {"type": names, "args": st.lists(json_values, max_size=4)},
    optional={"options": options, "meta": st.dictionaries(any_text, json_values, max_size=3)},
)


async def _fetch_and_ack_http(http: Http, job: dict[str, Any]) -> None:
    status, payload, _ = await http.send("GET", f"/ojs/v1/jobs/{job['id']}")
    assert status == 200, payload
    if job["state"] != "available":
        return
    status, fetched = await http.post("/ojs/v1/workers/fetch", {"queues": [job["queue"]], "worker_id": "prop"})
    assert status == 200, fetched
    if not fetched["jobs"]:
        # Only an expired job is held back: it is discarded instead of delivered.
        status, payload, _ = await http.send("GET", f"/ojs/v1/jobs/{job['id']}")
        assert payload["job"]["state"] == "discarded", payload
        return
    assert fetched["jobs"][0]["id"] == job["id"]
    status, acked = await http.post("/ojs/v1/workers/ack", {"job_id": job["id"], "worker_id": "prop"})
    assert status == 200, acked


# The largest values each field accepts: such a job must still be delivered and acked.
BOUNDARY_ENVELOPE = {
    "type": "t" * 255,
    "args": [2**63 - 1, -(2**63), 1.7976931348623157e308, "\U0010ffff"],
    "meta": {"k": "v" * 60_000},
    "options": {
        "queue": "q" * 255,
        "priority": 100,
        "timeout_ms": 100 * 366 * 86_400_000,
        "visibility_timeout_ms": 100 * 366 * 86_400_000,
        "expires_at": "9999-12-31T23:59:59.999Z",
        "retry": {"max_attempts": 2**31 - 1, "initial_interval": "P36600D", "max_interval": "P36600D"},
        "unique": {"on_conflict": "reject", "period": "P36600D"},
        "tags": ["t" * 255] * 100,
        "rate_limit": {"concurrency": 2**31 - 1, "max_per_second": 2**31 - 1},
    },
}


@PROPERTY_SETTINGS
@given(envelope=envelopes)
@example(envelope=BOUNDARY_ENVELOPE)
@example(envelope={"type": "test.echo", "args": [], "options": {"scheduled_at": "9999-12-31T23:59:59.999Z"}})
async def test_http_enqueue_accepts_only_what_it_can_deliver(
    envelope: dict[str, Any], http: Http, redis: Redis
) -> None:
    await redis.flushdb()
    raw = json.dumps(envelope).encode()
    status, payload, _ = await http.send("POST", "/ojs/v1/jobs", raw)
    assert status < 500, payload
    if status in (200, 201):
        await _fetch_and_ack_http(http, payload["job"])
        return
    assert status in HTTP_REFUSALS, (status, payload)
    error = assert_envelope(status, payload, expected_status=status, code=payload["error"]["code"])
    assert error["code"] in HTTP_REFUSALS[status], error
    assert await stored_keys(redis) == set()


def _value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    try:
        value.MergeFrom(_to_value(data))
    except (ValueError, TypeError):
        value.string_value = "unrepresentable"
    return value


def _to_value(data: Any) -> struct_pb2.Value:
    holder = struct_pb2.ListValue()
    holder.append(data if not isinstance(data, int) or abs(data) < 2**63 else float(data))
    return holder.values[0]


durations = st.builds(
    duration_pb2.Duration, seconds=st.integers(-315_576_000_000, 315_576_000_000), nanos=st.integers(0, 999_999_999)
)
timestamps = st.builds(timestamp_pb2.Timestamp, seconds=st.integers(-(2**40), 2**40), nanos=st.integers(0, 999_999_999))
int32s = st.integers(-(2**31), 2**31 - 1)
grpc_options = st.builds(
    job_pb2.EnqueueOptions,
    queue=st.one_of(st.just(""), st.sampled_from(["default", "q-1"]), st.text(max_size=30)),
    priority=int32s,
    timeout=st.one_of(st.none(), durations),
    delay_until=st.one_of(st.none(), timestamps),
    ttl=st.one_of(st.none(), durations),
    max_attempts=int32s,
    tags=st.lists(st.text(max_size=10), max_size=3),
    unique=st.one_of(
        st.none(),
        st.builds(
            job_pb2.UniquePolicy,
            on_conflict=st.one_of(st.integers(0, 4), int32s),
            states=st.lists(st.one_of(st.integers(0, 8), int32s), max_size=2),
            keys=st.lists(st.sampled_from(["type", "args", "queue", "meta", "other"]), max_size=2),
        ),
    ),
    retry=st.one_of(
        st.none(),
        st.builds(
            job_pb2.RetryPolicy,
            max_attempts=int32s,
            backoff_coefficient=st.floats(),
            initial_interval=st.one_of(st.none(), durations),
            on_exhaustion=st.sampled_from(["", "discard", "dead_letter", "x"]),
        ),
    ),
)
grpc_requests = st.builds(
    job_pb2.EnqueueRequest,
    type=st.one_of(st.sampled_from(["test.echo", "a.b"]), st.text(max_size=30)),
    args=st.lists(json_values.map(_value), max_size=3),
    options=st.one_of(st.none(), grpc_options),
)


@PROPERTY_SETTINGS
@given(request=grpc_requests)
@example(
    request=job_pb2.EnqueueRequest(
        type="test.echo",
        options=job_pb2.EnqueueOptions(
            queue="q" * 255,
            priority=100,
            timeout=duration_pb2.Duration(seconds=100 * 366 * 86_400),
            visibility_timeout=duration_pb2.Duration(seconds=100 * 366 * 86_400),
            delay_until=timestamp_pb2.Timestamp(seconds=1),
            max_attempts=2**31 - 1,
            unique=job_pb2.UniquePolicy(on_conflict=job_pb2.UNIQUE_CONFLICT_ACTION_IGNORE),
        ),
    )
)
async def test_grpc_enqueue_accepts_only_what_it_can_deliver(
    request: job_pb2.EnqueueRequest, stub: Any, redis: Redis
) -> None:
    await redis.flushdb()
    try:
        reply = await stub.Enqueue(request)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in GRPC_REFUSALS, (exc.code(), exc.details())
        info = assert_rich_error(exc, code=exc.code(), reason=_reason(exc))
        assert info.reason in GRPC_REFUSALS[exc.code()], info
        assert await stored_keys(redis) == set()
        return
    job = reply.job
    assert (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job.id == job.id
    if job.state != job_pb2.JOB_STATE_AVAILABLE:
        return
    fetched = await stub.Fetch(worker_pb2.FetchRequest(queues=[job.queue], worker_id="prop"))
    if not fetched.jobs:
        assert (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job.state == job_pb2.JOB_STATE_DISCARDED
        return
    assert fetched.jobs[0].id == job.id
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id, worker_id="prop"))


def _reason(exc: grpc.aio.AioRpcError) -> str:
    reason: str = error_info(exc).reason
    return reason


@PROPERTY_SETTINGS
@given(raw=st.one_of(st.binary(max_size=64), grpc_requests.map(lambda r: r.SerializeToString() + b"\x0f")))
async def test_grpc_arbitrary_bytes_get_a_clean_answer(raw: bytes, channel: grpc.aio.Channel, redis: Redis) -> None:
    await redis.flushdb()
    call = channel.unary_unary("/ojs.v1.OJSService/Enqueue")
    try:
        await call(raw)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in GRPC_REFUSALS, (exc.code(), exc.details())
        assert _reason(exc) in GRPC_REFUSALS[exc.code()]


worker_routes = st.sampled_from(
    ["/ojs/v1/workers/fetch", "/ojs/v1/workers/ack", "/ojs/v1/workers/nack", "/ojs/v1/workers/heartbeat"]
)
worker_bodies = st.fixed_dictionaries(
    {},
    optional={
        "queues": st.one_of(st.lists(names, max_size=3), json_values),
        "count": wide_ints,
        "worker_id": st.one_of(names, json_values),
        "visibility_timeout_ms": wide_ints,
        "wait_ms": st.sampled_from([0, -1, 60_001, 2**31, 2**70]),
        "job_id": st.one_of(any_text, st.just("01970000-0000-7000-8000-000000000000")),
        "lease_token": wide_ints,
        "result": json_values,
        "requeue": st.one_of(st.booleans(), any_text),
        "error": st.one_of(json_values, st.fixed_dictionaries({}, optional={"message": any_text, "code": any_text})),
        "active_jobs": st.one_of(st.lists(any_text, max_size=3), wide_ints),
        "state": any_text,
    },
)


@PROPERTY_SETTINGS
@given(route=worker_routes, body=worker_bodies)
async def test_http_worker_calls_never_fail_on_input(
    route: str, body: dict[str, Any], http: Http, redis: Redis
) -> None:
    status, payload, _ = await http.send("POST", route, json.dumps(body).encode())
    assert status < 500, payload
    if status >= 400:
        assert_envelope(status, payload, expected_status=status, code=payload["error"]["code"])


fetch_requests = st.builds(
    worker_pb2.FetchRequest,
    queues=st.lists(st.one_of(st.sampled_from(["default", "q-1"]), st.text(max_size=300)), max_size=3),
    count=int32s,
    worker_id=st.text(max_size=300),
    visibility_timeout_ms=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    wait_ms=st.sampled_from([0, -1, 60_001, 2**31 - 1]),
)
settle_requests = st.one_of(
    st.builds(
        worker_pb2.AckRequest,
        job_id=st.text(max_size=50),
        worker_id=st.text(max_size=300),
        result_json=st.one_of(st.just(b""), st.binary(max_size=20)),
        lease_token=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    ),
    st.builds(
        worker_pb2.NackRequest,
        job_id=st.text(max_size=50),
        worker_id=st.text(max_size=300),
        error=st.one_of(st.none(), st.builds(job_pb2.JobError, code=st.text(max_size=20), message=st.text())),
    ),
    st.builds(
        worker_pb2.HeartbeatRequest,
        worker_id=st.text(max_size=300),
        extend_by=st.one_of(st.none(), durations),
        active_job_ids=st.lists(st.text(max_size=40), max_size=3),
    ),
)


@PROPERTY_SETTINGS
@given(request=st.one_of(fetch_requests, settle_requests))
async def test_grpc_worker_calls_never_fail_on_input(request: Any, stub: Any) -> None:
    method = {
        "FetchRequest": stub.Fetch,
        "AckRequest": stub.Ack,
        "NackRequest": stub.Nack,
        "HeartbeatRequest": stub.Heartbeat,
    }[type(request).__name__]
    try:
        await method(request)
    except grpc.aio.AioRpcError as exc:
        # Every refusal is one of the service's, with its ErrorInfo: never INTERNAL or UNKNOWN.
        assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), exc.details()
        assert error_info(exc).reason
