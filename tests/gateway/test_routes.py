"""Each route: the request message it builds and the JSON it renders."""

from __future__ import annotations

import grpc
import orjson
import pytest
from google.protobuf import struct_pb2
from ojs.v1 import events_pb2, job_pb2, queue_pb2, service_pb2, worker_pb2

from tests.gateway.conftest import JOB_ID, MEDIA_TYPE, FakeClient, MakeClient, fresh_job, ms, rpc_error, ts


def active_job(**fields) -> job_pb2.Job:
    defaults = {
        "state": job_pb2.JOB_STATE_ACTIVE,
        "attempt": 1,
        "started_at": ts("2026-02-12T10:30:05Z"),
        "worker_id": "w-1",
    }
    return fresh_job(**{**defaults, **fields})


class TestEnqueue:
    async def test_fresh_job_omits_unset_fields(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(Enqueue=job_pb2.EnqueueResponse(job=fresh_job())))

        resp = await client.post("/ojs/v1/jobs", json={"type": "email.send", "args": ["user@example.com", "welcome"]})

        job = (await resp.json(content_type=None))["job"]
        assert job == {
            "id": JOB_ID,
            "type": "email.send",
            "queue": "default",
            "args": ["user@example.com", "welcome"],
            "meta": {},
            "priority": 0,
            "state": "available",
            "attempt": 0,
            "max_attempts": 3,
            "created_at": "2026-02-12T10:30:00.123Z",
            "enqueued_at": "2026-02-12T10:30:00.123Z",
            "specversion": "1.0",
        }

    async def test_raw_body_goes_to_the_server(self, make_client: MakeClient) -> None:
        fake = FakeClient(Enqueue=job_pb2.EnqueueResponse(job=fresh_job()))
        client = await make_client(fake)
        # Not validated here: no type, bad priority, unknown fields all reach the server untouched.
        body = b'{"args": [18446744073709551617, 1.50], "options": {"priority": 999}, "x_field": {"a": 1}}'

        await client.post("/ojs/v1/jobs", data=body, headers={"Content-Type": MEDIA_TYPE})

        request, _ = fake.last("Enqueue")
        assert request.job_json == body
        assert not request.type and not request.args and not request.HasField("options")

    async def test_args_are_rendered_byte_exact(self, make_client: MakeClient) -> None:
        args = b'[18446744073709551617,1.50,1e3,-0.0,{"k":[true,null]},"\\u00e9"]'
        client = await make_client(FakeClient(Enqueue=job_pb2.EnqueueResponse(job=fresh_job(args_json=args))))

        resp = await client.post("/ojs/v1/jobs", json={"type": "a", "args": []})

        assert b'"args":' + args in await resp.read()

    async def test_extra_json_merged_at_top_level(self, make_client: MakeClient) -> None:
        extra = b'{"x_custom_field":"custom_value","x_big":123456789012345678901234,"state":"hacked","queue":"no"}'
        client = await make_client(FakeClient(Enqueue=job_pb2.EnqueueResponse(job=fresh_job(extra_json=extra))))

        resp = await client.post("/ojs/v1/jobs", json={"type": "a", "args": []})

        raw = await resp.read()
        job = orjson.loads(raw)["job"]
        assert job["x_custom_field"] == "custom_value"
        assert b'"x_big":123456789012345678901234' in raw
        # Unknown fields never override the server's own.
        assert job["state"] == "available" and job["queue"] == "default"

    async def test_deduplicated(self, make_client: MakeClient) -> None:
        response = job_pb2.EnqueueResponse(job=fresh_job(), deduplicated=True)
        client = await make_client(FakeClient(Enqueue=response))

        resp = await client.post("/ojs/v1/jobs", json={"type": "a", "args": []})

        assert resp.status == 200
        assert "Location" not in resp.headers
        body = await resp.json(content_type=None)
        assert body["deduplicated"] is True and body["job"]["id"] == JOB_ID

    async def test_duplicate(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.ALREADY_EXISTS, "duplicate", f"job '{JOB_ID}' already exists")
        client = await make_client(FakeClient(Enqueue=failure))

        resp = await client.post("/ojs/v1/jobs", json={"type": "a", "args": [], "id": JOB_ID})

        assert resp.status == 409
        assert (await resp.json(content_type=None))["error"]["code"] == "duplicate"


