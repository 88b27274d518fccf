"""Cross-cutting HTTP rules: headers, request ids, error envelopes, auth, limits, CORS."""

from __future__ import annotations

import logging
import re

import grpc
import orjson
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from ojs.v1 import job_pb2, queue_pb2, service_pb2, worker_pb2

from gateway.app import create_app
from gateway.client import RpcStatusError
from tests.gateway.conftest import JOB_ID, MEDIA_TYPE, FakeClient, MakeClient, fresh_job, rpc_error

REQUEST_ID_RE = re.compile(r"^req_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NOT_FOUND = rpc_error(
    grpc.StatusCode.NOT_FOUND,
    "not_found",
    f"job '{JOB_ID}' not found",
    resource="job",
    id=JOB_ID,
    details_json=orjson.dumps({"resource": "job", "id": JOB_ID}).decode(),
)


def assert_ojs_headers(headers, request_id: str | None = None) -> None:
    assert headers["Content-Type"] == MEDIA_TYPE
    assert headers["OJS-Version"] == "1.0"
    if request_id is None:
        assert REQUEST_ID_RE.match(headers["X-Request-Id"])
    else:
        assert headers["X-Request-Id"] == request_id


async def test_created_job_headers_and_location(make_client: MakeClient) -> None:
    fake = FakeClient(Enqueue=job_pb2.EnqueueResponse(job=fresh_job()))
    client = await make_client(fake)
    body = b'{"type":"email.send","args":["user@example.com","welcome"]}'

    resp = await client.post("/ojs/v1/jobs", data=body, headers={"Content-Type": MEDIA_TYPE})

    assert resp.status == 201
    assert_ojs_headers(resp.headers)
    assert resp.headers["Location"] == f"/ojs/v1/jobs/{JOB_ID}"
    request, metadata = fake.last("Enqueue")
    assert request.job_json == body
    # The generated id is the one the service saw.
    assert metadata["x-ojs-request-id"] == resp.headers["X-Request-Id"]


async def test_request_id_is_echoed_to_header_metadata_and_error(make_client: MakeClient) -> None:
    fake = FakeClient(GetJob=NOT_FOUND)
    client = await make_client(fake)

    resp = await client.get(
        f"/ojs/v1/jobs/{JOB_ID}", headers={"X-Request-Id": "req_client-123", "traceparent": "00-a-b-01"}
    )

    assert_ojs_headers(resp.headers, "req_client-123")
    error = (await resp.json(content_type=None))["error"]
    assert error["request_id"] == "req_client-123"
    _, metadata = fake.last("GetJob")
    assert metadata == {"x-ojs-request-id": "req_client-123", "traceparent": "00-a-b-01"}


async def test_generated_request_ids_are_unique(make_client: MakeClient) -> None:
    client = await make_client(FakeClient(Health=service_pb2.HealthResponse(status=service_pb2.HEALTH_STATUS_OK)))
    ids = {(await client.get("/ojs/v1/health")).headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5 and all(REQUEST_ID_RE.match(i) for i in ids)


async def test_not_found_envelope(make_client: MakeClient) -> None:
    client = await make_client(FakeClient(GetJob=NOT_FOUND))

    resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

    assert resp.status == 404
    assert_ojs_headers(resp.headers)
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "not_found"
    assert error["message"] == f"job '{JOB_ID}' not found"
    assert error["retryable"] is False
    assert error["request_id"] == resp.headers["X-Request-Id"]
    assert error["details"] == {"resource": "job", "id": JOB_ID}
    assert isinstance(error["hint"], str) and error["hint"]
    assert error["docs_url"].startswith("https://")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", MEDIA_TYPE),
        (b"   ", MEDIA_TYPE),
        (b"{ invalid json }", MEDIA_TYPE),
        (b'["type", "args"]', MEDIA_TYPE),
        (b'"just a string"', "application/json"),
    ],
    ids=["empty", "blank", "invalid", "array", "string"],
)
async def test_body_must_be_a_json_object(make_client: MakeClient, body: bytes, content_type: str) -> None:
    fake = FakeClient()
    client = await make_client(fake)

    resp = await client.post("/ojs/v1/jobs", data=body, headers={"Content-Type": content_type})

    assert resp.status == 400
    assert_ojs_headers(resp.headers)
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "invalid_payload"
    assert error["retryable"] is False and error["message"]
    assert fake.calls == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", f"{MEDIA_TYPE}"])
async def test_accepted_content_types(make_client: MakeClient, content_type: str) -> None:
    client = await make_client(FakeClient(Enqueue=job_pb2.EnqueueResponse(job=fresh_job())))
    resp = await client.post("/ojs/v1/jobs", data=b'{"type":"a","args":[]}', headers={"Content-Type": content_type})
    assert resp.status == 201


