"""Lease tokens over the REST gateway of the running application: stale and late acks are 409."""

from __future__ import annotations

from tests.http.api import Api, ClockedApi, assert_error, enqueue, fetch_one, get_job
from tests.support import new_queue, new_worker, wait_for


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


async def test_late_ack_after_the_lease_was_granted_again_is_409(clocked_api: ClockedApi) -> None:
    api = clocked_api.api
    queue = new_queue()
    job = await enqueue(api, queue)
    worker_a, worker_b = new_worker("a"), new_worker("b")
    first = await fetch_one(api, queue, worker_id=worker_a, visibility_timeout_ms=1000)
    clocked_api.clock.advance(1000)

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
