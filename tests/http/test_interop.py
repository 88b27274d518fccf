"""Interop over the REST gateway of the running application: requests exactly as other OJS clients send them.

The reference server's README examples, the official SDKs' headers and progress calls, and the
progress extension's routes (ojs-progress.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy

from server.__main__ import ENV_VARS
from server.config import Settings, SettingsError
from tests.support import new_queue

MEDIA_TYPE = "application/openjobspec+json"
JSON = "application/json"


class Api:
    """Sends bodies with Content-Type: application/json, as the reference server's README does."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        data = None if body is None else orjson.dumps(body)
        sent = {"Content-Type": JSON, **(headers or {})} if data is not None else dict(headers or {})
        async with self.session.request(method, f"{self.base}{path}", data=data, headers=sent) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if raw else None, resp.headers

    async def ok(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        got, payload, _ = await self.call(method, path, body)
        assert got == status, f"{method} {path}: {got} {payload}"
        return payload


@pytest.fixture
async def api(ojs_http: Any) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(ojs_http.base_url))


async def enqueue_and_fetch(api: Api, queue: str, worker: str = "worker-1") -> dict[str, Any]:
    await api.ok(
        "POST", "/ojs/v1/jobs", {"type": "email.send", "args": ["a@b.c"], "options": {"queue": queue}}, status=201
    )
    fetched = await api.ok("POST", "/ojs/v1/workers/fetch", {"queues": [queue], "worker_id": worker})
    assert len(fetched["jobs"]) == 1
    job: dict[str, Any] = fetched["jobs"][0]
    return job


# ---- the reference server's README examples ----


async def test_nack_with_the_error_as_a_string(api: Api) -> None:
    job = await enqueue_and_fetch(api, new_queue("interop"))

    body = await api.ok(
        "POST", "/ojs/v1/workers/nack", {"job_id": job["id"], "worker_id": "worker-1", "error": "connection timeout"}
    )

    assert body["state"] == "retryable"
    stored = (await api.ok("GET", f"/ojs/v1/jobs/{job['id']}"))["job"]
    assert stored["error"]["message"] == "connection timeout"
    assert stored["errors"][0]["message"] == "connection timeout"


async def test_nack_error_of_another_type_is_refused(api: Api) -> None:
    job = await enqueue_and_fetch(api, new_queue("interop"))
    status, body, _ = await api.call("POST", "/ojs/v1/workers/nack", {"job_id": job["id"], "error": 42})
    assert status == 400 and body["error"]["code"] == "invalid_request"


async def test_cron_in_the_reference_dialect(api: Api) -> None:
    name = "daily-report"
    request = {
        "name": name,
        "schedule": "0 9 * * *",
        "timezone": "America/New_York",
        "type": "reports.generate",
        "queue": "reports",
    }

    body = await api.ok("POST", "/ojs/v1/cron", request, status=201)

    cron = body["cron"]
    assert cron["name"] == name
    assert cron["expression"] == "0 9 * * *"
    assert cron["timezone"] == "America/New_York"
    template = cron["job_template"]
    assert template["type"] == "reports.generate"
    assert template["args"] == []
    assert template["options"]["queue"] == "reports"
    await api.ok("DELETE", f"/ojs/v1/cron/{name}")


async def test_workflow_steps_without_args_with_a_queue_each(api: Api) -> None:
    etl = "etl"
    request = {
        "type": "chain",
        "steps": [
            {"type": "extract.data", "queue": "etl"},
            {"type": "transform.data", "queue": "etl"},
            {"type": "load.data", "queue": "etl"},
        ],
    }

    body = await api.ok("POST", "/ojs/v1/workflows", request, status=201)

    assert body["workflow"]["type"] == "chain"
    fetched = await api.ok("POST", "/ojs/v1/workers/fetch", {"queues": [etl], "worker_id": "w"})
    assert [(j["type"], j["queue"], j["args"]) for j in fetched["jobs"]] == [("extract.data", etl, [])]


# ---- OJS-Version and the response media type ----


@pytest.mark.parametrize("version", ["1.0.0-rc.1", "1.0", "1", "1.2", "1.0.0", "1.1.0-beta.2+build.5"])
@pytest.mark.parametrize("path", ["/ojs/manifest", "/ojs/v1/health", "/ojs/v1/queues"])
async def test_every_1x_version_is_served(api: Api, version: str, path: str) -> None:
    status, body, headers = await api.call("GET", path, headers={"OJS-Version": version})
    assert status == 200, body
    assert headers["OJS-Version"] == "1.0"