async def test_missing_content_type_is_accepted(make_client: MakeClient) -> None:
    client = await make_client(FakeClient(Enqueue=job_pb2.EnqueueResponse(job=fresh_job())))
    resp = await client.post("/ojs/v1/jobs", data=b'{"type":"a","args":[]}', skip_auto_headers=["Content-Type"])
    assert resp.status == 201


async def test_unsupported_content_type(make_client: MakeClient) -> None:
    fake = FakeClient()
    client = await make_client(fake)

    resp = await client.post("/ojs/v1/jobs", data=b'{"type":"a","args":[]}', headers={"Content-Type": "text/plain"})

    assert resp.status == 400
    assert_ojs_headers(resp.headers)
    assert (await resp.json(content_type=None))["error"]["code"] == "invalid_request"
    assert fake.calls == []


async def test_body_over_the_limit(make_client: MakeClient) -> None:
    fake = FakeClient()
    client = await make_client(fake, max_body_bytes=1024)
    body = b'{"type":"a","args":["' + b"x" * 2048 + b'"]}'

    resp = await client.post("/ojs/v1/jobs", data=body, headers={"Content-Type": MEDIA_TYPE})

    assert resp.status == 413
    assert_ojs_headers(resp.headers)
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "payload_too_large" and error["retryable"] is False
    assert error["details"] == {"max_bytes": 1024}
    assert fake.calls == []


async def test_unknown_route(make_client: MakeClient) -> None:
    client = await make_client(FakeClient())

    resp = await client.get("/ojs/v1/nothing-here", headers={"X-Request-Id": "r-404"})

    assert resp.status == 404
    assert_ojs_headers(resp.headers, "r-404")
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "not_found" and error["request_id"] == "r-404"
    assert error["hint"] and error["docs_url"]


async def test_wrong_method(make_client: MakeClient) -> None:
    client = await make_client(FakeClient())

    resp = await client.put("/ojs/v1/jobs", data=b"{}", headers={"Content-Type": MEDIA_TYPE})

    assert resp.status == 405
    assert_ojs_headers(resp.headers)
    assert resp.headers["Allow"] == "POST"
    error = (await resp.json(content_type=None))["error"]
    assert error["code"] == "invalid_request" and error["message"]


@pytest.mark.parametrize(
    ("version", "status"),
    [("1.0", 200), ("1", 200), ("1.0.0-rc.1", 200), ("1.3", 200), ("2.0", 422), ("0.9", 422), ("one", 422)],
)
async def test_ojs_version_header(make_client: MakeClient, version: str, status: int) -> None:
    client = await make_client(FakeClient(GetJob=job_pb2.GetJobResponse(job=fresh_job())))

    resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}", headers={"OJS-Version": version})

    assert resp.status == status
    assert_ojs_headers(resp.headers)
    if status == 422:
        assert (await resp.json(content_type=None))["error"]["code"] == "unsupported"


@pytest.mark.parametrize("version", ["2.0", "0.9", "1.0.0-rc.1"])
async def test_discovery_never_refuses_a_version(make_client: MakeClient, version: str) -> None:
    client = await make_client(
        FakeClient(
            Health=service_pb2.HealthResponse(status=service_pb2.HEALTH_STATUS_OK),
            Manifest=service_pb2.ManifestResponse(manifest_json=b'{"specversion":"1.0"}'),
        )
    )
    for path in ("/ojs/v1/health", "/ojs/manifest"):
        resp = await client.get(path, headers={"OJS-Version": version})
        assert resp.status == 200
        assert_ojs_headers(resp.headers)


async def test_response_content_type_setting(make_client: MakeClient) -> None:
    client = await make_client(
        FakeClient(GetJob=job_pb2.GetJobResponse(job=fresh_job()), Enqueue=job_pb2.EnqueueResponse(job=fresh_job())),
        response_media_type="application/json",
    )
    ok = await client.get(f"/ojs/v1/jobs/{JOB_ID}", headers={"Accept": MEDIA_TYPE})
    assert ok.headers["Content-Type"] == "application/json"
    created = await client.post("/ojs/v1/jobs", data=b'{"type":"a.b","args":[]}', headers={"Content-Type": MEDIA_TYPE})
    assert created.status == 201 and created.headers["Content-Type"] == "application/json"
    error = await client.get("/ojs/v1/nothing-here")
    assert error.status == 404 and error.headers["Content-Type"] == "application/json"


