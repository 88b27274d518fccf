"""Worker heartbeats over the REST gateway of the running application: active jobs, lease extension, directives."""

from __future__ import annotations

from typing import Any

import pytest

from server.domain.clock import now_ms
from server.domain.ids import new_uuid7
from tests.http.api import Api, ClockedApi, assert_error, enqueue, epoch_ms, fetch_one, find_worker, get_job, heartbeat
from tests.support import new_queue, new_worker, wait_for


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


async def test_heartbeat_keeps_a_short_lease_alive(clocked_api: ClockedApi) -> None:
    api, clock = clocked_api.api, clocked_api.clock
    queue, control_queue = new_queue(), new_queue("control")
    worker = new_worker()
    job = await enqueue(api, queue)
    fetched = await fetch_one(api, queue, worker_id=worker, visibility_timeout_ms=1000)
    for _ in range(3):
        clock.advance(700)
        payload = await heartbeat(api, {"worker_id": worker, "active_jobs": [job["id"]], "visibility_timeout_ms": 1000})
        assert payload["jobs_extended"] == [job["id"]]
    # Once the reaper has requeued a job whose lease ended before the last extension, it has run at a time the
    # heartbeated job would be long expired without its heartbeats.
    control = await enqueue(api, control_queue)
    await fetch_one(api, control_queue, worker_id=new_worker(), visibility_timeout_ms=500)
    clock.advance(900)

    async def control_requeued() -> bool:
        return bool((await get_job(api, control["id"]))["state"] == "available")

    await wait_for(control_requeued)
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
