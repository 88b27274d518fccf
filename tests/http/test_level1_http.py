"""Level 1 over the REST gateway of the running application: heartbeats, worker admin, dead letter, lease tokens."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from server.domain.ids import new_uuid7

MEDIA_TYPE = "application/openjobspec+json"
SETTLE_S = 5.0
HEARTBEAT_KEYS = {"state", "directive", "jobs_extended", "jobs_cancelled", "jobs_not_held", "server_time"}
DEAD_LETTER_RETRY = {"max_attempts": 1, "on_exhaustion": "dead_letter"}


class Api:
    """Thin JSON client for the gateway: every call returns (status, body)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        async with self._session.request(method, f"{self._base}{path}", json=body, **kwargs) as resp:
            if resp.status >= 400:
                assert resp.headers["Content-Type"] == MEDIA_TYPE
            payload = await resp.json(content_type=None) if await resp.read() else None
            return resp.status, payload

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, **kwargs)

    async def ok(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        got, payload = await self.call(method, path, body)
        assert got == status, f"{method} {path}: {got} {payload}"
        return payload


@pytest.fixture
async def api(ojs_http: Any) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(ojs_http.base_url))


def new_queue(prefix: str = "h1") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_worker(prefix: str = "hw") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def enqueue(api: Api, queue: str, *, job_type: str = "test.echo", **options: Any) -> dict[str, Any]:
    body = {"type": job_type, "args": [], "options": {"queue": queue, **options}}
    job: dict[str, Any] = (await api.ok("POST", "/ojs/v1/jobs", body, status=201))["job"]
    return job


async def fetch_one(api: Api, queue: str, **fields: Any) -> dict[str, Any]:
    payload = await api.ok("POST", "/ojs/v1/workers/fetch", {"queues": [queue], **fields})
    [job] = payload["jobs"]
    result: dict[str, Any] = job
    return result


async def get_job(api: Api, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await api.ok("GET", f"/ojs/v1/jobs/{job_id}"))["job"]
    return job


async def wait_for(check: Callable[[], Awaitable[Any]], *, seconds: float = SETTLE_S) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.05)


