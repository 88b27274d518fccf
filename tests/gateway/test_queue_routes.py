"""Queue operations: pause, resume and stats."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from ojs.v1 import queue_pb2

from tests.gateway.conftest import MEDIA_TYPE, FakeClient, MakeClient, rpc_error, ts

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")


class TestPause:
    async def test_request_and_render(self, make_client: MakeClient) -> None:
        info = queue_pb2.QueueInfo(
            name="reports", paused=True, available_count=4, paused_at=ts("2026-02-12T10:30:00.5Z")
        )
        fake = FakeClient(PauseQueue=queue_pb2.PauseQueueResponse(queue=info))
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/queues/reports/pause", json={})

        assert resp.status == 200
        assert resp.headers["Content-Type"] == MEDIA_TYPE
        assert await resp.json(content_type=None) == {
            "queue": {
                "name": "reports",
                "paused": True,
                "status": "paused",
                "paused_at": "2026-02-12T10:30:00.500Z",
                "available_count": 4,
            }
        }
        request, metadata = fake.last("PauseQueue")
        assert request.queue == "reports"
        assert metadata["x-ojs-request-id"] == resp.headers["X-Request-Id"]

    async def test_without_queue_in_the_reply(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(PauseQueue=queue_pb2.PauseQueueResponse()))

        resp = await client.post("/ojs/v1/queues/pause-test/pause", json={})

        assert resp.status == 200
        assert await resp.json(content_type=None) == {
            "queue": {"name": "pause-test", "paused": True, "status": "paused"}
        }

    async def test_name_from_the_path_when_the_reply_has_none(self, make_client: MakeClient) -> None:
        response = queue_pb2.PauseQueueResponse(queue=queue_pb2.QueueInfo(paused=True))
        client = await make_client(FakeClient(PauseQueue=response))

        resp = await client.post("/ojs/v1/queues/q-1/pause")

        assert (await resp.json(content_type=None))["queue"]["name"] == "q-1"

    @pytest.mark.parametrize("body", [b"", b"  ", b"{}", b'{"reason": "maintenance"}'])
    async def test_body_is_optional(self, make_client: MakeClient, body: bytes) -> None:
        fake = FakeClient(PauseQueue=queue_pb2.PauseQueueResponse())
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/queues/q/pause", data=body, headers={"Content-Type": MEDIA_TYPE})

        assert resp.status == 200
        request, _ = fake.last("PauseQueue")
        assert request == queue_pb2.PauseQueueRequest(queue="q")

    @pytest.mark.parametrize("body", [b"[]", b"{oops", b'"x"'])
    async def test_body_sent_must_be_an_object(self, make_client: MakeClient, body: bytes) -> None:
        fake = FakeClient()
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/queues/q/pause", data=body, headers={"Content-Type": MEDIA_TYPE})

        assert resp.status == 400
        assert (await resp.json(content_type=None))["error"]["code"] == "invalid_payload"
        assert fake.calls == []

    async def test_percent_encoded_name(self, make_client: MakeClient) -> None:
        fake = FakeClient(PauseQueue=queue_pb2.PauseQueueResponse())
        client = await make_client(fake)

        await client.post("/ojs/v1/queues/a%20b/pause")

        request, _ = fake.last("PauseQueue")
        assert request.queue == "a b"

    async def test_error_is_mapped(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "queue name is invalid", field="queue")
        client = await make_client(FakeClient(PauseQueue=failure))

        resp = await client.post("/ojs/v1/queues/BAD!/pause", json={})

        assert resp.status == 400
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "invalid_request" and error["details"] == {"field": "queue"}


class TestResume:
    async def test_request_and_render(self, make_client: MakeClient) -> None:
        info = queue_pb2.QueueInfo(name="reports", paused=False, available_count=2)
        fake = FakeClient(ResumeQueue=queue_pb2.ResumeQueueResponse(queue=info))
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/queues/reports/resume", json={})

        assert resp.status == 200
        assert await resp.json(content_type=None) == {
            "queue": {"name": "reports", "paused": False, "status": "active", "available_count": 2}
        }
        request, _ = fake.last("ResumeQueue")
        assert request.queue == "reports"

    async def test_without_queue_in_the_reply(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(ResumeQueue=queue_pb2.ResumeQueueResponse()))

        resp = await client.post("/ojs/v1/queues/resume-test/resume")

        assert await resp.json(content_type=None) == {
            "queue": {"name": "resume-test", "paused": False, "status": "active"}
        }

    async def test_get_is_not_allowed(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient())

        resp = await client.get("/ojs/v1/queues/q/resume")

        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"


class TestStats:
    async def test_request_and_render(self, make_client: MakeClient) -> None:
        stats = queue_pb2.QueueStatistics(
            available=2,
            active=1,
            scheduled=3,
            retryable=4,
            dead=5,
            completed_last_hour=6,
            failed_last_hour=7,
            avg_duration_ms=12.5,
            avg_wait_ms=3.25,
            throughput_per_second=0.5,
            paused=True,
            completed=8,
            discarded=9,
            cancelled=10,
            pending=11,
        )
        fake = FakeClient(QueueStats=queue_pb2.QueueStatsResponse(queue="stats-test", stats=stats))
        client = await make_client(fake)
        before = datetime.now(UTC) - timedelta(seconds=1)

        resp = await client.get("/ojs/v1/queues/stats-test/stats")

        assert resp.status == 200
        body = await resp.json(content_type=None)
        counts = {
            "available": 2,
            "active": 1,
            "scheduled": 3,
            "retryable": 4,
            "pending": 11,
            "dead": 5,
            "completed": 8,
            "discarded": 9,
            "cancelled": 10,
            "paused": True,
            "status": "paused",
            "completed_last_hour": 6,
            "failed_last_hour": 7,
            "avg_duration_ms": 12.5,
            "avg_wait_ms": 3.25,
            "throughput_per_second": 0.5,
        }
        assert body["queue"] == {"name": "stats-test", **counts}
        assert body["stats"] == counts
        assert RFC3339_UTC.match(body["computed_at"])
        computed_at = datetime.fromisoformat(body["computed_at"])
        assert before <= computed_at <= datetime.now(UTC) + timedelta(seconds=1)
        request, _ = fake.last("QueueStats")
        assert request.queue == "stats-test"

    async def test_empty_queue(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(QueueStats=queue_pb2.QueueStatsResponse()))

        resp = await client.get("/ojs/v1/queues/fresh/stats")

        body = await resp.json(content_type=None)
        assert body["queue"]["name"] == "fresh"
        assert body["queue"]["available"] == 0 and body["queue"]["completed"] == 0
        assert body["queue"]["paused"] is False and body["queue"]["status"] == "active"
        assert body["stats"]["avg_duration_ms"] == 0

    async def test_error_is_mapped(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.UNAVAILABLE, "backend_unavailable", "redis is unreachable", retryable=True)
        client = await make_client(FakeClient(QueueStats=failure))

        resp = await client.get("/ojs/v1/queues/q/stats")

        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        assert (await resp.json(content_type=None))["error"]["code"] == "backend_unavailable"


async def test_list_queues_shows_paused_at(make_client: MakeClient) -> None:
    response = queue_pb2.ListQueuesResponse(
        queues=[
            queue_pb2.QueueInfo(name="default"),
            queue_pb2.QueueInfo(name="reports", paused=True, paused_at=ts("2026-02-12T10:30:00Z")),
        ],
        total=2,
    )
    client = await make_client(FakeClient(ListQueues=response))

    resp = await client.get("/ojs/v1/queues")

    queues = (await resp.json(content_type=None))["queues"]
    assert "paused_at" not in queues[0]
    assert queues[1]["paused_at"] == "2026-02-12T10:30:00Z"
    assert queues[1]["status"] == "paused" and queues[1]["paused"] is True