class TestJobRendering:
    def full_job(self) -> job_pb2.Job:
        job = active_job(
            meta_json=b'{"trace_id":"t-1","n":1.0}',
            priority=-5,
            scheduled_at=ts("2026-02-12T10:29:00Z"),
            expires_at=ts("2099-12-31T23:59:59Z"),
            lease_expires_at=ts("2026-02-12T11:00:05.5Z"),
            timeout=ms(60_000),
            visibility_timeout=ms(30_500),
            tags=["a", "b"],
            retry_policy=job_pb2.RetryPolicy(
                max_attempts=5,
                initial_interval=ms(500),
                backoff_coefficient=2.0,
                max_interval=ms(300_000),
                jitter=False,
                non_retryable_errors=["Auth.*"],
                on_exhaustion="dead_letter",
                backoff_strategy="linear",
            ),
            unique_policy=job_pb2.UniquePolicy(
                keys=["type", "args"],
                period=ms(3_600_000),
                on_conflict=job_pb2.UNIQUE_CONFLICT_ACTION_IGNORE,
                states=[job_pb2.JOB_STATE_AVAILABLE, job_pb2.JOB_STATE_ACTIVE],
            ),
            result_json=b"[1,2,3]",
            error=job_pb2.JobError(code="handler_error", message="boom", retryable=True, attempt=1),
            retry_delay_ms=0,
            parent_results_json=b'[{"ok":true}]',
            workflow_id="wf-1",
            schema="urn:ojs:schema:email.send:v1",
            trace_id="trace-9",
            lease_token=7,
        )
        details = struct_pb2.Struct()
        details.update({"error_class": "SmtpError", "port": 587})
        job.errors.add(
            code="handler_error",
            message="boom",
            type="Smtp.Timeout",
            retryable=True,
            attempt=1,
            occurred_at=ts("2026-02-12T10:30:06.007Z"),
            backtrace="line 1\nline 2",
            details=details,
        )
        return job

    async def test_every_field(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(GetJob=job_pb2.GetJobResponse(job=self.full_job())))

        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")

        job = (await resp.json(content_type=None))["job"]
        assert job["meta"] == {"trace_id": "t-1", "n": 1.0}
        assert job["priority"] == -5 and job["state"] == "active" and job["attempt"] == 1
        assert job["started_at"] == "2026-02-12T10:30:05Z"
        assert job["scheduled_at"] == "2026-02-12T10:29:00Z"
        assert job["expires_at"] == "2099-12-31T23:59:59Z"
        assert job["lease_expires_at"] == "2026-02-12T11:00:05.500Z"
        assert job["timeout_ms"] == 60_000 and job["visibility_timeout_ms"] == 30_500
        assert job["tags"] == ["a", "b"]
        assert job["retry"] == {
            "max_attempts": 5,
            "initial_interval": "PT0.5S",
            "backoff_coefficient": 2.0,
            "max_interval": "PT5M",
            "jitter": False,
            "non_retryable_errors": ["Auth.*"],
            "on_exhaustion": "dead_letter",
            "backoff_strategy": "linear",
        }
        assert job["unique"] == {
            "keys": ["type", "args"],
            "period": "PT1H",
            "on_conflict": "ignore",
            "states": ["available", "active"],
        }
        assert job["result"] == [1, 2, 3]
        # JobError.type falls back to the code.
        assert job["error"] == {
            "code": "handler_error",
            "message": "boom",
            "type": "handler_error",
            "retryable": True,
            "attempt": 1,
        }
        assert job["errors"] == [
            {
                "code": "handler_error",
                "message": "boom",
                "type": "Smtp.Timeout",
                "retryable": True,
                "attempt": 1,
                "occurred_at": "2026-02-12T10:30:06.007Z",
                "details": {"error_class": "SmtpError", "port": 587},
                "backtrace": "line 1\nline 2",
            }
        ]
        # An explicitly set zero is still set.
        assert job["retry_delay_ms"] == 0
        assert job["parent_results"] == [{"ok": True}]
        assert job["workflow_id"] == "wf-1" and job["worker_id"] == "w-1"
        assert job["schema"] == "urn:ojs:schema:email.send:v1" and job["trace_id"] == "trace-9"
        assert job["lease_token"] == 7
        for absent in ("completed_at", "cancelled_at", "discarded_at", "next_attempt_at"):
            assert absent not in job

    async def test_official_fields_when_no_json_extensions(self, make_client: MakeClient) -> None:
        job = job_pb2.Job(id=JOB_ID, type="a", queue="q", state=job_pb2.JOB_STATE_COMPLETED)
        job.args.add().number_value = 42
        job.args.add().string_value = "x"
        job.args.add().list_value.values.add().bool_value = True
        job.meta.update({"user": "u"})
        job.result.update({"ok": True, "count": 2})
        client = await make_client(FakeClient(GetJob=job_pb2.GetJobResponse(job=job)))

        body = await (await client.get(f"/ojs/v1/jobs/{JOB_ID}")).json(content_type=None)

        assert body["job"]["args"] == [42, "x", [True]]
        assert body["job"]["meta"] == {"user": "u"}
        assert body["job"]["result"] == {"ok": True, "count": 2}
        assert body["job"]["specversion"] == "1.0"
        assert "created_at" not in body["job"]
        # Zero means no lease was ever taken.
        assert "lease_token" not in body["job"]

    async def test_lease_token_is_not_overridden_by_unknown_fields(self, make_client: MakeClient) -> None:
        job = active_job(lease_token=2**62, extra_json=b'{"lease_token":1}')
        client = await make_client(FakeClient(GetJob=job_pb2.GetJobResponse(job=job)))

        body = await (await client.get(f"/ojs/v1/jobs/{JOB_ID}")).json(content_type=None)

        assert body["job"]["lease_token"] == 2**62