async def heartbeat(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = await api.ok("POST", "/ojs/v1/workers/heartbeat", body)
    assert set(payload) == HEARTBEAT_KEYS
    assert payload["state"] == payload["directive"]
    return payload


async def find_worker(api: Api, worker_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        path = "/ojs/v1/admin/workers?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = await api.ok("GET", path)
        found.extend(w for w in page["items"] if w["id"] == worker_id)
        if not page["pagination"]["has_more"]:
            break
        cursor = page["pagination"]["next_cursor"]
    assert len(found) == 1, f"worker {worker_id} listed {len(found)} times"
    return found[0]


async def dead_letter_job(api: Api, queue: str, *, job_type: str = "dl.http") -> dict[str, Any]:
    job = await enqueue(api, queue, job_type=job_type, retry=DEAD_LETTER_RETRY)
    await fetch_one(api, queue)
    nack = await api.ok(
        "POST", "/ojs/v1/workers/nack", {"job_id": job["id"], "error": {"code": "boom", "message": "it broke"}}
    )
    assert nack["state"] == "discarded"
    return job


def assert_error(status: int, payload: Any, *, expected_status: int, code: str) -> dict[str, Any]:
    assert status == expected_status, payload
    error: dict[str, Any] = payload["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["retryable"] is False
    assert error["request_id"]
    return error


# --------------------------------------------------------------------------- heartbeat


async def test_heartbeat_with_a_list_of_active_jobs(api: Api) -> None:
    queue = new_queue()
    worker, other = new_worker(), new_worker("other")
    mine, cancelled, theirs = [await enqueue(api, queue) for _ in range(3)]
    for holder in (worker, worker, other):
        await fetch_one(api, queue, worker_id=holder, visibility_timeout_ms=2000)
    await api.ok("DELETE", f"/ojs/v1/jobs/{cancelled['id']}")
    unknown = new_uuid7()

    before = now_ms()
    payload = await heartbeat(
        api,
        {
            "worker_id": worker,
            "active_jobs": [mine["id"], cancelled["id"], theirs["id"], unknown],
            "visibility_timeout_ms": 60_000,
        },
    )
    after = now_ms()
    assert payload["state"] == "running"
    assert payload["jobs_extended"] == [mine["id"]]
    assert payload["jobs_cancelled"] == [cancelled["id"]]
    assert payload["jobs_not_held"] == [theirs["id"], unknown]
    assert before - 1000 <= epoch_ms(payload["server_time"]) <= after + 1000

    extended = await get_job(api, mine["id"])
    assert extended["state"] == "active"
    assert before + 59_000 <= epoch_ms(extended["lease_expires_at"]) <= after + 61_000
    assert epoch_ms((await get_job(api, theirs["id"]))["lease_expires_at"]) < before + 3000


async def test_heartbeat_with_a_count_and_job_ids(api: Api) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(api, queue)
    await fetch_one(api, queue, worker_id=worker, visibility_timeout_ms=2000)
    payload = await heartbeat(
        api,
        {
            "worker_id": worker,
            "state": "quiet",
            "active_jobs": 1,
            "active_job_ids": [job["id"]],
            "visibility_timeout_ms": 30_000,
        },
    )
    assert payload["state"] == "running"
    assert payload["jobs_extended"] == [job["id"]]
    assert payload["jobs_cancelled"] == []
    assert payload["jobs_not_held"] == []
    assert epoch_ms((await get_job(api, job["id"]))["lease_expires_at"]) >= now_ms() + 25_000

    listed = await find_worker(api, worker)
    assert listed["state"] == "quiet"
    assert listed["directive"] == "running"
    assert listed["active_jobs"] == 1


async def test_heartbeat_keeps_a_short_lease_alive(api: Api) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(api, queue)
    fetched = await fetch_one(api, queue, worker_id=worker, visibility_timeout_ms=1000)
    until = time.monotonic() + 2.5
    while time.monotonic() < until:
        payload = await heartbeat(api, {"worker_id": worker, "active_jobs": [job["id"]], "visibility_timeout_ms": 1000})
        assert payload["jobs_extended"] == [job["id"]]
        await asyncio.sleep(0.3)
    assert (await get_job(api, job["id"]))["state"] == "active"
    acked = await api.ok(
        "POST",
        "/ojs/v1/workers/ack",
        {"job_id": job["id"], "worker_id": worker, "lease_token": fetched["lease_token"]},
    )
    assert acked["state"] == "completed"


async def test_heartbeat_with_an_unknown_state_word_still_succeeds(api: Api) -> None:
    worker = new_worker()
    await heartbeat(api, {"worker_id": worker, "state": "quiet"})
    payload = await heartbeat(api, {"worker_id": worker, "state": "napping", "active_jobs": []})
    assert payload["state"] == "running"
    assert (await find_worker(api, worker))["state"] == "quiet"


async def test_heartbeat_relays_a_job_test_directive(api: Api) -> None:
    queue = new_queue()
    worker = new_worker()
    job = await enqueue(api, queue, metadata={"test_directive": "terminate"})
    await fetch_one(api, queue, worker_id=worker)
    payload = await heartbeat(api, {"worker_id": worker, "active_jobs": [job["id"]]})
    assert payload["state"] == "terminate"
    assert payload["directive"] == "terminate"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"worker_id": "w", "active_jobs": "three"}, "active_jobs"),
        ({"worker_id": "w", "active_jobs": [1, 2]}, "active_jobs"),
        ({"worker_id": "w", "active_job_ids": ["not-a-job-id"]}, "active_job_ids"),
        ({"worker_id": "w", "visibility_timeout_ms": 0}, "visibility_timeout_ms"),
    ],
)
async def test_heartbeat_rejects_bad_bodies(api: Api, body: dict[str, Any], field: str) -> None:
    status, payload = await api.post("/ojs/v1/workers/heartbeat", body)
    error = assert_error(status, payload, expected_status=400, code="invalid_request")
    assert error["details"]["field"] == field


