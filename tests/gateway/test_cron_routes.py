"""Cron routes: the request message each builds and the cron object C it renders."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import struct_pb2
from ojs.v1 import job_pb2, service_pb2

from tests.gateway.conftest import MEDIA_TYPE, FakeClient, MakeClient, ms, rpc_error, ts

TEMPLATE = b'{"type":"cron.test.register","args":[{"action":"periodic_task"}],"options":{"queue":"cron-test"}}'


def cron_entry(**fields) -> service_pb2.CronEntry:
    defaults = {
        "name": "nightly",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "overlap_policy": "skip",
        "enabled": True,
        "job_template_json": TEMPLATE,
        "next_run_at": ts("2026-02-12T10:35:00Z"),
        "created_at": ts("2026-02-12T10:30:00.123Z"),
        "updated_at": ts("2026-02-12T10:30:00.123Z"),
    }
    return service_pb2.CronEntry(**{**defaults, **fields})


EXPECTED = {
    "name": "nightly",
    "expression": "*/5 * * * *",
    "cron": "*/5 * * * *",
    "timezone": "UTC",
    "overlap_policy": "skip",
    "enabled": True,
    "job_template": {
        "type": "cron.test.register",
        "args": [{"action": "periodic_task"}],
        "options": {"queue": "cron-test"},
    },
    "type": "cron.test.register",
    "args": [{"action": "periodic_task"}],
    "options": {"queue": "cron-test"},
    "next_run_at": "2026-02-12T10:35:00Z",
    "last_run_at": None,
    "run_count": 0,
    "created_at": "2026-02-12T10:30:00.123Z",
    "updated_at": "2026-02-12T10:30:00.123Z",
}


class TestRegister:
    async def test_raw_body_goes_to_the_server(self, make_client: MakeClient) -> None:
        fake = FakeClient(RegisterCron=service_pb2.RegisterCronResponse(entry=cron_entry(), created=True))
        client = await make_client(fake)
        # Either dialect, unknown fields and odd numbers: nothing is judged here.
        body = b'{"name": "nightly", "cron": "*/5 * * * *", "type": "t", "args": [1.50, 18446744073709551617], "x": 1}'

        await client.post("/ojs/v1/cron", data=body, headers={"Content-Type": MEDIA_TYPE})

        request, metadata = fake.last("RegisterCron")
        assert request.cron_json == body
        assert not request.name and not request.cron and not request.type and not request.args
        assert not request.HasField("options") and not request.HasField("enabled")
        assert metadata["x-ojs-request-id"]

    async def test_created(self, make_client: MakeClient) -> None:
        response = service_pb2.RegisterCronResponse(name="nightly", entry=cron_entry(), created=True)
        client = await make_client(FakeClient(RegisterCron=response))

        resp = await client.post("/ojs/v1/cron", json={"name": "nightly"})

        assert resp.status == 201
        assert await resp.json(content_type=None) == {"cron": EXPECTED, "cron_job": EXPECTED}

    async def test_updated(self, make_client: MakeClient) -> None:
        response = service_pb2.RegisterCronResponse(name="nightly", entry=cron_entry(), created=False)
        client = await make_client(FakeClient(RegisterCron=response))

        resp = await client.post("/ojs/v1/cron", json={"name": "nightly"})

        assert resp.status == 200
        assert (await resp.json(content_type=None))["cron"] == EXPECTED

    async def test_bare_response(self, make_client: MakeClient) -> None:
        response = service_pb2.RegisterCronResponse(name="nightly", next_run_at=ts("2026-02-13T00:00:00Z"))
        client = await make_client(FakeClient(RegisterCron=response))

        resp = await client.post("/ojs/v1/cron", json={"name": "nightly"})

        cron = (await resp.json(content_type=None))["cron"]
        assert cron["name"] == "nightly" and cron["next_run_at"] == "2026-02-13T00:00:00Z"
        assert cron["job_template"] == {"type": "", "args": []}

    @pytest.mark.parametrize(
        "body", [b"", b"{ invalid json }", b'["name"]', b'"cron"'], ids=["empty", "invalid", "array", "string"]
    )
    async def test_body_must_be_a_json_object(self, make_client: MakeClient, body: bytes) -> None:
        fake = FakeClient()
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/cron", data=body, headers={"Content-Type": MEDIA_TYPE})

        assert resp.status == 400
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "invalid_payload" and error["message"]
        assert fake.calls == []

    async def test_invalid_expression(self, make_client: MakeClient) -> None:
        failure = rpc_error(
            grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "invalid cron expression 'not a valid cron'"
        )
        client = await make_client(FakeClient(RegisterCron=failure))

        resp = await client.post("/ojs/v1/cron", json={"name": "bad", "expression": "not a valid cron"})

        assert resp.status == 400
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "invalid_request"
        assert error["message"] == "invalid cron expression 'not a valid cron'"

    async def test_duplicate(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.ALREADY_EXISTS, "duplicate", "cron 'nightly' already exists")
        client = await make_client(FakeClient(RegisterCron=failure))

        resp = await client.post("/ojs/v1/cron", json={"name": "nightly"})

        assert resp.status == 409
        assert (await resp.json(content_type=None))["error"]["code"] == "duplicate"


class TestRendering:
    async def render(self, make_client: MakeClient, entry: service_pb2.CronEntry) -> tuple[bytes, dict[str, Any]]:
        client = await make_client(FakeClient(GetCron=service_pb2.GetCronResponse(entry=entry)))
        resp = await client.get(f"/ojs/v1/cron/{entry.name}")
        assert resp.status == 200
        raw = await resp.read()
        body = orjson.loads(raw)
        assert body["cron"] == body["cron_job"]
        return raw, body["cron"]

    async def test_disabled_entry_has_no_next_run(self, make_client: MakeClient) -> None:
        entry = cron_entry(enabled=False)
        entry.ClearField("next_run_at")

        _, cron = await self.render(make_client, entry)

        assert cron["enabled"] is False
        assert cron["next_run_at"] is None and cron["last_run_at"] is None

    async def test_after_firing(self, make_client: MakeClient) -> None:
        entry = cron_entry(
            last_run_at=ts("2026-02-12T10:35:00Z"),
            next_run_at=ts("2026-02-12T10:40:00Z"),
            run_count=3,
            last_job_id="019539a4-b68c-7def-8000-1a2b3c4d5e6f",
            description="every five minutes",
        )

        _, cron = await self.render(make_client, entry)

        assert cron["last_run_at"] == "2026-02-12T10:35:00Z" and cron["next_run_at"] == "2026-02-12T10:40:00Z"
        assert cron["run_count"] == 3
        assert cron["last_job_id"] == "019539a4-b68c-7def-8000-1a2b3c4d5e6f"
        assert cron["description"] == "every five minutes"

    async def test_optional_fields_are_omitted_when_empty(self, make_client: MakeClient) -> None:
        _, cron = await self.render(make_client, cron_entry())
        assert "last_job_id" not in cron and "description" not in cron

    async def test_template_is_embedded_as_sent(self, make_client: MakeClient) -> None:
        template = b'{"type":"t","args":[18446744073709551617,1.50],"meta":{"k":1e3}}'

        raw, cron = await self.render(make_client, cron_entry(job_template_json=template))

        assert b'"job_template":' + template in raw
        assert b'"args":[18446744073709551617,1.50]' in raw
        assert cron["type"] == "t" and cron["options"] == {}

    async def test_template_from_official_fields(self, make_client: MakeClient) -> None:
        args = struct_pb2.ListValue()
        args.extend(["daily_summary", 2])
        meta = struct_pb2.Struct()
        meta.update({"owner": "analytics"})
        options = job_pb2.EnqueueOptions(
            queue="reports", priority=5, timeout=ms(300_000), tags=["a"], meta=meta, max_attempts=3
        )
        entry = cron_entry(job_template_json=b"", type="report.generate", args=args.values, options=options)

        _, cron = await self.render(make_client, entry)

        expected_options = {"queue": "reports", "priority": 5, "timeout_ms": 300_000, "tags": ["a"], "max_attempts": 3}
        assert cron["job_template"] == {
            "type": "report.generate",
            "args": ["daily_summary", 2],
            "meta": {"owner": "analytics"},
            "options": expected_options,
        }
        assert cron["type"] == "report.generate"
        assert cron["args"] == ["daily_summary", 2]
        assert cron["options"] == expected_options

    async def test_template_without_options(self, make_client: MakeClient) -> None:
        entry = cron_entry(job_template_json=b"", type="t")

        _, cron = await self.render(make_client, entry)

        assert cron["job_template"] == {"type": "t", "args": []}
        assert cron["options"] == {}

    async def test_undecodable_template_falls_back(self, make_client: MakeClient) -> None:
        _, cron = await self.render(make_client, cron_entry(job_template_json=b"{not json", type="t"))
        assert cron["job_template"] == {"type": "t", "args": []}


class TestGet:
    async def test_request(self, make_client: MakeClient) -> None:
        fake = FakeClient(GetCron=service_pb2.GetCronResponse(entry=cron_entry()))
        client = await make_client(fake)

        resp = await client.get("/ojs/v1/cron/nightly.report-2")

        assert resp.status == 200
        assert fake.last("GetCron")[0].name == "nightly.report-2"
        assert await resp.json(content_type=None) == {"cron": EXPECTED, "cron_job": EXPECTED}

    async def test_not_found(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", "cron 'missing' not found")
        client = await make_client(FakeClient(GetCron=failure))

        resp = await client.get("/ojs/v1/cron/missing")

        assert resp.status == 404
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "not_found" and error["message"] == "cron 'missing' not found"


class TestList:
    async def test_entries(self, make_client: MakeClient) -> None:
        entries = [cron_entry(name="alpha"), cron_entry(name="beta", enabled=False)]
        fake = FakeClient(ListCron=service_pb2.ListCronResponse(entries=entries))
        client = await make_client(fake)

        resp = await client.get("/ojs/v1/cron?enabled=true&limit=abc")

        assert resp.status == 200
        body = await resp.json(content_type=None)
        assert [cron["name"] for cron in body["crons"]] == ["alpha", "beta"]
        assert body["cron_jobs"] == body["crons"]
        assert body["crons"][0] == {**EXPECTED, "name": "alpha"}
        assert body["count"] == 2
        assert body["pagination"] == {"total": 2, "limit": 2, "has_more": False}
        assert fake.last("ListCron")[0] == service_pb2.ListCronRequest()

    async def test_empty(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(ListCron=service_pb2.ListCronResponse()))

        resp = await client.get("/ojs/v1/cron")

        assert await resp.json(content_type=None) == {
            "crons": [],
            "cron_jobs": [],
            "count": 0,
            "pagination": {"total": 0, "limit": 0, "has_more": False},
        }


class TestDelete:
    async def test_deleted(self, make_client: MakeClient) -> None:
        fake = FakeClient(UnregisterCron=service_pb2.UnregisterCronResponse(name="nightly"))
        client = await make_client(fake)

        resp = await client.delete("/ojs/v1/cron/nightly")

        assert resp.status == 200
        assert await resp.json(content_type=None) == {"deleted": True, "name": "nightly", "cron": {"name": "nightly"}}
        assert fake.last("UnregisterCron")[0].name == "nightly"

    async def test_bare_response(self, make_client: MakeClient) -> None:
        client = await make_client(FakeClient(UnregisterCron=service_pb2.UnregisterCronResponse()))

        resp = await client.delete("/ojs/v1/cron/nightly")

        assert await resp.json(content_type=None) == {"deleted": True, "name": "nightly", "cron": {"name": "nightly"}}

    async def test_not_found(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", "cron 'missing' not found")
        client = await make_client(FakeClient(UnregisterCron=failure))

        resp = await client.delete("/ojs/v1/cron/missing")

        assert resp.status == 404
        assert (await resp.json(content_type=None))["error"]["code"] == "not_found"