async def test_cancel_adds_previous_state(make_client: MakeClient) -> None:
    job = fresh_job(state=job_pb2.JOB_STATE_CANCELLED, cancelled_at=ts("2026-02-12T10:31:00Z"))
    response = job_pb2.CancelJobResponse(job=job, previous_state=job_pb2.JOB_STATE_AVAILABLE)
    fake = FakeClient(CancelJob=response)
    client = await make_client(fake)

    resp = await client.delete(f"/ojs/v1/jobs/{JOB_ID}")

    assert resp.status == 200
    body = await resp.json(content_type=None)
    assert body["job"]["state"] == "cancelled"
    assert body["job"]["cancelled_at"] == "2026-02-12T10:31:00Z"
    assert body["job"]["previous_state"] == "available"
    assert "completed_at" not in body["job"]
    assert fake.last("CancelJob")[0].job_id == JOB_ID


async def test_activate(make_client: MakeClient) -> None:
    fake = FakeClient(ActivateJob=job_pb2.ActivateJobResponse(job=fresh_job()))
    client = await make_client(fake)

    resp = await client.post(f"/ojs/v1/jobs/{JOB_ID}/activate")

    assert resp.status == 200
    assert (await resp.json(content_type=None))["job"]["state"] == "available"
    assert fake.last("ActivateJob")[0].job_id == JOB_ID


class TestFetch:
    async def test_request_and_response(self, make_client: MakeClient) -> None:
        fake = FakeClient(Fetch=worker_pb2.FetchResponse(jobs=[active_job(lease_token=3)]))
        client = await make_client(fake)
        body = {"queues": ["high", "default"], "count": 5, "worker_id": "w-1", "visibility_timeout_ms": 30000}

        resp = await client.post("/ojs/v1/workers/fetch", json=body)

        assert resp.status == 200
        jobs = (await resp.json(content_type=None))["jobs"]
        assert [j["id"] for j in jobs] == [JOB_ID]
        assert jobs[0]["state"] == "active" and jobs[0]["worker_id"] == "w-1"
        assert jobs[0]["lease_token"] == 3
        request, _ = fake.last("Fetch")
        assert list(request.queues) == ["high", "default"]
        assert request.count == 5 and request.worker_id == "w-1"
        assert request.HasField("visibility_timeout_ms") and request.visibility_timeout_ms == 30000

    async def test_defaults_are_left_to_the_server(self, make_client: MakeClient) -> None:
        fake = FakeClient(Fetch=worker_pb2.FetchResponse())
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/workers/fetch", json={"queues": ["empty"]})

        assert await resp.json(content_type=None) == {"jobs": []}
        request, _ = fake.last("Fetch")
        assert request.count == 0 and not request.HasField("visibility_timeout_ms")

    async def test_out_of_range_values_pass_through(self, make_client: MakeClient) -> None:
        fake = FakeClient(Fetch=worker_pb2.FetchResponse())
        client = await make_client(fake)

        await client.post("/ojs/v1/workers/fetch", json={"queues": [], "count": -3})

        assert fake.last("Fetch")[0].count == -3

    @pytest.mark.parametrize(
        "body",
        [{}, {"queues": "default"}, {"queues": [1]}, {"queues": None}, {"queues": ["a"], "count": "5"}],
        ids=["missing", "string", "numbers", "null", "string-count"],
    )
    async def test_shape_errors(self, make_client: MakeClient, body: dict[str, object]) -> None:
        fake = FakeClient()
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/workers/fetch", json=body)

        assert resp.status == 400
        assert (await resp.json(content_type=None))["error"]["code"] == "invalid_request"
        assert fake.calls == []