# --------------------------------------------------------------------------- worker admin


async def test_admin_directives_reach_the_next_heartbeat(api: Api) -> None:
    worker = new_worker()
    first = await heartbeat(api, {"worker_id": worker, "state": "running", "active_jobs": []})
    assert first["state"] == "running"

    for action, directive in (("quiet", "quiet"), ("terminate", "terminate"), ("resume", "running")):
        payload = await api.ok("POST", f"/ojs/v1/admin/workers/{worker}/{action}")
        shown = payload["worker"]
        assert shown["id"] == shown["worker_id"] == worker
        assert shown["directive"] == directive
        assert shown["state"] == "running"
        assert isinstance(shown["active_jobs"], int)
        assert "last_heartbeat_at" in shown
        beat = await heartbeat(api, {"worker_id": worker, "active_jobs": []})
        assert beat["state"] == directive
        assert beat["directive"] == directive
        assert (await find_worker(api, worker))["directive"] == directive


async def test_admin_directive_accepts_an_empty_json_body(api: Api) -> None:
    worker = new_worker()
    payload = await api.ok("POST", f"/ojs/v1/admin/workers/{worker}/quiet", {})
    assert payload["worker"]["directive"] == "quiet"
    assert "last_heartbeat_at" not in payload["worker"]
    status, error = await api.post(
        f"/ojs/v1/admin/workers/{worker}/terminate", data=b"[1]", headers={"Content-Type": MEDIA_TYPE}
    )
    assert status == 400
    assert error["error"]["code"] in {"invalid_request", "invalid_payload"}


async def test_admin_lists_workers(api: Api) -> None:
    worker = new_worker()
    queue = new_queue()
    job = await enqueue(api, queue)
    await fetch_one(api, queue, worker_id=worker)
    before = now_ms()
    await heartbeat(api, {"worker_id": worker, "state": "quiet", "active_jobs": [job["id"]]})
    after = now_ms()

    page = await api.ok("GET", "/ojs/v1/admin/workers")
    assert set(page) == {"items", "summary", "pagination"}
    assert page["summary"]["total"] == page["pagination"]["total"] >= 1
    assert page["pagination"]["limit"] == 100
    assert isinstance(page["pagination"]["has_more"], bool)

    shown = await find_worker(api, worker)
    assert shown == {
        "id": worker,
        "worker_id": worker,
        "state": "quiet",
        "directive": "running",
        "last_heartbeat_at": shown["last_heartbeat_at"],
        "active_jobs": 1,
    }
    assert before - 1000 <= epoch_ms(shown["last_heartbeat_at"]) <= after + 1000


async def test_admin_workers_pages(api: Api) -> None:
    for _ in range(2):
        await heartbeat(api, {"worker_id": new_worker(), "active_jobs": []})
    first = await api.ok("GET", "/ojs/v1/admin/workers?limit=1")
    assert len(first["items"]) == 1
    assert first["pagination"]["limit"] == 1
    assert first["pagination"]["has_more"] is True
    cursor = first["pagination"]["next_cursor"]
    second = await api.ok("GET", f"/ojs/v1/admin/workers?limit=1&cursor={cursor}")
    assert len(second["items"]) == 1
    assert second["items"][0]["id"] > first["items"][0]["id"]


# --------------------------------------------------------------------------- dead letter


