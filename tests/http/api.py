"""A thin JSON client for the REST gateway (the `api` fixture of conftest.py) and short forms of its routes."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import aiohttp

from server.domain.clock import ManualClock

MEDIA_TYPE = "application/openjobspec+json"
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


def epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


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


@dataclasses.dataclass(frozen=True)
class ClockedApi:
    """The gateway of the application whose clock the test steps (the `clocked_api` fixture)."""

    api: Api
    clock: ManualClock