def test_response_content_type_must_be_a_json_type() -> None:
    with pytest.raises(ValueError, match="response media type"):
        create_app(FakeClient(), response_media_type="text/plain")


class TestAuth:
    KEY = "s3cret-key"

    def fake(self) -> FakeClient:
        return FakeClient(
            Health=service_pb2.HealthResponse(status=service_pb2.HEALTH_STATUS_OK),
            Manifest=service_pb2.ManifestResponse(manifest_json=b'{"specversion":"1.0"}'),
            GetJob=job_pb2.GetJobResponse(job=fresh_job()),
            ListWorkers=worker_pb2.ListWorkersResponse(),
            SetWorkerDirective=worker_pb2.SetWorkerDirectiveResponse(worker=worker_pb2.WorkerInfo(worker_id="w")),
            ListDeadLetter=queue_pb2.ListDeadLetterResponse(),
        )

    async def test_no_key_configured_means_open(self, make_client: MakeClient) -> None:
        client = await make_client(self.fake())
        assert (await client.get(f"/ojs/v1/jobs/{JOB_ID}")).status == 200

    @pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0LWtleQ==", "Bearer", "s3cret-key"])
    async def test_rejected(self, make_client: MakeClient, authorization: str | None) -> None:
        fake = self.fake()
        client = await make_client(fake, api_key=self.KEY)
        headers = {} if authorization is None else {"Authorization": authorization}

        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}", headers=headers)

        assert resp.status == 401
        assert_ojs_headers(resp.headers)
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await resp.json(content_type=None))["error"]["code"] == "unauthenticated"
        assert fake.calls == []

    async def test_accepted(self, make_client: MakeClient) -> None:
        client = await make_client(self.fake(), api_key=self.KEY)
        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}", headers={"Authorization": f"bearer {self.KEY}"})
        assert resp.status == 200

    async def test_health_and_manifest_stay_open(self, make_client: MakeClient) -> None:
        client = await make_client(self.fake(), api_key=self.KEY)
        assert (await client.get("/ojs/v1/health")).status == 200
        assert (await client.get("/ojs/manifest")).status == 200

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/ojs/v1/admin/workers"),
            ("POST", "/ojs/v1/admin/workers/w/quiet"),
            ("POST", "/ojs/v1/admin/workers/w/terminate"),
            ("POST", "/ojs/v1/admin/workers/w/resume"),
            ("GET", "/ojs/v1/dead-letter"),
        ],
    )
    async def test_admin_routes_need_the_key(self, make_client: MakeClient, method: str, path: str) -> None:
        fake = self.fake()
        client = await make_client(fake, api_key=self.KEY)

        denied = await client.request(method, path)
        allowed = await client.request(method, path, headers={"Authorization": f"Bearer {self.KEY}"})

        assert (denied.status, allowed.status) == (401, 200)
        assert len(fake.calls) == 1

    async def test_unknown_routes_need_the_key_too(self, make_client: MakeClient) -> None:
        client = await make_client(self.fake(), api_key=self.KEY)
        assert (await client.get("/ojs/v1/secret-route")).status == 401


