"""Batch enqueue: the raw batch reaches the server, and its jobs or errors come back."""

from __future__ import annotations

import grpc
import orjson
import pytest
from ojs.v1 import job_pb2

from tests.gateway.conftest import JOB_ID, MEDIA_TYPE, FakeClient, MakeClient, fresh_job, rpc_error

SECOND_JOB_ID = "019539a4-b68c-7def-8000-1a2b3c4d5e70"

BATCH = (
    b'{"jobs": ['
    b'{"type": "email.send", "args": [18446744073709551617, 1.50], "options": {"queue": "bulk"}},'
    b'{"args": [], "x_unknown": true}'
    b'], "default_options": {"priority": 999}}'
)


async def test_raw_body_goes_to_the_server(make_client: MakeClient) -> None:
    fake = FakeClient(EnqueueBatch=job_pb2.EnqueueBatchResponse(jobs=[fresh_job()], count=1))
    client = await make_client(fake)

    resp = await client.post("/ojs/v1/jobs/batch", data=BATCH, headers={"Content-Type": MEDIA_TYPE})

    assert resp.status == 201
    request, metadata = fake.last("EnqueueBatch")
    # Not validated here: the missing type and the odd numbers are the server's to judge.
    assert request.batch_json == BATCH
    assert not request.jobs and not request.HasField("default_options")
    assert metadata["x-ojs-request-id"] == resp.headers["X-Request-Id"]


async def test_renders_jobs_and_count(make_client: MakeClient) -> None:
    jobs = [fresh_job(), fresh_job(id=SECOND_JOB_ID, args_json=b'[{"i":1}]')]
    client = await make_client(FakeClient(EnqueueBatch=job_pb2.EnqueueBatchResponse(jobs=jobs, count=2)))

    resp = await client.post("/ojs/v1/jobs/batch", json={"jobs": [{"type": "a"}, {"type": "b"}]})

    assert resp.status == 201
    assert "Location" not in resp.headers
    body = await resp.json(content_type=None)
    assert set(body) == {"jobs", "count"}
    assert body["count"] == 2
    assert [job["id"] for job in body["jobs"]] == [JOB_ID, SECOND_JOB_ID]
    assert body["jobs"][0]["state"] == "available"
    assert body["jobs"][1]["args"] == [{"i": 1}]


async def test_count_defaults_to_the_jobs_returned(make_client: MakeClient) -> None:
    client = await make_client(FakeClient(EnqueueBatch=job_pb2.EnqueueBatchResponse(jobs=[fresh_job()])))

    resp = await client.post("/ojs/v1/jobs/batch", json={"jobs": [{"type": "a"}]})

    assert (await resp.json(content_type=None))["count"] == 1


async def test_per_job_errors_in_the_response_are_listed(make_client: MakeClient) -> None:
    response = job_pb2.EnqueueBatchResponse(
        jobs=[fresh_job()],
        count=1,
        errors={
            2: job_pb2.BatchJobError(code="invalid_request", message="type is required"),
            1: job_pb2.BatchJobError(code="duplicate", message="already exists"),
        },
    )
    client = await make_client(FakeClient(EnqueueBatch=response))

    resp = await client.post("/ojs/v1/jobs/batch", json={"jobs": [{"type": "a"}, {"type": "a"}, {}]})

    assert (await resp.json(content_type=None))["errors"] == [
        {"index": 1, "code": "duplicate", "message": "already exists"},
        {"index": 2, "code": "invalid_request", "message": "type is required"},
    ]


@pytest.mark.parametrize(
    ("grpc_code", "reason", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", 400),
        (grpc.StatusCode.INVALID_ARGUMENT, "validation_error", 422),
    ],
)
async def test_validation_failure_carries_per_index_details(
    make_client: MakeClient, grpc_code: grpc.StatusCode, reason: str, status: int
) -> None:
    errors = [
        {"index": 2, "code": "invalid_request", "message": "type is required", "field": "jobs[2].type"},
        {"index": 4, "code": "invalid_request", "message": "args must be an array"},
    ]
    failure = rpc_error(
        grpc_code,
        reason,
        "batch rejected: 2 of 5 jobs are invalid",
        type="validation_error",
        details_json=orjson.dumps({"index": 2, "errors": errors}).decode(),
    )
    fake = FakeClient(EnqueueBatch=failure)
    client = await make_client(fake)

    resp = await client.post("/ojs/v1/jobs/batch", json={"jobs": [{"type": "a"}] * 5})

    assert resp.status == status
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == reason
    assert error["message"] == "batch rejected: 2 of 5 jobs are invalid"
    assert error["retryable"] is False
    assert error["type"] == "validation_error"
    assert error["details"] == {"index": 2, "errors": errors}


async def test_payload_too_large_from_the_server(make_client: MakeClient) -> None:
    failure = rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "payload_too_large",
        "batch of 20000 jobs exceeds the limit of 10000",
        details_json=orjson.dumps({"max_jobs": 10000, "count": 20000}).decode(),
    )
    client = await make_client(FakeClient(EnqueueBatch=failure))

    resp = await client.post("/ojs/v1/jobs/batch", json={"jobs": []})

    assert resp.status == 413
    # A too-large request is not a rate limit: no hint to retry.
    assert "Retry-After" not in resp.headers
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "payload_too_large" and error["retryable"] is False
    assert error["details"] == {"max_jobs": 10000, "count": 20000}


async def test_body_over_the_gateway_limit(make_client: MakeClient) -> None:
    fake = FakeClient()
    client = await make_client(fake, max_body_bytes=1024)
    body = orjson.dumps({"jobs": [{"type": "a", "args": ["x" * 100]}] * 20})

    resp = await client.post("/ojs/v1/jobs/batch", data=body, headers={"Content-Type": MEDIA_TYPE})

    assert resp.status == 413
    assert (await resp.json(content_type=None))["error"]["code"] == "payload_too_large"
    assert fake.calls == []


@pytest.mark.parametrize("body", [b"", b"[]", b'[{"type": "a"}]', b"{not json", b'"jobs"'])
async def test_body_must_be_a_json_object(make_client: MakeClient, body: bytes) -> None:
    fake = FakeClient()
    client = await make_client(fake)

    resp = await client.post("/ojs/v1/jobs/batch", data=body, headers={"Content-Type": MEDIA_TYPE})

    assert resp.status == 400
    assert (await resp.json(content_type=None))["error"]["code"] == "invalid_payload"
    assert fake.calls == []


async def test_job_routes_still_resolve(make_client: MakeClient) -> None:
    fake = FakeClient(GetJob=job_pb2.GetJobResponse(job=fresh_job()))
    client = await make_client(fake)

    resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

    assert resp.status == 200
    request, _ = fake.last("GetJob")
    assert request.job_id == JOB_ID