async def test_dead_letter_lists_filters_and_pages(api: Api) -> None:
    queue, other_queue = new_queue("dl"), new_queue("dl-other")
    kind = f"dl.kind{uuid.uuid4().hex[:8]}"
    older = await dead_letter_job(api, queue, job_type=kind)
    newer = await dead_letter_job(api, queue, job_type=kind)
    other_type = await dead_letter_job(api, queue, job_type="dl.other")
    elsewhere = await dead_letter_job(api, other_queue, job_type=kind)

    first = await api.ok("GET", f"/ojs/v1/dead-letter?queue={queue}&type={kind}&limit=1")
    assert [j["id"] for j in first["jobs"]] == [newer["id"]]
    listed = first["jobs"][0]
    assert listed["state"] == "discarded"
    assert listed["queue"] == queue
    assert listed["type"] == kind
    assert listed["errors"][0]["code"] == "boom"
    assert listed["retry"]["on_exhaustion"] == "dead_letter"
    pagination = first["pagination"]
    assert pagination["total"] == 2
    assert pagination["limit"] == 1
    assert pagination["has_more"] is True
    cursor = pagination["next_cursor"]

    second = await api.ok("GET", f"/ojs/v1/dead-letter?queue={queue}&type={kind}&limit=1&cursor={cursor}")
    assert [j["id"] for j in second["jobs"]] == [older["id"]]
    assert second["pagination"]["has_more"] is False
    assert "next_cursor" not in second["pagination"]

    by_queue = await api.ok("GET", f"/ojs/v1/dead-letter?queue={queue}")
    assert [j["id"] for j in by_queue["jobs"]] == [other_type["id"], newer["id"], older["id"]]
    assert by_queue["pagination"]["limit"] == 50
    by_type = await api.ok("GET", f"/ojs/v1/dead-letter?type={kind}&limit=1000")
    assert {elsewhere["id"], newer["id"], older["id"]} <= {j["id"] for j in by_type["jobs"]}
    assert other_type["id"] not in {j["id"] for j in by_type["jobs"]}


async def test_dead_letter_rejects_a_bad_limit(api: Api) -> None:
    for query in ("limit=abc", "limit=5000", "cursor=bogus"):
        status, payload = await api.get(f"/ojs/v1/dead-letter?{query}")
        assert_error(status, payload, expected_status=400, code="invalid_request")


async def test_retry_dead_letter(api: Api) -> None:
    queue = new_queue("dl-retry")
    job = await dead_letter_job(api, queue)
    payload = await api.ok("POST", f"/ojs/v1/dead-letter/{job['id']}/retry")
    retried = payload["job"]
    assert retried["id"] == job["id"]
    assert retried["state"] == "available"
    assert retried["attempt"] == 0
    assert "discarded_at" not in retried
    assert (await api.ok("GET", f"/ojs/v1/dead-letter?queue={queue}"))["jobs"] == []
    again = await fetch_one(api, queue)
    assert again["id"] == job["id"]
    assert again["attempt"] == 1

    status, error = await api.post(f"/ojs/v1/dead-letter/{job['id']}/retry")
    assert_error(status, error, expected_status=404, code="not_found")


async def test_delete_dead_letter(api: Api) -> None:
    queue = new_queue("dl-delete")
    job = await dead_letter_job(api, queue)
    payload = await api.ok("DELETE", f"/ojs/v1/dead-letter/{job['id']}")
    assert payload == {"deleted": True, "job_id": job["id"]}
    assert (await api.ok("GET", f"/ojs/v1/dead-letter?queue={queue}"))["jobs"] == []
    status, error = await api.get(f"/ojs/v1/jobs/{job['id']}")
    assert_error(status, error, expected_status=404, code="not_found")

    status, error = await api.delete(f"/ojs/v1/dead-letter/{job['id']}")
    assert_error(status, error, expected_status=404, code="not_found")


async def test_dead_letter_unknown_ids_are_404(api: Api) -> None:
    missing = new_uuid7()
    for method, path in (
        ("POST", f"/ojs/v1/dead-letter/{missing}/retry"),
        ("DELETE", f"/ojs/v1/dead-letter/{missing}"),
    ):
        status, payload = await api.call(method, path, headers={"X-Request-Id": "req-dl-404"})
        error = assert_error(status, payload, expected_status=404, code="not_found")
        assert error["request_id"] == "req-dl-404"


