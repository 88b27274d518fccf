"""The hostile inputs, each exactly as sent, with what the server must answer.

README.md ("Hostile input") shows the same table; a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from ojs.v1 import job_pb2, worker_pb2

LONG_NAME = "a" * 256
TOO_MANY_QUEUES = [f"q{i}" for i in range(100_000)]
MAX_DURATION = duration_pb2.Duration(seconds=315_576_000_000)


def body(value: Any) -> bytes:
    # The stdlib encoder: it writes integers beyond 64 bits, which orjson refuses to.
    return json.dumps(value).encode()


def job(**options: Any) -> dict[str, Any]:
    return {"type": "test.echo", "args": [], "options": {"queue": "hostile", **options}}


@dataclasses.dataclass(frozen=True)
class HttpCase:
    id: str
    path: str
    body: bytes
    status: int
    code: str
    field: str | None = None
    method: str = "POST"


@dataclasses.dataclass(frozen=True)
class GrpcCase:
    id: str
    method: str
    request: Any
    code: grpc.StatusCode
    reason: str
    field: str | None = None


BAD_BATCH = {"jobs": [{"type": "Not A Type", "args": []} for _ in range(300)]}

HTTP_CASES = [
    HttpCase("timeout-2^70", "/ojs/v1/jobs", body(job(timeout_ms=2**70)), 400, "invalid_request", "options.timeout_ms"),
    HttpCase("timeout-int64-max", "/ojs/v1/jobs", body(job(timeout_ms=2**63 - 1)), 400, "invalid_request"),
    HttpCase("timeout-tiny-float", "/ojs/v1/jobs", body(job(timeout=1e-9)), 400, "invalid_request", "options.timeout"),
    HttpCase(
        "scheduled-+P99999999999D",
        "/ojs/v1/jobs",
        body(job(scheduled_at="+P99999999999D")),
        400,
        "invalid_request",
        "options.scheduled_at",
    ),
    HttpCase(
        "scheduled-year-10000",
        "/ojs/v1/jobs",
        body(job(scheduled_at="10000-01-01T00:00:00Z")),
        400,
        "invalid_request",
        "options.scheduled_at",
    ),
    HttpCase(
        "expires-+PT99999999999H",
        "/ojs/v1/jobs",
        body(job(expires_at="+PT99999999999H")),
        400,
        "invalid_request",
        "options.expires_at",
    ),
    HttpCase("priority-2^70", "/ojs/v1/jobs", body(job(priority=2**70)), 400, "invalid_request", "options.priority"),
    HttpCase(
        "max-attempts-2^40",
        "/ojs/v1/jobs",
        body(job(retry={"max_attempts": 2**40})),
        422,
        "validation_error",
        "retry.max_attempts",
    ),
    HttpCase(
        "retry-interval-P99999999999D",
        "/ojs/v1/jobs",
        body(job(retry={"initial_interval": "P99999999999D"})),
        422,
        "validation_error",
        "retry.initial_interval",
    ),
    HttpCase(
        "unique-on-conflict-bogus",
        "/ojs/v1/jobs",
        body(job(unique={"on_conflict": "bogus"})),
        400,
        "invalid_request",
        "options.unique.on_conflict",
    ),
    HttpCase(
        "rate-limit-2^40",
        "/ojs/v1/jobs",
        body(job(rate_limit={"concurrency": 2**40})),
        400,
        "invalid_request",
        "options.rate_limit.concurrency",
    ),
    HttpCase("type-256-bytes", "/ojs/v1/jobs", body({"type": LONG_NAME, "args": []}), 400, "invalid_request", "type"),
    HttpCase("queue-256-bytes", "/ojs/v1/jobs", body(job(queue=LONG_NAME)), 400, "invalid_request", "options.queue"),
    HttpCase("tags-101", "/ojs/v1/jobs", body(job(tags=["t"] * 101)), 400, "invalid_request", "options.tags"),
    HttpCase(
        "meta-70-KB",
        "/ojs/v1/jobs",
        body({**job(), "meta": {"blob": "x" * 70_000}}),
        413,
        "payload_too_large",
        "meta",
    ),
    HttpCase(
        "job-1.5-MB", "/ojs/v1/jobs", body({**job(), "args": ["x" * 1_500_000]}), 413, "payload_too_large", "envelope"
    ),
    HttpCase("body-5-MB", "/ojs/v1/jobs", body({**job(), "args": ["x" * 5_000_000]}), 413, "payload_too_large"),
    HttpCase("surrogate-enqueue", "/ojs/v1/jobs", b'{"type":"a","args":["\\ud800"]}', 400, "invalid_payload"),
    HttpCase("surrogate-fetch", "/ojs/v1/workers/fetch", b'{"queues":["\\ud800"]}', 400, "invalid_payload"),
    HttpCase("surrogate-ack", "/ojs/v1/workers/ack", b'{"job_id":"\\ud800"}', 400, "invalid_payload"),
    HttpCase(
        "surrogate-nack",
        "/ojs/v1/workers/nack",
        b'{"job_id":"x","error":{"message":"\\udfff"}}',
        400,
        "invalid_payload",
    ),
    HttpCase("surrogate-heartbeat", "/ojs/v1/workers/heartbeat", b'{"worker_id":"\\ud800"}', 400, "invalid_payload"),
    HttpCase(
        "surrogate-batch",
        "/ojs/v1/jobs/batch",
        b'{"jobs":[{"type":"a","args":[{"\\ud800":1}]}]}',
        400,
        "invalid_payload",
    ),
    HttpCase(
        "batch-default-queue-1",
        "/ojs/v1/jobs/batch",
        body({"jobs": [job()], "default_options": {"queue": 1}}),
        400,
        "invalid_request",
        "default_options.queue",
    ),
    HttpCase("batch-300-invalid", "/ojs/v1/jobs/batch", body(BAD_BATCH), 400, "invalid_request"),
    HttpCase(
        "fetch-100000-queues",
        "/ojs/v1/workers/fetch",
        body({"queues": TOO_MANY_QUEUES}),
        400,
        "invalid_request",
        "queues",
    ),
    HttpCase(
        "fetch-count-10^6", "/ojs/v1/workers/fetch", body({"queues": ["q"], "count": 10**6}), 400, "invalid_request"
    ),
    HttpCase(
        "fetch-visibility-2^62",
        "/ojs/v1/workers/fetch",
        body({"queues": ["q"], "visibility_timeout_ms": 2**62}),
        400,
        "invalid_request",
        "visibility_timeout_ms",
    ),
    HttpCase(
        "fetch-worker-id-300-bytes",
        "/ojs/v1/workers/fetch",
        body({"queues": ["q"], "worker_id": "w" * 300}),
        400,
        "invalid_request",
        "worker_id",
    ),
    HttpCase(
        "heartbeat-visibility-2^62",
        "/ojs/v1/workers/heartbeat",
        body({"worker_id": "w", "visibility_timeout_ms": 2**62}),
        400,
        "invalid_request",
    ),
    HttpCase(
        "workflow-step-id-300-bytes",
        "/ojs/v1/workflows",
        body({"name": "w", "steps": [{"id": "s" * 300, "type": "a", "args": []}]}),
        400,
        "invalid_request",
        "steps[0].id",
    ),
    HttpCase(
        "cron-template-+P99999999999D",
        "/ojs/v1/cron",
        body(
            {
                "name": "hostile",
                "expression": "* * * * *",
                "job_template": {"type": "a", "args": [], "options": {"scheduled_at": "+P99999999999D"}},
            }
        ),
        400,
        "invalid_request",
    ),
    HttpCase("path-surrogate", "/ojs/v1/jobs/%ED%A0%80", b"", 404, "not_found", method="GET"),
]

# Sent as raw bytes: no HTTP client produces them.
RAW_HTTP_CASES = {
    "request-line-9000-bytes": b"GET /ojs/v1/jobs/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header-9000-bytes": b"GET /ojs/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "not-http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


def _enqueue(**options: Any) -> job_pb2.EnqueueRequest:
    return job_pb2.EnqueueRequest(type="test.echo", options=job_pb2.EnqueueOptions(queue="hostile", **options))


INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

GRPC_CASES = [
    GrpcCase("timeout-10000-years", "Enqueue", _enqueue(timeout=MAX_DURATION), INVALID, "invalid_request"),
    GrpcCase(
        "delay-until-year-36812",
        "Enqueue",
        _enqueue(delay_until=timestamp_pb2.Timestamp(seconds=2**40)),
        INVALID,
        "invalid_request",
        "options.delay_until",
    ),
    GrpcCase("ttl-10000-years", "Enqueue", _enqueue(ttl=MAX_DURATION), INVALID, "invalid_request"),
    GrpcCase(
        "unique-on-conflict-999",
        "Enqueue",
        _enqueue(unique=job_pb2.UniquePolicy(on_conflict=999)),  # type: ignore[arg-type]
        INVALID,
        "invalid_request",
        "options.unique.on_conflict",
    ),
    GrpcCase(
        "unique-state-99",
        "Enqueue",
        _enqueue(unique=job_pb2.UniquePolicy(states=[99])),  # type: ignore[list-item]
        INVALID,
        "invalid_request",
        "options.unique.states",
    ),
    GrpcCase(
        "backoff-coefficient-nan",
        "Enqueue",
        _enqueue(retry=job_pb2.RetryPolicy(backoff_coefficient=float("nan"))),
        INVALID,
        "validation_error",
    ),
    GrpcCase(
        "batch-timeout-10000-years",
        "EnqueueBatch",
        job_pb2.EnqueueBatchRequest(
            jobs=[job_pb2.BatchJobEntry(type="a", options=job_pb2.EnqueueOptions(timeout=MAX_DURATION))]
        ),
        INVALID,
        "invalid_request",
    ),
    GrpcCase(
        "batch-default-queue-1",
        "EnqueueBatch",
        job_pb2.EnqueueBatchRequest(batch_json=body({"jobs": [job()], "default_options": {"queue": 1}})),
        INVALID,
        "invalid_request",
        "default_options.queue",
    ),
    GrpcCase(
        "batch-300-invalid",
        "EnqueueBatch",
        job_pb2.EnqueueBatchRequest(jobs=[job_pb2.BatchJobEntry(type="Not A Type") for _ in range(300)]),
        INVALID,
        "invalid_request",
    ),
    GrpcCase(
        "job-json-surrogate",
        "Enqueue",
        job_pb2.EnqueueRequest(job_json=b'{"type":"a","args":["\\ud800"]}'),
        INVALID,
        "invalid_payload",
    ),
    GrpcCase(
        "job-5-MB",
        "Enqueue",
        job_pb2.EnqueueRequest(job_json=body({**job(), "args": ["x" * 5_000_000]})),
        EXHAUSTED,
        "payload_too_large",
        "envelope",
    ),
    GrpcCase(
        "fetch-100000-queues",
        "Fetch",
        worker_pb2.FetchRequest(queues=TOO_MANY_QUEUES),
        INVALID,
        "invalid_request",
        "queues",
    ),
    GrpcCase(
        "fetch-visibility-2^62",
        "Fetch",
        worker_pb2.FetchRequest(queues=["q"], visibility_timeout_ms=2**62),
        INVALID,
        "invalid_request",
        "visibility_timeout_ms",
    ),
    GrpcCase(
        "heartbeat-extend-10000-years",
        "Heartbeat",
        worker_pb2.HeartbeatRequest(worker_id="w", extend_by=MAX_DURATION),
        INVALID,
        "invalid_request",
    ),
    GrpcCase(
        "garbage-bytes",
        "Enqueue",
        b"\xff\xff\xff\xff",
        INVALID,
        "invalid_payload",
    ),
]