async def test_another_major_version_is_refused_but_discovery_still_answers(api: Api) -> None:
    status, body, _ = await api.call("GET", "/ojs/v1/queues", headers={"OJS-Version": "2.0"})
    assert status == 422 and body["error"]["code"] == "unsupported"
    for path in ("/ojs/manifest", "/ojs/v1/health"):
        status, _, _ = await api.call("GET", path, headers={"OJS-Version": "2.0.0-rc.1"})
        assert status == 200


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, MEDIA_TYPE),
        ("application/json", JSON),
        ("application/json, */*;q=0.5", JSON),
        (f"{MEDIA_TYPE}, application/json", MEDIA_TYPE),
        (MEDIA_TYPE, MEDIA_TYPE),
        ("*/*", MEDIA_TYPE),
        ("application/json;q=0", MEDIA_TYPE),
    ],
)
async def test_accept_application_json_is_answered_in_kind(api: Api, accept: str | None, expected: str) -> None:
    headers = {} if accept is None else {"Accept": accept}
    for method, path, body in (
        ("POST", "/ojs/v1/jobs", {"type": "t.x", "args": [], "options": {"queue": new_queue("interop")}}),
        ("GET", f"/ojs/v1/jobs/{uuid.uuid4()}", None),
    ):
        _, _, got = await api.call(method, path, body, headers=headers)
        assert got["Content-Type"] == expected


async def test_queue_stats_carry_a_top_level_status(api: Api) -> None:
    queue = new_queue("interop")
    await api.ok("POST", "/ojs/v1/jobs", {"type": "t.x", "args": [], "options": {"queue": queue}}, status=201)
    body = await api.ok("GET", f"/ojs/v1/queues/{queue}/stats")
    assert body["status"] == "active"
    assert body["queue"]["name"] == queue and body["queue"]["available"] == 1
    await api.ok("POST", f"/ojs/v1/queues/{queue}/pause")
    assert (await api.ok("GET", f"/ojs/v1/queues/{queue}/stats"))["status"] == "paused"


# ---- progress ----


async def test_sdk_progress_report_then_read_and_ack(api: Api) -> None:
    job = await enqueue_and_fetch(api, new_queue("interop"))
    job_id = job["id"]
    before = job["lease_expires_at"]
    await asyncio.sleep(0.01)

    status, body, headers = await api.call(
        "POST",
        "/ojs/v1/workers/progress",
        {"job_id": job_id, "percentage": 50, "message": "half way", "data": {"rows": 500}},
    )

    assert status == 200, body
    assert body["accepted"] is True
    assert body["progress"] == 0.5 and body["message"] == "half way" and body["data"] == {"rows": 500}
    assert headers["X-OJS-Progress"] == "0.5"
    # A report is a heartbeat: the lease moved on.
    assert body["lease_expires_at"] > before
    read = await api.ok("GET", f"/ojs/v1/jobs/{job_id}/progress")
    assert read["state"] == "active" and read["progress"] == 0.5 and read["data"] == {"rows": 500}
    assert read["updated_at"]
    stored = (await api.ok("GET", f"/ojs/v1/jobs/{job_id}"))["job"]
    assert stored["progress"] == 0.5 and stored["progress_message"] == "half way"

    await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": job_id})
    done = await api.ok("GET", f"/ojs/v1/jobs/{job_id}/progress")
    assert done["state"] == "completed" and done["progress"] == 1.0


async def test_put_progress_clamps_never_decreases_and_no_progress_is_null(api: Api) -> None:
    job = await enqueue_and_fetch(api, new_queue("interop"))
    job_id = job["id"]
    untouched = await api.ok("GET", f"/ojs/v1/jobs/{job_id}/progress")
    assert untouched["progress"] is None and untouched["data"] is None

    assert (await api.ok("PUT", f"/ojs/v1/jobs/{job_id}/progress", {"progress": 0.47}))["progress"] == 0.47
    lower = await api.ok("PUT", f"/ojs/v1/jobs/{job_id}/progress", {"progress": 0.2, "data": {"phase": "b"}})
    assert lower["progress"] == 0.47 and lower["data"] == {"phase": "b"}
    assert (await api.ok("PUT", f"/ojs/v1/jobs/{job_id}/progress", {"progress": 1.3}))["progress"] == 1.0