class TestServiceErrors:
    async def test_unavailable_without_error_info(self, make_client: MakeClient) -> None:
        # What a grpc.aio channel raises when the server cannot be reached: no rich status.
        failure = RpcStatusError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; 10.0.0.7:9090")
        client = await make_client(FakeClient(GetJob=failure))

        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

        assert resp.status == 503
        assert_ojs_headers(resp.headers)
        assert int(resp.headers["Retry-After"]) >= 1
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "backend_unavailable" and error["retryable"] is True
        # grpc's own text (addresses) stays in the log.
        assert "10.0.0.7" not in error["message"]

    async def test_backend_unavailable_reason(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.UNAVAILABLE, "backend_unavailable", "redis is unreachable", retryable=True)
        client = await make_client(FakeClient(GetJob=failure))

        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

        assert resp.status == 503
        assert resp.headers["Retry-After"].isdigit()
        error = (await resp.json(content_type=None))["error"]
        assert error == {
            "code": "backend_unavailable",
            "message": "redis is unreachable",
            "retryable": True,
            "request_id": resp.headers["X-Request-Id"],
            "docs_url": error["docs_url"],
        }

    async def test_rate_limited_uses_retry_info(self, make_client: MakeClient) -> None:
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=7, nanos=200_000_000))
        failure = rpc_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited", "slow down", retryable=True, extra=[retry]
        )
        client = await make_client(FakeClient(GetJob=failure))

        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

        assert resp.status == 429
        assert resp.headers["Retry-After"] == "8"

    @pytest.mark.parametrize(
        ("grpc_code", "reason", "status"),
        [
            (grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", 400),
            (grpc.StatusCode.INVALID_ARGUMENT, "schema_validation", 400),
            (grpc.StatusCode.INVALID_ARGUMENT, "validation_error", 422),
            (grpc.StatusCode.ALREADY_EXISTS, "duplicate", 409),
            (grpc.StatusCode.FAILED_PRECONDITION, "conflict", 409),
            (grpc.StatusCode.FAILED_PRECONDITION, "queue_paused", 422),
            (grpc.StatusCode.FAILED_PRECONDITION, "unsupported", 422),
            (grpc.StatusCode.UNIMPLEMENTED, "unimplemented", 501),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "payload_too_large", 413),
            (grpc.StatusCode.PERMISSION_DENIED, "permission_denied", 403),
            (grpc.StatusCode.INTERNAL, "backend_error", 500),
            # Unknown reasons fall back to the gRPC code.
            (grpc.StatusCode.FAILED_PRECONDITION, "x_custom", 409),
            (grpc.StatusCode.DEADLINE_EXCEEDED, "x_slow", 504),
            (grpc.StatusCode.DATA_LOSS, "x_lost", 500),
        ],
    )
    async def test_reason_to_status(self, make_client: MakeClient, grpc_code, reason: str, status: int) -> None:
        client = await make_client(FakeClient(GetJob=rpc_error(grpc_code, reason, "it failed")))

        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

        assert resp.status == status
        assert_ojs_headers(resp.headers)
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == reason and error["message"] == "it failed"

    async def test_validation_error_fields(self, make_client: MakeClient) -> None:
        violation = error_details_pb2.BadRequest.FieldViolation(field="options.retry.backoff_coefficient")
        failure = rpc_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "validation_error",
            "options.retry.backoff_coefficient must be >= 1",
            type="validation_error",
            request_id="ignored-the-http-one-wins",
            field="options.retry.backoff_coefficient",
            minimum="1",
            details_json=orjson.dumps({"field": "options.retry.backoff_coefficient", "minimum": 1}).decode(),
            extra=[error_details_pb2.BadRequest(field_violations=[violation])],
        )
        client = await make_client(FakeClient(Enqueue=failure))

        resp = await client.post("/ojs/v1/jobs", json={"type": "a", "args": [], "options": {"retry": {}}})

        assert resp.status == 422
        error = (await resp.json(content_type=None))["error"]
        assert error["type"] == "validation_error"
        assert error["retryable"] is False
        assert error["request_id"] == resp.headers["X-Request-Id"]
        # details_json keeps JSON types; plain metadata values are strings.
        assert error["details"]["minimum"] == 1
        assert error["details"]["field"] == "options.retry.backoff_coefficient"
        assert error["details"]["field_violations"] == [
            {"field": "options.retry.backoff_coefficient", "description": ""}
        ]
        assert "details_json" not in error["details"] and "type" not in error["details"]

    async def test_retryable_comes_from_error_info(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "conflict", "busy", retryable=True)
        client = await make_client(FakeClient(GetJob=failure))
        error = (await (await client.get(f"/ojs/v1/jobs/{JOB_ID}")).json(content_type=None))["error"]
        assert error["retryable"] is True

    async def test_unexpected_exception_is_a_500_envelope(
        self, make_client: MakeClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        client = await make_client(FakeClient(GetJob=RuntimeError("kaboom")))

        with caplog.at_level(logging.ERROR, logger="gateway"):
            resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

        assert resp.status == 500
        assert_ojs_headers(resp.headers)
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "backend_error" and error["retryable"] is True
        assert "kaboom" not in error["message"]
        assert any(record.exc_info for record in caplog.records)


class TestCors:
    async def test_preflight(self, make_client: MakeClient) -> None:
        fake = FakeClient()
        client = await make_client(fake)

        resp = await client.options(
            "/ojs/v1/jobs", headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
        )

        assert resp.status == 204
        assert_ojs_headers(resp.headers)
        assert resp.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, DELETE, OPTIONS"
        assert resp.headers["Access-Control-Allow-Headers"] == (
            "Content-Type, Accept, Authorization, X-Request-Id, OJS-Version"
        )
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]
        assert fake.calls == []

    async def test_no_wildcard_when_authenticated(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(), api_key="k", cors_origins=["https://ui.example"])

        allowed = await client.options("/ojs/v1/jobs", headers={"Origin": "https://ui.example"})
        other = await client.options("/ojs/v1/jobs", headers={"Origin": "https://evil.example"})

        assert allowed.status == 204
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://ui.example"
        assert "Access-Control-Allow-Origin" not in other.headers
