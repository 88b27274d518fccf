"""The admin API (/ojs/v1/admin/) of the running application, and the state indexes behind it."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp
import pytest
from redis.asyncio import Redis

from server.store.keys import KeySchema
from tests.http.api import DEAD_LETTER_RETRY, Api
from tests.support import new_queue

ADMIN = "/ojs/v1/admin"
STATES = ("pending", "scheduled", "available", "active", "retryable", "completed", "discarded", "cancelled")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def enqueue(api: Api, queue: str, job_type: str = "adm.work", **options: Any) -> str:
    body = {"type": job_type, "args": [queue], "options": {"queue": queue, **options}}
    return str((await api.ok("POST", "/ojs/v1/jobs", body, status=201))["job"]["id"])


async def fetch(api: Api, queue: str, count: int = 1) -> list[str]:
    body = {"queues": [queue], "count": count, "worker_id": "adm-worker"}
    return [job["id"] for job in (await api.ok("POST", "/ojs/v1/workers/fetch", body))["jobs"]]


async def fail(api: Api, job_id: str) -> None:
    await api.ok("POST", "/ojs/v1/workers/nack", {"job_id": job_id, "error": {"code": "boom", "message": "it broke"}})


async def index_states(redis: Redis, job_id: str, queue: str) -> tuple[set[str], set[str]]:
    """The states whose all-queue and per-queue indexes hold the job."""
    keys = KeySchema("ojs")
    everywhere = {s for s in STATES if await redis.zscore(keys.state_index(s), job_id) is not None}
    in_queue = {s for s in STATES if await redis.zscore(keys.queue_state_index(s, queue), job_id) is not None}
    return everywhere, in_queue


async def assert_indexed_as(redis: Redis, job_id: str, queue: str, state: str | None) -> None:
    """In the indexes of its state and no other: available jobs are in their queue's available set only
    (the admin search merges those over all queues), active jobs in the lease set only."""
    keys = KeySchema("ojs")
    everywhere = {state} if state and state not in ("available", "active") else set()
    in_queue = {state} if state and state not in ("available", "active") else set()
    assert await index_states(redis, job_id, queue) == (everywhere, in_queue)
    assert (await redis.zscore(keys.available(queue), job_id) is not None) == (state == "available")
    assert (await redis.zscore(keys.active, job_id) is not None) == (state == "active")
    stored = cast(bytes | None, await redis.hget(KeySchema("ojs").job(job_id), "state"))
    assert (stored.decode() if stored else None) == state


async def list_ids(api: Api, **params: Any) -> list[str]:
    body = await api.ok("GET", f"{ADMIN}/jobs?" + "&".join(f"{k}={v}" for k, v in params.items()))
    return [item["id"] for item in body["items"]]


async def test_every_transition_moves_the_job_between_state_indexes(api: Api, redis: Redis) -> None:
    queue = new_queue("adm")
    job = await enqueue(api, queue, retry={"max_attempts": 2, "initial_interval": "PT0.5S", "jitter": False})
    await assert_indexed_as(redis, job, queue, "available")
    assert await fetch(api, queue) == [job]
    await assert_indexed_as(redis, job, queue, "active")
    await fail(api, job)
    await assert_indexed_as(redis, job, queue, "retryable")
    # Due almost at once: the next fetch promotes and leases it again.
    await asyncio.sleep(0.7)
    assert await fetch(api, queue) == [job]
    await fail(api, job)
    await assert_indexed_as(redis, job, queue, "discarded")
    await api.ok("POST", f"{ADMIN}/jobs/{job}/retry")
    await assert_indexed_as(redis, job, queue, "available")
    assert await fetch(api, queue) == [job]
    await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": job, "result": {"ok": True}})
    await assert_indexed_as(redis, job, queue, "completed")

    scheduled = await enqueue(api, queue, delay_until=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    await assert_indexed_as(redis, scheduled, queue, "scheduled")
    await api.ok("POST", f"{ADMIN}/jobs/{scheduled}/cancel")
    await assert_indexed_as(redis, scheduled, queue, "cancelled")

    dead = await enqueue(api, queue, retry=DEAD_LETTER_RETRY)
    await fetch(api, queue)
    await fail(api, dead)
    await assert_indexed_as(redis, dead, queue, "discarded")
    await api.ok("DELETE", f"{ADMIN}/dead-letter/{dead}")
    await assert_indexed_as(redis, dead, queue, None)


async def test_job_listing_pages_by_cursor_without_gaps_or_repeats(api: Api) -> None:
    queue = new_queue("adm")
    batch = [{"type": "adm.page", "args": [i], "options": {"queue": queue}} for i in range(45)]
    await api.ok("POST", "/ojs/v1/jobs/batch", {"jobs": batch}, status=201)
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        body = await api.ok("GET", f"{ADMIN}/jobs?state=available&queue={queue}&limit=10{suffix}")
        if pages == 0:
            assert body["pagination"]["total"] == 45
        seen.extend(item["id"] for item in body["items"])
        pages += 1
        # A job leaving the index between pages must not make the next page skip or repeat others.
        if pages == 2:
            [taken] = await fetch(api, queue)
            assert taken not in seen[-10:] or taken in seen
        if not body["pagination"]["has_more"]:
            break
        cursor = body["pagination"]["next_cursor"]
    assert len(seen) == len(set(seen))
    assert len(seen) >= 44  # the fetched job may have left before its page was read


async def test_job_listing_filters_by_type_prefix_and_time(api: Api) -> None:
    queue = new_queue("adm")
    mail = [await enqueue(api, queue, "mail.send") for _ in range(3)]
    report = await enqueue(api, queue, "report.build")
    assert set(await list_ids(api, state="available", queue=queue, type="mail.*")) == set(mail)
    assert await list_ids(api, state="available", queue=queue, type="report.build") == [report]
    # A queue's available jobs come in run order; over all queues, by the time they became available.
    assert (await list_ids(api, state="available", queue=queue, order="asc"))[0] == mail[0]
    marker = f"t{uuid.uuid4().hex[:8]}.once"
    timed = await enqueue(api, queue, marker)
    future = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await list_ids(api, state="available", type=marker, since=future) == []
    assert await list_ids(api, state="available", type=marker, since=past, until=future) == [timed]
    status, body = await api.get(f"{ADMIN}/jobs?state=available&queue={queue}&since={past}")
    assert status == 400 and body["error"]["details"]["field"] == "since"


async def test_job_listing_requires_a_valid_state_and_cursor(api: Api) -> None:
    status, body = await api.get(f"{ADMIN}/jobs")
    assert status == 400 and body["error"]["details"]["field"] == "state"
    status, body = await api.get(f"{ADMIN}/jobs?state=sleeping")
    assert status == 400
    status, body = await api.get(f"{ADMIN}/jobs?state=available&cursor=garbage")
    assert status == 400 and body["error"]["details"]["field"] == "cursor"


async def test_queue_summaries_count_per_state_and_pause_from_the_admin_path(api: Api) -> None:
    queue = new_queue("adm")
    for _ in range(3):
        await enqueue(api, queue)
    [job] = await fetch(api, queue)
    await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": job})
    detail = await api.ok("GET", f"{ADMIN}/queues/{queue}")
    assert detail["counts"]["available"] == 2 and detail["counts"]["completed"] == 1
    assert detail["state"] == "active" and detail["totals"]["completed"] == 1
    await api.ok("POST", f"{ADMIN}/queues/{queue}/pause")
    listing = await api.ok("GET", f"{ADMIN}/queues?prefix={queue}")
    assert [(q["name"], q["paused"]) for q in listing["items"]] == [(queue, True)]
    assert await fetch(api, queue) == []
    await api.ok("POST", f"{ADMIN}/queues/{queue}/resume")
    status, _ = await api.get(f"{ADMIN}/queues/no-such-queue-{uuid.uuid4().hex}")
    assert status == 404


async def test_queue_config_sets_and_clears_limits(api: Api) -> None:
    queue = new_queue("adm")
    await enqueue(api, queue)
    body = await api.ok("PUT", f"{ADMIN}/queues/{queue}/config", {"concurrency": 1, "max_per_second": 5})
    assert body["configuration"] == {"concurrency": 1, "max_per_second": 5.0}
    await enqueue(api, queue)
    assert len(await fetch(api, queue, count=2)) == 1
    body = await api.ok("PUT", f"{ADMIN}/queues/{queue}/config", {"concurrency": 0, "max_per_second": 0})
    assert body["configuration"] == {"concurrency": 0, "max_per_second": 0.0}


async def test_purge_requires_confirm_and_removes_only_finished_jobs(api: Api, redis: Redis) -> None:
    queue = new_queue("adm")
    done = []
    for _ in range(3):
        await enqueue(api, queue)
        [job] = await fetch(api, queue)
        await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": job})
        done.append(job)
    waiting = await enqueue(api, queue)
    status, body = await api.call("DELETE", f"{ADMIN}/queues/{queue}/jobs", {"states": ["completed"]})
    assert status == 400 and body["error"]["details"]["field"] == "confirm"
    status, _ = await api.call("DELETE", f"{ADMIN}/queues/{queue}/jobs", {"states": ["available"], "confirm": True})
    assert status == 400
    body = await api.ok("DELETE", f"{ADMIN}/queues/{queue}/jobs", {"states": ["completed"], "confirm": True})
    assert body["purged_count"] == 3
    for job in done:
        assert await redis.exists(KeySchema("ojs").job(job)) == 0
    await assert_indexed_as(redis, waiting, queue, "available")


async def test_bulk_retry_dry_run_counts_then_retries_up_to_the_limit(api: Api) -> None:
    queue = new_queue("adm")
    for _ in range(4):
        await enqueue(api, queue, retry=DEAD_LETTER_RETRY)
    for job in await fetch(api, queue, count=4):
        await fail(api, job)
    flt = {"state": "discarded", "queue": queue}
    dry = await api.ok("POST", f"{ADMIN}/jobs/bulk/retry", {"filter": flt, "dry_run": True, "limit": 3})
    assert (dry["matched"], dry["succeeded"], dry["truncated"], dry["dry_run"]) == (3, 0, True, True)
    status, _ = await api.post(f"{ADMIN}/jobs/bulk/retry", {"filter": flt, "limit": 3})
    assert status == 400
    done = await api.ok("POST", f"{ADMIN}/jobs/bulk/retry", {"filter": flt, "limit": 3, "confirm": True})
    assert (done["matched"], done["succeeded"], done["failed"]) == (3, 3, 0)
    assert len(await list_ids(api, state="available", queue=queue)) == 3
    assert len(await list_ids(api, state="discarded", queue=queue)) == 1


async def test_bulk_cancel_and_delete(api: Api) -> None:
    queue = new_queue("adm")
    for _ in range(3):
        await enqueue(api, queue)
    body = await api.ok(
        "POST", f"{ADMIN}/jobs/bulk/cancel", {"filter": {"state": "available", "queue": queue}, "confirm": True}
    )
    assert body["succeeded"] == 3
    assert len(await list_ids(api, state="cancelled", queue=queue)) == 3
    body = await api.ok(
        "POST", f"{ADMIN}/jobs/bulk/delete", {"filter": {"state": "cancelled", "queue": queue}, "confirm": True}
    )
    assert body["succeeded"] == 3
    assert await list_ids(api, state="cancelled", queue=queue) == []
    status, _ = await api.post(f"{ADMIN}/jobs/bulk/delete", {"filter": {"state": "available"}, "confirm": True})
    assert status == 400


async def test_retry_refuses_jobs_that_have_not_failed(api: Api) -> None:
    queue = new_queue("adm")
    job = await enqueue(api, queue)
    status, body = await api.post(f"{ADMIN}/jobs/{job}/retry")
    assert status == 409, body
    status, _ = await api.post(f"{ADMIN}/jobs/{uuid.uuid4()}/retry")
    assert status == 404


async def test_stats_and_history_count_activity(api: Api, redis: Redis) -> None:
    queue = new_queue("adm")
    await enqueue(api, queue)
    [job] = await fetch(api, queue)
    await api.ok("POST", "/ojs/v1/workers/ack", {"job_id": job})
    # The minute buckets expire on their own (set when a bucket is created, two hours).
    keys, minute = KeySchema("ojs"), int(datetime.now(UTC).timestamp()) // 60
    for bucket in (functools.partial(keys.queue_minute, queue), keys.stats_minute):
        # The activity may have fallen in the previous minute; no bucket may be left without an expiry (-1).
        ttls = [await redis.pttl(bucket(m)) for m in (minute - 1, minute)]
        assert -1 not in ttls and 0 < max(ttls) <= 7_200_000
    stats = await api.ok("GET", f"{ADMIN}/stats")
    assert set(stats["jobs"]) == set(STATES) and stats["queues"] >= 1
    history = await api.ok("GET", f"{ADMIN}/stats/history?period=1m&queue={queue}")
    assert history["period"] == "1m"
    assert sum(p["processed"] for p in history["data"]) == 1
    assert sum(p["enqueued"] for p in history["data"]) == 1
    overall = await api.ok("GET", f"{ADMIN}/stats/history?period=5m")
    assert sum(p["processed"] for p in overall["data"]) >= 1
    status, _ = await api.get(f"{ADMIN}/stats/history?period=7m")
    assert status == 400


async def test_worker_detail_lists_its_jobs_and_deregister_needs_staleness_or_force(api: Api) -> None:
    queue = new_queue("adm")
    worker = f"w-{uuid.uuid4().hex[:8]}"
    await enqueue(api, queue)
    body = {"queues": [queue], "count": 1, "worker_id": worker}
    [job] = (await api.ok("POST", "/ojs/v1/workers/fetch", body))["jobs"]
    await api.ok("POST", "/ojs/v1/workers/heartbeat", {"worker_id": worker, "active_jobs": [job["id"]]})
    active = await api.ok("GET", f"{ADMIN}/jobs?state=active&queue={queue}")
    assert [j["id"] for j in active["items"]] == [job["id"]] and active["pagination"]["total"] == 1
    assert active["items"][0]["worker_id"] == worker
    detail = await api.ok("GET", f"{ADMIN}/workers/{worker}")
    assert [j["id"] for j in detail["jobs"]] == [job["id"]] and detail["stale"] is False
    status, _ = await api.delete(f"{ADMIN}/workers/{worker}")
    assert status == 409
    await api.ok("DELETE", f"{ADMIN}/workers/{worker}?force=true")
    status, _ = await api.get(f"{ADMIN}/workers/{worker}")
    assert status == 404


async def test_dead_letter_purge_and_workflow_listing(api: Api) -> None:
    queue = new_queue("adm")
    await enqueue(api, queue, retry=DEAD_LETTER_RETRY)
    [job] = await fetch(api, queue)
    await fail(api, job)
    status, _ = await api.call("DELETE", f"{ADMIN}/dead-letter", {})
    assert status == 400
    body = await api.ok("DELETE", f"{ADMIN}/dead-letter", {"confirm": True})
    assert body["purged_count"] >= 1
    status, _ = await api.get(f"/ojs/v1/jobs/{job}")
    assert status == 404

    workflow = {
        "type": "chain",
        "name": f"wf-{queue}",
        "steps": [
            {"type": "adm.a", "args": [], "options": {"queue": queue}},
            {"type": "adm.b", "args": [], "options": {"queue": queue}},
        ],
    }
    created = await api.ok("POST", "/ojs/v1/workflows", workflow, status=201)
    listing = await api.ok("GET", f"{ADMIN}/workflows?limit=100")
    mine = [w for w in listing["items"] if w["id"] == created["workflow"]["id"]]
    assert mine and mine[0]["name"] == f"wf-{queue}" and mine[0]["steps_total"] == 2
    graph = await api.ok("GET", f"{ADMIN}/workflows/{created['workflow']['id']}")
    assert [s["state"] for s in graph["workflow"]["steps"]][1] in ("waiting", "pending")


async def test_dashboard_files_are_served_with_their_types(api: Api, ojs_http: Any) -> None:
    async with aiohttp.ClientSession() as session:
        for path, kind in (("", "text/html"), ("core.js", "text/javascript"), ("app.css", "text/css")):
            async with session.get(f"{ojs_http.base_url}/ojs/admin/{path}") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith(kind)
                assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        async with session.get(f"{ojs_http.base_url}/ojs/admin/secrets.txt") as resp:
            assert resp.status == 404
        async with session.get(f"{ojs_http.base_url}/ojs/admin", allow_redirects=False) as resp:
            assert resp.status == 308 and resp.headers["Location"] == "/ojs/admin/"


async def test_global_event_stream_delivers_new_jobs(api: Api, ojs_http: Any) -> None:
    queue = new_queue("adm")
    url = f"{ojs_http.base_url}{ADMIN}/events?types=job.enqueued"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        job = await enqueue(api, queue)

        async def until_seen() -> None:
            async for line in resp.content:
                if job.encode() in line:
                    return

        await asyncio.wait_for(until_seen(), timeout=10)