class TestAck:
    def response(self) -> worker_pb2.AckResponse:
        job = fresh_job(
            state=job_pb2.JOB_STATE_COMPLETED,
            attempt=1,
            completed_at=ts("2026-02-12T10:30:02.789Z"),
            result_json=b'{"echoed":true}',
        )
        return worker_pb2.AckResponse(acknowledged=True, job=job)

    async def test_request_and_response(self, make_client: MakeClient) -> None:
        fake = FakeClient(Ack=self.response())
        client = await make_client(fake)

        resp = await client.post(
            "/ojs/v1/workers/ack", json={"job_id": JOB_ID, "result": {"echoed": True}, "worker_id": "w-1"}
        )

        body = await resp.json(content_type=None)
        assert body["acknowledged"] is True
        assert body["id"] == body["job_id"] == JOB_ID
        assert body["state"] == "completed"
        assert body["completed_at"] == "2026-02-12T10:30:02.789Z"
        assert body["job"]["result"] == {"echoed": True}
        request, _ = fake.last("Ack")
        assert request.job_id == JOB_ID and request.worker_id == "w-1"
        assert orjson.loads(request.result_json) == {"echoed": True}

    async def test_result_numbers_are_kept(self, make_client: MakeClient) -> None:
        fake = FakeClient(Ack=self.response())
        client = await make_client(fake)
        body = b'{"job_id":"' + JOB_ID.encode() + b'","result":[123456789012345678901234567890,2.50,1e400]}'

        await client.post("/ojs/v1/workers/ack", data=body, headers={"Content-Type": MEDIA_TYPE})

        assert fake.last("Ack")[0].result_json == b"[123456789012345678901234567890,2.50,1e400]"

    @pytest.mark.parametrize(("result", "expected"), [(None, b"null"), ("done", b'"done"'), (7, b"7")])
    async def test_any_json_result(self, make_client: MakeClient, result, expected: bytes) -> None:
        fake = FakeClient(Ack=self.response())
        client = await make_client(fake)
        await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID, "result": result})
        assert fake.last("Ack")[0].result_json == expected

    async def test_no_result(self, make_client: MakeClient) -> None:
        fake = FakeClient(Ack=self.response())
        client = await make_client(fake)
        await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID})
        assert fake.last("Ack")[0].result_json == b""

    async def test_lease_token(self, make_client: MakeClient) -> None:
        fake = FakeClient(Ack=self.response())
        client = await make_client(fake)

        await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID, "lease_token": 42})
        with_token, _ = fake.last("Ack")
        await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID, "lease_token": None})
        null_token, _ = fake.last("Ack")
        await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID})
        without_token, _ = fake.last("Ack")

        assert with_token.HasField("lease_token") and with_token.lease_token == 42
        assert not null_token.HasField("lease_token")
        assert not without_token.HasField("lease_token")

    @pytest.mark.parametrize("token", ["42", 4.2, True, [1], {"t": 1}, 2**63], ids=repr)
    async def test_bad_lease_token(self, make_client: MakeClient, token: object) -> None:
        fake = FakeClient(Ack=self.response())
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID, "lease_token": token})

        assert resp.status == 400
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "invalid_request"
        assert fake.calls == []

    async def test_stale_lease(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "conflict", "lease token 1 is stale")
        fake = FakeClient(Ack=failure)
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID, "lease_token": 1})

        assert resp.status == 409
        assert (await resp.json(content_type=None))["error"]["code"] == "conflict"

    async def test_conflict(self, make_client: MakeClient) -> None:
        failure = rpc_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            "conflict",
            "job is not active",
            current_state="available",
            expected_state="active",
        )
        client = await make_client(FakeClient(Ack=failure))

        resp = await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID})

        assert resp.status == 409
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "conflict" and error["retryable"] is False
        assert error["details"] == {"current_state": "available", "expected_state": "active"}


class TestNack:
    async def test_retryable(self, make_client: MakeClient) -> None:
        job = active_job(
            state=job_pb2.JOB_STATE_RETRYABLE,
            next_attempt_at=ts("2026-02-12T10:30:06.789Z"),
            retry_delay_ms=1000,
        )
        fake = FakeClient(Nack=worker_pb2.NackResponse(state=job_pb2.JOB_STATE_RETRYABLE, job=job))
        client = await make_client(fake)
        error = {
            "code": "handler_error",
            "message": "connection reset",
            "type": "NetworkError",
            "retryable": True,
            "details": {"errno": "ECONNRESET", "port": 587},
            "backtrace": ["frame 1", "frame 2"],
        }

        resp = await client.post(
            "/ojs/v1/workers/nack", json={"job_id": JOB_ID, "error": error, "worker_id": "w-1", "requeue": False}
        )

        body = await resp.json(content_type=None)
        assert {key: body[key] for key in body if key != "job"} == {
            "id": JOB_ID,
            "job_id": JOB_ID,
            "state": "retryable",
            "attempt": 1,
            "max_attempts": 3,
            "next_attempt_at": "2026-02-12T10:30:06.789Z",
            "retry_delay_ms": 1000,
        }
        request, _ = fake.last("Nack")
        assert request.job_id == JOB_ID and request.worker_id == "w-1" and request.requeue is False
        assert request.HasField("retryable") and request.retryable is True
        assert request.error.code == "handler_error" and request.error.type == "NetworkError"
        assert request.error.message == "connection reset" and request.error.retryable is True
        assert dict(request.error.details) == {"errno": "ECONNRESET", "port": 587}
        assert request.error.backtrace == "frame 1\nframe 2"

    async def test_discarded(self, make_client: MakeClient) -> None:
        job = active_job(
            state=job_pb2.JOB_STATE_DISCARDED,
            max_attempts=1,
            discarded_at=ts("2026-02-12T10:45:00Z"),
            completed_at=ts("2026-02-12T10:45:00Z"),
        )
        fake = FakeClient(Nack=worker_pb2.NackResponse(state=job_pb2.JOB_STATE_DISCARDED, job=job))
        client = await make_client(fake)

        resp = await client.post(
            "/ojs/v1/workers/nack", json={"job_id": JOB_ID, "error": {"code": "x", "message": "y"}}
        )

        body = await resp.json(content_type=None)
        assert body["state"] == "discarded" and body["attempt"] == 1 and body["max_attempts"] == 1
        assert body["discarded_at"] == body["completed_at"] == "2026-02-12T10:45:00Z"
        assert "next_attempt_at" not in body and "retry_delay_ms" not in body
        # Retryability unset: the retry policy decides.
        assert not fake.last("Nack")[0].HasField("retryable")

    async def test_requeue(self, make_client: MakeClient) -> None:
        fake = FakeClient(Nack=worker_pb2.NackResponse(state=job_pb2.JOB_STATE_AVAILABLE, job=fresh_job()))
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/workers/nack", json={"job_id": JOB_ID, "requeue": True})

        assert (await resp.json(content_type=None))["state"] == "available"
        request, _ = fake.last("Nack")
        assert request.requeue is True and not request.HasField("error")
        assert not request.HasField("lease_token")

    async def test_lease_token(self, make_client: MakeClient) -> None:
        fake = FakeClient(Nack=worker_pb2.NackResponse(state=job_pb2.JOB_STATE_AVAILABLE, job=fresh_job()))
        client = await make_client(fake)

        await client.post("/ojs/v1/workers/nack", json={"job_id": JOB_ID, "requeue": True, "lease_token": 9})

        request, _ = fake.last("Nack")
        assert request.HasField("lease_token") and request.lease_token == 9

    @pytest.mark.parametrize(
        "body",
        [
            {"job_id": JOB_ID, "error": ["boom"]},
            {"job_id": JOB_ID, "error": {"retryable": "no"}},
            {"job_id": JOB_ID, "error": {"details": [1]}},
            {"job_id": JOB_ID, "requeue": "yes"},
            {"job_id": 12},
            {"job_id": JOB_ID, "lease_token": "9"},
            {"job_id": JOB_ID, "lease_token": 9.5},
        ],
    )
    async def test_shape_errors(self, make_client: MakeClient, body: dict[str, object]) -> None:
        fake = FakeClient()
        client = await make_client(fake)
        resp = await client.post("/ojs/v1/workers/nack", json=body)
        assert resp.status == 400
        assert fake.calls == []