async def test_discarded_job_is_not_in_the_dead_letter_list(api: Api) -> None:
    queue = new_queue("dl-discard")
    job = await enqueue(api, queue, retry={"max_attempts": 1, "on_exhaustion": "discard"})
    await fetch_one(api, queue)
    nack = await api.ok("POST", "/ojs/v1/workers/nack", {"job_id": job["id"], "error": {"code": "x", "message": "y"}})
    assert nack["state"] == "discarded"
    assert (await api.ok("GET", f"/ojs/v1/dead-letter?queue={queue}"))["jobs"] == []


# --------------------------------------------------------------------------- lease tokens


async def test_ack_with_a_stale_lease_token_is_409(api: Api) -> None:
    queue = new_queue()
    job = await enqueue(api, queue)
    fetched = await fetch_one(api, queue, worker_id="hw-token")
    token = fetched["lease_token"]
    assert isinstance(token, int) and token > 0

    status, payload = await api.post("/ojs/v1/workers/ack", {"job_id": job["id"], "lease_token": token + 1})
    error = assert_error(status, payload, expected_status=409, code="conflict")
    assert error["details"]["current_lease_token"] == token
    assert (await get_job(api, job["id"]))["state"] == "active"

    acked = await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": job["id"], "lease_token": token})
    assert acked["state"] == "completed"


async def test_nack_with_a_stale_lease_token_is_409(api: Api) -> None:
    queue = new_queue()
    job = await enqueue(api, queue)
    fetched = await fetch_one(api, queue)
    body = {"job_id": job["id"], "error": {"code": "x", "message": "y"}, "lease_token": fetched["lease_token"] + 1}
    status, payload = await api.post("/ojs/v1/workers/nack", body)
    assert_error(status, payload, expected_status=409, code="conflict")
    assert (await get_job(api, job["id"]))["state"] == "active"
    body["lease_token"] = fetched["lease_token"]
    assert (await api.ok("POST", "/ojs/v1/workers/nack", body))["state"] == "retryable"


async def test_late_ack_after_the_lease_was_granted_again_is_409(api: Api) -> None:
    queue = new_queue()
    job = await enqueue(api, queue)
    worker_a, worker_b = new_worker("a"), new_worker("b")
    first = await fetch_one(api, queue, worker_id=worker_a, visibility_timeout_ms=1000)

    async def available() -> bool:
        return bool((await get_job(api, job["id"]))["state"] == "available")

    await wait_for(available)
    second = await fetch_one(api, queue, worker_id=worker_b, visibility_timeout_ms=60_000)
    assert second["id"] == job["id"]
    assert second["lease_token"] > first["lease_token"]

    for body in (
        {"job_id": job["id"], "worker_id": worker_a},
        {"job_id": job["id"], "lease_token": first["lease_token"]},
    ):
        status, payload = await api.post("/ojs/v1/workers/ack", body)
        assert_error(status, payload, expected_status=409, code="conflict")
    status, payload = await api.post(
        "/ojs/v1/workers/nack",
        {"job_id": job["id"], "lease_token": first["lease_token"], "error": {"code": "x", "message": "late"}},
    )
    assert_error(status, payload, expected_status=409, code="conflict")

    acked = await api.ok(
        "POST",
        "/ojs/v1/workers/ack",
        {"job_id": job["id"], "worker_id": worker_b, "lease_token": second["lease_token"]},
    )
    assert acked["state"] == "completed"


# --------------------------------------------------------------------------- manifest


async def test_manifest_reports_the_implemented_level(api: Api) -> None:
    manifest = await api.ok("GET", "/ojs/manifest")
    assert manifest["conformance_level"] == 4
    assert manifest["capabilities"]["dead_letter"] is True