async def test_progress_is_fenced_like_an_ack(api: Api) -> None:
    job = await enqueue_and_fetch(api, new_queue("interop"), worker="w-holder")
    job_id = job["id"]

    status, body, _ = await api.call(
        "POST", "/ojs/v1/workers/progress", {"job_id": job_id, "percentage": 10, "worker_id": "w-other"}
    )
    assert status == 409 and body["error"]["code"] == "conflict"
    stale = job["lease_token"] - 1
    status, body, _ = await api.call("PUT", f"/ojs/v1/jobs/{job_id}/progress", {"progress": 0.1, "lease_token": stale})
    assert status == 409 and body["error"]["code"] == "conflict"
    assert (await api.ok("GET", f"/ojs/v1/jobs/{job_id}/progress"))["progress"] is None
    held = {"job_id": job_id, "percentage": 10, "worker_id": "w-holder", "lease_token": job["lease_token"]}
    assert (await api.ok("POST", "/ojs/v1/workers/progress", held))["accepted"] is True


async def test_progress_of_a_job_that_is_not_active_is_ignored_and_unknown_is_404(api: Api) -> None:
    queue = new_queue("interop")
    created = await api.ok("POST", "/ojs/v1/jobs", {"type": "t.x", "args": [], "options": {"queue": queue}}, status=201)
    body = await api.ok("PUT", f"/ojs/v1/jobs/{created['job']['id']}/progress", {"progress": 0.5})
    assert body["accepted"] is False and body["state"] == "available" and body["progress"] is None

    status, body, _ = await api.call("PUT", f"/ojs/v1/jobs/{uuid.uuid4()}/progress", {"progress": 0.5})
    assert status == 404
    status, body, _ = await api.call("POST", "/ojs/v1/workers/progress", {"job_id": created["job"]["id"]})
    assert status == 400


async def test_a_retry_starts_without_progress_and_a_failure_keeps_it(api: Api) -> None:
    queue = new_queue("interop")
    retry = {"max_attempts": 3, "initial_interval": "PT0.01S", "jitter": False}
    await api.ok(
        "POST", "/ojs/v1/jobs", {"type": "t.x", "args": [], "options": {"queue": queue, "retry": retry}}, status=201
    )
    job = (await api.ok("POST", "/ojs/v1/workers/fetch", {"queues": [queue]}))["jobs"][0]
    checkpoint = {"last_file_index": 72, "last_file_path": "/data/chunk_072.parquet"}
    await api.ok("PUT", f"/ojs/v1/jobs/{job['id']}/progress", {"progress": 0.73, "checkpoint": checkpoint})
    await api.ok("POST", "/ojs/v1/workers/nack", {"job_id": job["id"], "error": "boom"})
    failed = await api.ok("GET", f"/ojs/v1/jobs/{job['id']}/progress")
    assert failed["state"] == "retryable" and failed["progress"] == 0.73

    for _ in range(50):
        again = (await api.ok("POST", "/ojs/v1/workers/fetch", {"queues": [queue]}))["jobs"]
        if again:
            break
        await asyncio.sleep(0.05)
    assert again and again[0]["attempt"] == 2
    assert "progress" not in again[0]
    # The retry can resume from where the failed attempt stopped (§6.4).
    assert again[0]["last_checkpoint"] == checkpoint
    assert (await api.ok("GET", f"/ojs/v1/jobs/{job['id']}/progress"))["progress"] is None


async def test_progress_events_and_manifest(api: Api) -> None:
    queue = new_queue("interop")
    job = await enqueue_and_fetch(api, queue)
    await api.ok("PUT", f"/ojs/v1/jobs/{job['id']}/progress", {"progress": 0.25, "message": "quarter"})
    await asyncio.sleep(0.2)
    events = await api.ok("GET", f"/ojs/v1/events?types=job.progress&queues={queue}&limit=10")
    (event,) = events["events"]
    assert event["job_id"] == job["id"]
    assert event["data"]["progress_percent"] == 25 and event["data"]["progress_message"] == "quarter"

    manifest = await api.ok("GET", "/ojs/manifest")
    assert "urn:ojs:ext:progress" in [ext["uri"] for ext in manifest["extensions"]["official"]]


