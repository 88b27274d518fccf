"""Worker admin over the REST gateway of the running application: directives and the worker list."""

from __future__ import annotations

from server.domain.clock import now_ms
from tests.http.api import MEDIA_TYPE, Api, enqueue, epoch_ms, fetch_one, find_worker, heartbeat
from tests.support import new_queue, new_worker


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