class TestHeartbeat:
    async def test_binding_shape(self, make_client: MakeClient) -> None:
        response = worker_pb2.HeartbeatResponse(
            directed_state=worker_pb2.WORKER_STATE_QUIET,
            jobs_extended=[JOB_ID],
            jobs_cancelled=["j-2"],
            jobs_not_held=["j-3"],
            server_time=ts("2026-02-12T10:30:15Z"),
        )
        fake = FakeClient(Heartbeat=response)
        client = await make_client(fake)

        resp = await client.post(
            "/ojs/v1/workers/heartbeat",
            json={"worker_id": "w-1", "active_jobs": [JOB_ID, "j-2", "j-3"], "visibility_timeout_ms": 45000},
        )

        assert await resp.json(content_type=None) == {
            "state": "quiet",
            "directive": "quiet",
            "jobs_extended": [JOB_ID],
            "jobs_cancelled": ["j-2"],
            "jobs_not_held": ["j-3"],
            "server_time": "2026-02-12T10:30:15Z",
        }
        request, _ = fake.last("Heartbeat")
        assert request.id == request.worker_id == "w-1"
        assert list(request.active_job_ids) == [JOB_ID, "j-2", "j-3"]
        # Worker-level: fencing tokens belong to per-job heartbeats.
        assert not request.HasField("lease_token")
        assert request.extend_by.ToMilliseconds() == 45000
        assert request.current_state == worker_pb2.WORKER_STATE_UNSPECIFIED

    async def test_worker_protocol_shape(self, make_client: MakeClient) -> None:
        fake = FakeClient(Heartbeat=worker_pb2.HeartbeatResponse())
        client = await make_client(fake)

        resp = await client.post(
            "/ojs/v1/workers/heartbeat",
            json={"worker_id": "w-1", "state": "running", "active_jobs": 2, "active_job_ids": ["a", "b", "a"]},
        )

        body = await resp.json(content_type=None)
        assert body["state"] == "running" and body["directive"] == "running" and body["jobs_extended"] == []
        # Always present, so workers can read them without a key check.
        assert body["jobs_cancelled"] == [] and body["jobs_not_held"] == []
        assert body["server_time"].endswith("Z")
        request, _ = fake.last("Heartbeat")
        assert list(request.active_job_ids) == ["a", "b"]
        assert request.current_state == worker_pb2.WORKER_STATE_RUNNING
        assert not request.HasField("extend_by")

    async def test_bad_active_jobs(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient())
        resp = await client.post("/ojs/v1/workers/heartbeat", json={"worker_id": "w", "active_jobs": "j-1"})
        assert resp.status == 400

    @pytest.mark.parametrize(
        ("directed", "word"),
        [(worker_pb2.WORKER_STATE_TERMINATE, "terminate"), (worker_pb2.WORKER_STATE_RUNNING, "running")],
    )
    async def test_directive(
        self, make_client: MakeClient, directed: worker_pb2.WorkerState.ValueType, word: str
    ) -> None:
        client = await make_client(FakeClient(Heartbeat=worker_pb2.HeartbeatResponse(directed_state=directed)))
        resp = await client.post("/ojs/v1/workers/heartbeat", json={"worker_id": "w", "active_jobs": [JOB_ID]})
        body = await resp.json(content_type=None)
        assert body["state"] == body["directive"] == word


async def test_list_queues(make_client: MakeClient) -> None:
    response = queue_pb2.ListQueuesResponse(
        queues=[
            queue_pb2.QueueInfo(name="default", available_count=3, created_at=ts("2026-01-01T00:00:00Z")),
            queue_pb2.QueueInfo(name="reports", paused=True),
        ],
        next_cursor="c-2",
        total=7,
    )
    fake = FakeClient(ListQueues=response)
    client = await make_client(fake)

    resp = await client.get("/ojs/v1/queues?limit=2&cursor=c-1")

    assert await resp.json(content_type=None) == {
        "queues": [
            {
                "name": "default",
                "status": "active",
                "paused": False,
                "available_count": 3,
                "created_at": "2026-01-01T00:00:00Z",
            },
            {"name": "reports", "status": "paused", "paused": True, "available_count": 0},
        ],
        "pagination": {"total": 7, "limit": 2, "has_more": True, "next_cursor": "c-2"},
    }
    request, _ = fake.last("ListQueues")
    assert request.limit == 2 and request.cursor == "c-1"


