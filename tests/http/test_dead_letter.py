"""Dead letter over the REST gateway of the running application: listing, filters, paging, retry, delete."""

from __future__ import annotations

import uuid

from server.domain.ids import new_uuid7
from tests.http.api import Api, assert_error, dead_letter_job, enqueue, fetch_one
from tests.support import new_queue


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
