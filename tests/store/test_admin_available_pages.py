"""The admin search over the available jobs of every queue: the queues' own sets merged, no index of its own."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.service.admin import AdminService, BulkAction, JobFilter
from server.store.facade import Store
from tests.store.helpers import fetch

ALL_AVAILABLE = JobFilter(state=JobState.AVAILABLE)


async def enqueue(store: Store, queue: str, job_type: str, *, at: int, **options: Any) -> str:
    job = parse_enqueue({"type": job_type, "args": [], "options": {"queue": queue, **options}}, now_ms=at)
    await store.jobs.enqueue(job)
    return job.id


async def mixed_queues(store: Store) -> list[str]:
    """Jobs of three queues and several priorities, in the order they were enqueued (one ms apart)."""
    ids = []
    for i in range(24):
        queue = ("avail-a", "avail-b", "avail-c")[i % 3]
        job_type = "mail.send" if i % 2 else "report.build"
        ids.append(await enqueue(store, queue, job_type, at=1_000_000 + i, priority=(i * 7) % 5 - 2))
    return ids


async def walk(admin: AdminService, job_filter: JobFilter, *, limit: int, ascending: bool = False) -> list[str]:
    seen: list[str] = []
    cursor = ""
    for _ in range(100):
        page = await admin.list_jobs(job_filter, limit=limit, cursor=cursor, ascending=ascending)
        seen.extend(job_id for _, job_id, _ in page.page.rows)
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor
    raise AssertionError("paging did not end")


async def test_pages_list_every_queue_in_the_order_jobs_became_available(store: Store, store_redis: Redis) -> None:
    ids = await mixed_queues(store)
    admin = AdminService(store, stale_after_ms=60_000)
    assert await walk(admin, ALL_AVAILABLE, limit=5) == list(reversed(ids))
    assert await walk(admin, ALL_AVAILABLE, limit=7, ascending=True) == ids
    first = await admin.list_jobs(ALL_AVAILABLE, limit=4, cursor="", ascending=True)
    assert first.page.total == len(ids)
    score, job_id, fields = first.page.rows[0]
    assert (score, job_id, fields["queue"], fields["state"]) == (1_000_000, ids[0], "avail-a", "available")
    # No sorted set over all queues holds them: only their queues' sets do.
    assert await store_redis.exists(store.keys.state_index("available")) == 0


async def test_a_cursor_whose_job_was_fetched_continues_where_it_was(store: Store) -> None:
    ids = await mixed_queues(store)
    admin = AdminService(store, stale_after_ms=60_000)
    first = await admin.list_jobs(ALL_AVAILABLE, limit=5, cursor="", ascending=True)
    assert [job_id for _, job_id, _ in first.page.rows] == ids[:5]
    # The queue's next job by priority leaves (whichever it is), the cursor's own job among the candidates.
    (taken,) = await fetch(store, "avail-b")
    rest: list[str] = []
    cursor = first.next_cursor
    while cursor:
        page = await admin.list_jobs(ALL_AVAILABLE, limit=5, cursor=cursor, ascending=True)
        rest.extend(job_id for _, job_id, _ in page.page.rows)
        cursor = page.next_cursor
    assert rest == [job_id for job_id in ids[5:] if job_id != taken.id]


async def test_type_and_time_filters_apply_over_all_queues(store: Store) -> None:
    ids = await mixed_queues(store)
    admin = AdminService(store, stale_after_ms=60_000)
    mail = JobFilter(state=JobState.AVAILABLE, type="mail.*")
    assert await walk(admin, mail, limit=3, ascending=True) == ids[1::2]
    timed = JobFilter(state=JobState.AVAILABLE, since_ms=1_000_010, until_ms=1_000_013)
    assert await walk(admin, timed, limit=2) == list(reversed(ids[10:14]))
    # A bulk change over all queues finds its jobs the same way.
    outcome = await admin.bulk(BulkAction.CANCEL, mail, limit=100, dry_run=True, confirm=False)
    assert (outcome.matched, outcome.truncated) == (12, False)


async def test_stats_count_available_jobs_from_the_queue_sets(store: Store) -> None:
    ids = await mixed_queues(store)
    admin = AdminService(store, stale_after_ms=60_000)
    await fetch(store, "avail-c", count=2)
    stats = await admin.stats()
    assert stats.counts["available"] == len(ids) - 2
    assert stats.counts["active"] == 2