async def test_list_queues_bad_limit(make_client: MakeClient) -> None:
    client = await make_client(FakeClient())
    resp = await client.get("/ojs/v1/queues?limit=ten")
    assert resp.status == 400
    assert (await resp.json(content_type=None))["error"]["code"] == "invalid_request"


async def test_list_events(make_client: MakeClient) -> None:
    data = b'{"job_type":"test.echo","queue":"q","attempt":1,"duration_ms":12}'
    event = events_pb2.Event(
        id="evt_1",
        type="job.completed",
        job_id=JOB_ID,
        job_type="test.echo",
        queue="q",
        timestamp=ts("2026-02-12T10:30:02.789Z"),
        data_json=data,
        state="completed",
        cursor="1-0",
    )
    fake = FakeClient(ListEvents=events_pb2.ListEventsResponse(events=[event], cursor="1-0", has_more=False))
    client = await make_client(fake)

    resp = await client.get(
        "/ojs/v1/events?types=job.completed,job.failed&types=job.started&queues=q&job_types=test.echo"
        f"&after=0-1&limit=10&job_id={JOB_ID}"
    )

    raw = await resp.read()
    body = orjson.loads(raw)
    assert body["cursor"] == "1-0" and body["has_more"] is False
    (rendered,) = body["events"]
    assert rendered["id"] == "evt_1" and rendered["type"] == "job.completed"
    assert rendered["time"] == "2026-02-12T10:30:02.789Z"
    assert rendered["specversion"] == "1.0" and rendered["source"].startswith("ojs://")
    assert rendered["subject"] == rendered["job_id"] == JOB_ID
    assert rendered["queue"] == "q" and rendered["state"] == "completed"
    assert b'"data":' + data in raw
    request, _ = fake.last("ListEvents")
    assert list(request.types) == ["job.completed", "job.failed", "job.started"]
    assert list(request.queues) == ["q"] and list(request.job_types) == ["test.echo"]
    assert request.after == "0-1" and request.limit == 10 and request.job_id == JOB_ID


class TestHealth:
    @staticmethod
    def response(status: service_pb2.HealthStatus.ValueType, backend_status: str) -> service_pb2.HealthResponse:
        details = struct_pb2.Struct()
        details.update({"backend": {"type": "redis", "status": backend_status, "latency_ms": 2}})
        return service_pb2.HealthResponse(status=status, details=details, version="1.0", uptime_seconds=86400)

    async def test_ok(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(Health=self.response(service_pb2.HEALTH_STATUS_OK, "connected")))

        resp = await client.get("/ojs/v1/health")

        assert resp.status == 200
        assert await resp.json(content_type=None) == {
            "status": "ok",
            "version": "1.0",
            "uptime_seconds": 86400,
            "backend": {"type": "redis", "status": "connected", "latency_ms": 2},
        }

    @pytest.mark.parametrize(
        ("status", "backend", "http_status"),
        [
            (service_pb2.HEALTH_STATUS_DEGRADED, "connected", 200),
            (service_pb2.HEALTH_STATUS_DEGRADED, "disconnected", 503),
            (service_pb2.HEALTH_STATUS_UNHEALTHY, "disconnected", 503),
        ],
    )
    async def test_degraded(
        self, make_client: MakeClient, status: service_pb2.HealthStatus.ValueType, backend: str, http_status: int
    ) -> None:
        client = await make_client(FakeClient(Health=self.response(status, backend)))

        resp = await client.get("/ojs/v1/health")

        assert resp.status == http_status
        body = await resp.json(content_type=None)
        assert body["status"] == "degraded" and body["backend"]["status"] == backend

    async def test_rpc_failure(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.UNAVAILABLE, "backend_unavailable", "connection refused", retryable=True)
        client = await make_client(FakeClient(Health=failure))

        resp = await client.get("/ojs/v1/health")

        assert resp.status == 503
        assert resp.headers["Content-Type"] == MEDIA_TYPE
        assert "Retry-After" in resp.headers
        assert await resp.json(content_type=None) == {
            "status": "degraded",
            "backend": {"type": "redis", "status": "disconnected", "error": "connection refused"},
        }


async def test_manifest_is_passed_through(make_client: MakeClient) -> None:
    document = b'{"specversion":"1.0","implementation":{"name":"ojs-py-redis"},"conformance_level":0}'
    client = await make_client(FakeClient(Manifest=service_pb2.ManifestResponse(manifest_json=document)))

    resp = await client.get("/ojs/manifest")

    assert resp.status == 200
    assert resp.headers["Content-Type"] == MEDIA_TYPE
    assert await resp.read() == document