async def test_progress_stream_sends_updates_then_the_end(api: Api) -> None:
    job = await enqueue_and_fetch(api, new_queue("interop"))
    job_id = job["id"]
    await api.ok("PUT", f"/ojs/v1/jobs/{job_id}/progress", {"progress": 0.1})
    url = f"{api.base}/ojs/v1/jobs/{job_id}/progress/stream"

    async def worker() -> None:
        await asyncio.sleep(0.5)
        await api.ok("PUT", f"/ojs/v1/jobs/{job_id}/progress", {"progress": 0.4, "data": {"step": "processing"}})
        await asyncio.sleep(0.2)
        await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": job_id})

    task = asyncio.create_task(worker())
    async with api.session.get(url, headers={"Accept": "text/event-stream"}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        text = (await asyncio.wait_for(resp.read(), timeout=10)).decode()
    await task
    frames = [f for f in text.split("\n\n") if f.strip() and not f.startswith(":")]
    parsed = [
        (f.split("\n")[0].removeprefix("event: "), orjson.loads(f.split("\n")[1].removeprefix("data: ")))
        for f in frames
    ]
    assert [name for name, _ in parsed] == ["progress", "progress", "completed"]
    assert parsed[0][1]["progress"] == 0.1
    assert parsed[1][1]["progress"] == 0.4 and parsed[1][1]["data"] == {"step": "processing"}
    assert parsed[2][1]["progress"] == 1.0 and parsed[2][1]["state"] == "completed"


async def test_progress_stream_of_a_finished_job_ends_at_once(api: Api) -> None:
    job = await enqueue_and_fetch(api, new_queue("interop"))
    await api.ok("DELETE", f"/ojs/v1/jobs/{job['id']}")
    async with api.session.get(f"{api.base}/ojs/v1/jobs/{job['id']}/progress/stream") as resp:
        text = (await asyncio.wait_for(resp.read(), timeout=5)).decode()
    assert text.startswith("event: cancelled\n")
    async with api.session.get(f"{api.base}/ojs/v1/jobs/{uuid.uuid4()}/progress/stream") as resp:
        assert resp.status == 404


async def test_workflow_progress_of_a_chain(api: Api) -> None:
    etl = new_queue("interop")
    request = {
        "type": "chain",
        "steps": [
            {"type": "etl.extract", "queue": etl},
            {"type": "etl.transform", "queue": etl},
            {"type": "etl.load", "queue": etl},
        ],
    }
    workflow = (await api.ok("POST", "/ojs/v1/workflows", request, status=201))["workflow"]
    first = (await api.ok("POST", "/ojs/v1/workers/fetch", {"queues": [etl]}))["jobs"][0]
    await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": first["id"]})
    second = (await api.ok("POST", "/ojs/v1/workers/fetch", {"queues": [etl]}))["jobs"][0]
    await api.ok("PUT", f"/ojs/v1/jobs/{second['id']}/progress", {"progress": 0.73, "data": {"records": 21900}})

    body = await api.ok("GET", f"/ojs/v1/workflows/{workflow['id']}/progress")

    assert body["workflow_id"] == workflow["id"] and body["type"] == "chain"
    assert body["progress"] == pytest.approx((1.0 + 0.73 + 0.0) / 3)
    steps = body["steps"]
    assert [(s["type"], s["state"], s["progress"]) for s in steps] == [
        ("etl.extract", "completed", 1.0),
        ("etl.transform", "active", 0.73),
        ("etl.load", "pending", None),
    ]
    assert steps[1]["data"] == {"records": 21900}
    status, _, _ = await api.call("GET", f"/ojs/v1/workflows/{uuid.uuid4()}/progress")
    assert status == 404


def test_response_content_type_setting() -> None:
    assert Settings.from_env({}).response_content_type == MEDIA_TYPE
    assert Settings.from_env({"OJS_RESPONSE_CONTENT_TYPE": " Application/JSON "}).response_content_type == JSON
    with pytest.raises(SettingsError, match="OJS_RESPONSE_CONTENT_TYPE must be one of"):
        Settings.from_env({"OJS_RESPONSE_CONTENT_TYPE": "text/plain"})
    assert "OJS_RESPONSE_CONTENT_TYPE" in [name for name, _, _ in ENV_VARS]