class TestDeadLetter:
    async def test_list(self, make_client: MakeClient) -> None:
        job = fresh_job(state=job_pb2.JOB_STATE_DISCARDED, discarded_at=ts("2026-02-12T10:45:00Z"))
        fake = FakeClient(ListDeadLetter=queue_pb2.ListDeadLetterResponse(jobs=[job], total_count=12, next_cursor="n"))
        client = await make_client(fake)

        resp = await client.get("/ojs/v1/dead-letter?queue=email&type=email.send&limit=10&cursor=c")

        body = await resp.json(content_type=None)
        assert [j["id"] for j in body["jobs"]] == [JOB_ID]
        assert body["jobs"][0]["state"] == "discarded"
        assert body["jobs"][0]["discarded_at"] == "2026-02-12T10:45:00Z"
        assert body["pagination"] == {"total": 12, "limit": 10, "has_more": True, "next_cursor": "n"}
        request, _ = fake.last("ListDeadLetter")
        assert request.queue == "email" and request.type == "email.send"
        assert request.limit == 10 and request.cursor == "c"

    async def test_list_defaults(self, make_client: MakeClient) -> None:
        fake = FakeClient(ListDeadLetter=queue_pb2.ListDeadLetterResponse())
        client = await make_client(fake)

        resp = await client.get("/ojs/v1/dead-letter")

        assert await resp.json(content_type=None) == {
            "jobs": [],
            "pagination": {"total": 0, "limit": 50, "has_more": False},
        }
        request, _ = fake.last("ListDeadLetter")
        assert request == queue_pb2.ListDeadLetterRequest()

    async def test_list_bad_limit(self, make_client: MakeClient) -> None:
        fake = FakeClient()
        client = await make_client(fake)
        resp = await client.get("/ojs/v1/dead-letter?limit=many")
        assert resp.status == 400
        assert fake.calls == []

    @pytest.mark.parametrize(
        "body",
        [None, b"", b"{}", b'{"override": {"queue": "x"}}'],
        ids=["no-body", "empty", "empty-object", "object"],
    )
    async def test_retry(self, make_client: MakeClient, body: bytes | None) -> None:
        fake = FakeClient(RetryDeadLetter=queue_pb2.RetryDeadLetterResponse(job=fresh_job()))
        client = await make_client(fake)
        headers = {} if body is None else {"Content-Type": MEDIA_TYPE}

        resp = await client.post(f"/ojs/v1/dead-letter/{JOB_ID}/retry", data=body, headers=headers)

        assert resp.status == 200
        job = (await resp.json(content_type=None))["job"]
        assert job["state"] == "available" and job["attempt"] == 0
        assert fake.last("RetryDeadLetter")[0] == queue_pb2.RetryDeadLetterRequest(job_id=JOB_ID)

    @pytest.mark.parametrize("body", [b"[1]", b"{nope", b'"x"'])
    async def test_retry_body_must_be_an_object(self, make_client: MakeClient, body: bytes) -> None:
        fake = FakeClient()
        client = await make_client(fake)

        resp = await client.post(f"/ojs/v1/dead-letter/{JOB_ID}/retry", data=body, headers={"Content-Type": MEDIA_TYPE})

        assert resp.status == 400
        assert fake.calls == []

    async def test_retry_not_found(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", f"dead letter job '{JOB_ID}' not found")
        client = await make_client(FakeClient(RetryDeadLetter=failure))

        resp = await client.post(f"/ojs/v1/dead-letter/{JOB_ID}/retry")

        assert resp.status == 404
        assert (await resp.json(content_type=None))["error"]["code"] == "not_found"

    async def test_delete(self, make_client: MakeClient) -> None:
        response = queue_pb2.DeleteDeadLetterResponse(job_id=JOB_ID, deleted=True)
        fake = FakeClient(DeleteDeadLetter=response)
        client = await make_client(fake)

        resp = await client.delete(f"/ojs/v1/dead-letter/{JOB_ID}")

        assert resp.status == 200
        assert await resp.json(content_type=None) == {"deleted": True, "job_id": JOB_ID}
        assert fake.last("DeleteDeadLetter")[0].job_id == JOB_ID

    async def test_delete_with_a_bare_response(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(DeleteDeadLetter=queue_pb2.DeleteDeadLetterResponse()))

        resp = await client.delete(f"/ojs/v1/dead-letter/{JOB_ID}")

        assert await resp.json(content_type=None) == {"deleted": True, "job_id": JOB_ID}

    async def test_delete_not_found(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", f"dead letter job '{JOB_ID}' not found")
        client = await make_client(FakeClient(DeleteDeadLetter=failure))

        resp = await client.delete(f"/ojs/v1/dead-letter/{JOB_ID}")

        assert resp.status == 404
        assert (await resp.json(content_type=None))["error"]["code"] == "not_found"


def worker_info(**fields) -> worker_pb2.WorkerInfo:
    defaults = {
        "worker_id": "w-1",
        "state": worker_pb2.WORKER_STATE_RUNNING,
        "directive": worker_pb2.WORKER_STATE_RUNNING,
        "last_heartbeat_at": ts("2026-02-12T10:30:15.25Z"),
        "active_jobs": 2,
    }
    return worker_pb2.WorkerInfo(**{**defaults, **fields})


class TestWorkerAdmin:
    @pytest.mark.parametrize(
        ("action", "directive", "word"),
        [
            ("quiet", worker_pb2.WORKER_STATE_QUIET, "quiet"),
            ("terminate", worker_pb2.WORKER_STATE_TERMINATE, "terminate"),
            ("resume", worker_pb2.WORKER_STATE_RUNNING, "running"),
        ],
    )
    async def test_directive(
        self, make_client: MakeClient, action: str, directive: worker_pb2.WorkerState.ValueType, word: str
    ) -> None:
        def answer(request: worker_pb2.SetWorkerDirectiveRequest) -> worker_pb2.SetWorkerDirectiveResponse:
            worker = worker_info(worker_id=request.worker_id, directive=request.directive)
            return worker_pb2.SetWorkerDirectiveResponse(worker=worker)

        fake = FakeClient(SetWorkerDirective=answer)
        client = await make_client(fake)

        resp = await client.post(f"/ojs/v1/admin/workers/w-7/{action}")

        assert resp.status == 200
        assert await resp.json(content_type=None) == {
            "worker": {
                "id": "w-7",
                "worker_id": "w-7",
                "state": "running",
                "directive": word,
                "last_heartbeat_at": "2026-02-12T10:30:15.250Z",
                "active_jobs": 2,
            }
        }
        request, metadata = fake.last("SetWorkerDirective")
        assert request == worker_pb2.SetWorkerDirectiveRequest(worker_id="w-7", directive=directive)
        assert "x-ojs-request-id" in metadata

    async def test_directive_with_a_body(self, make_client: MakeClient) -> None:
        fake = FakeClient(SetWorkerDirective=worker_pb2.SetWorkerDirectiveResponse(worker=worker_info()))
        client = await make_client(fake)

        accepted = await client.post("/ojs/v1/admin/workers/w-1/quiet", json={"reason": "deploy"})
        rejected = await client.post(
            "/ojs/v1/admin/workers/w-1/quiet", data=b"[]", headers={"Content-Type": MEDIA_TYPE}
        )

        assert (accepted.status, rejected.status) == (200, 400)
        assert len(fake.calls) == 1

    async def test_directive_unknown_worker(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", "worker 'ghost' not found")
        client = await make_client(FakeClient(SetWorkerDirective=failure))

        resp = await client.post("/ojs/v1/admin/workers/ghost/terminate")

        assert resp.status == 404
        assert (await resp.json(content_type=None))["error"]["code"] == "not_found"

    async def test_unknown_action(self, make_client: MakeClient) -> None:
        fake = FakeClient()
        client = await make_client(fake)
        resp = await client.post("/ojs/v1/admin/workers/w-1/pause")
        assert resp.status == 404
        assert fake.calls == []

    async def test_list(self, make_client: MakeClient) -> None:
        response = worker_pb2.ListWorkersResponse(
            workers=[
                worker_info(),
                worker_pb2.WorkerInfo(
                    worker_id="w-2",
                    state=worker_pb2.WORKER_STATE_QUIET,
                    directive=worker_pb2.WORKER_STATE_TERMINATE,
                    last_heartbeat_at=ts("2026-02-12T10:29:00Z"),
                ),
            ],
            next_cursor="c-2",
            total=5,
        )
        fake = FakeClient(ListWorkers=response)
        client = await make_client(fake)

        resp = await client.get("/ojs/v1/admin/workers?limit=2&cursor=c-1")

        assert await resp.json(content_type=None) == {
            "items": [
                {
                    "id": "w-1",
                    "worker_id": "w-1",
                    "state": "running",
                    "directive": "running",
                    "last_heartbeat_at": "2026-02-12T10:30:15.250Z",
                    "active_jobs": 2,
                },
                {
                    "id": "w-2",
                    "worker_id": "w-2",
                    "state": "quiet",
                    "directive": "terminate",
                    "last_heartbeat_at": "2026-02-12T10:29:00Z",
                    "active_jobs": 0,
                },
            ],
            "summary": {"total": 5},
            "pagination": {"total": 5, "limit": 2, "has_more": True, "next_cursor": "c-2"},
        }
        request, _ = fake.last("ListWorkers")
        assert request == worker_pb2.ListWorkersRequest(limit=2, cursor="c-1")

    async def test_list_defaults_and_unknown_state(self, make_client: MakeClient) -> None:
        worker = worker_pb2.WorkerInfo(worker_id="w-3", last_heartbeat_at=ts("2026-02-12T10:29:00Z"))
        fake = FakeClient(ListWorkers=worker_pb2.ListWorkersResponse(workers=[worker], total=1))
        client = await make_client(fake)

        resp = await client.get("/ojs/v1/admin/workers")

        body = await resp.json(content_type=None)
        assert body["items"][0]["state"] == body["items"][0]["directive"] == "unknown"
        assert body["summary"] == {"total": 1}
        assert body["pagination"] == {"total": 1, "limit": 100, "has_more": False}
        assert fake.last("ListWorkers")[0] == worker_pb2.ListWorkersRequest()

    async def test_list_bad_limit(self, make_client: MakeClient) -> None:
        fake = FakeClient()
        client = await make_client(fake)
        resp = await client.get("/ojs/v1/admin/workers?limit=1.5")
        assert resp.status == 400
        assert (await resp.json(content_type=None))["error"]["code"] == "invalid_request"
        assert fake.calls == []
