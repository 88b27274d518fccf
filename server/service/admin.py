"""The control plane (ojs-admin-api.md): queue summaries, job search, bulk changes, stats.

Job search reads the per-state indexes the transition scripts keep, so a page
costs one Redis call however many jobs there are; a type filter is applied while
reading, bounded by a scan budget (a short page then comes with a cursor).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import ErrorCode, OJSError, conflict, invalid, not_found
from server.domain.job import StoredJob
from server.domain.states import TERMINAL, JobState
from server.domain.validation import validate_queue
from server.model.admin import IndexPage, IndexQuery, MinuteBucket, QueueSnapshot, WorkerSnapshot
from server.store.admin import JOB_ROW_FIELDS, WORKFLOW_ROW_FIELDS
from server.store.facade import Store

__all__ = ["AdminService", "BulkAction", "BulkOutcome", "JobFilter", "JobPage", "Stats", "StatsPoint"]

MAX_PAGE = 100
MAX_QUEUE_PAGE = 500
MAX_BULK = 10_000
DEFAULT_BULK = 1_000
# Index entries one list call examines at most when a type filter skips entries.
SCAN_BUDGET = 2_000
# Jobs one bulk script call changes; each job is still its own atomic change.
_BULK_CHUNK = 500
_CANCEL_CONCURRENCY = 32
HISTORY_PERIODS = (1, 5, 15, 60)
# Per-minute activity is kept this long (include/qminute.lua).
HISTORY_KEPT_MINUTES = 120


class BulkAction(enum.StrEnum):
    RETRY = "retry"
    CANCEL = "cancel"
    DELETE = "delete"


@dataclasses.dataclass(frozen=True)
class JobFilter:
    state: JobState
    queue: str | None = None
    # Exact type, or a prefix ending in "*".
    type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class JobPage:
    page: IndexPage
    next_cursor: str


@dataclasses.dataclass(frozen=True)
class BulkOutcome:
    action: BulkAction
    matched: int
    succeeded: int
    errors: list[tuple[str, str]]
    dry_run: bool
    truncated: bool


@dataclasses.dataclass(frozen=True)
class StatsPoint:
    minute: int
    processed: int
    failed: int
    enqueued: int
    avg_duration_ms: float


@dataclasses.dataclass(frozen=True)
class Stats:
    queues: int
    workers: int
    dead_letter: int
    counts: dict[str, int]
    minutes: list[MinuteBucket]
    uptime_s: int


def encode_cursor(cursor: tuple[str, str] | None) -> str:
    return "" if cursor is None else f"{cursor[0]}:{cursor[1]}"


def decode_cursor(text: str) -> tuple[str, str] | None:
    if not text:
        return None
    score, sep, ident = text.partition(":")
    if not sep or not score.isdigit() or not ident:
        raise invalid("cursor must be a next_cursor returned by a previous call", field="cursor")
    return score, ident


def _refusal_message(refusal: str) -> str:
    if refusal == "not_found":
        return "job not found"
    if refusal == "workflow":
        return "job belongs to a workflow; retry the workflow instead"
    return f"job is {refusal.removeprefix('state:')}"


class AdminService:
    def __init__(self, store: Store, *, stale_after_ms: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self._store = store.admin
        self._jobs = store.jobs
        self._stale_after_ms = stale_after_ms
        self._clock = clock
        self._started = time.monotonic()

    async def trim_indexes(self) -> None:
        """Retention for the terminal state indexes (run by a background loop)."""
        await self._store.trim_indexes(now_ms=self._clock.now_ms())

    # ---- Queues ----

    async def list_queues(self, *, limit: int, cursor: str, prefix: str) -> tuple[list[QueueSnapshot], str, int]:
        limit = _bounded(limit, default=50, maximum=MAX_QUEUE_PAGE, field="limit")
        names = [n for n in await self._store.queue_names() if n.startswith(prefix)]
        after = [n for n in names if n > cursor] if cursor else names
        page = after[:limit]
        snapshots = await self._store.queue_snapshots(page, now_ms=self._clock.now_ms())
        next_cursor = page[-1] if len(after) > limit else ""
        return snapshots, next_cursor, len(names)

    async def queue(self, queue: str) -> QueueSnapshot:
        (snapshot,) = await self._store.queue_snapshots([validate_queue(queue)], now_ms=self._clock.now_ms())
        if not snapshot.created_at_ms:
            raise not_found("queue", queue)
        return snapshot

    async def set_queue_config(self, queue: str, *, concurrency: int, max_per_second: float) -> QueueSnapshot:
        if concurrency < 0:
            raise invalid("concurrency must be 0 (unlimited) or positive", field="concurrency")
        if max_per_second < 0:
            raise invalid("max_per_second must be 0 (unlimited) or positive", field="max_per_second")
        snapshot = await self.queue(queue)
        await self._store.set_queue_config(snapshot.name, concurrency=concurrency, max_per_second=max_per_second)
        return await self.queue(queue)

    async def purge_queue(self, queue: str, *, states: list[JobState], older_than_ms: int | None, confirm: bool) -> int:
        _require_confirm(confirm)
        if not states:
            raise invalid("states must name at least one terminal state", field="states")
        for state in states:
            if state not in TERMINAL:
                raise invalid(f"only terminal states can be purged, not '{state}'", field="states")
        snapshot = await self.queue(queue)
        purged = 0
        for state in states:
            query = JobFilter(state=state, queue=snapshot.name, until_ms=older_than_ms)
            purged += await self._delete_all(query)
        return purged

    async def _delete_all(self, job_filter: JobFilter) -> int:
        deleted = 0
        while True:
            ids = await self._matching_ids(job_filter, _BULK_CHUNK, oldest_first=True)
            if not ids:
                return deleted
            refusals = await self._store.bulk("delete", ids, now_ms=self._clock.now_ms())
            done = sum(1 for r in refusals if not r)
            deleted += done
            if done == 0:
                return deleted

    # ---- Jobs ----

    def _index(self, job_filter: JobFilter) -> tuple[str, str, bool]:
        """The sorted set to walk, the queue to match while walking ('' none) and whether its scores are times."""
        keys = self._store.keys
        state, queue = job_filter.state, job_filter.queue or ""
        if state is JobState.ACTIVE:
            # The lease set, scored by lease deadline; active jobs are few, so a queue is matched while walking.
            return keys.active, queue, False
        if state is JobState.AVAILABLE and queue:
            # The queue itself, in the order its jobs will run (priority, then enqueue order).
            return keys.available(queue), "", False
        if queue:
            return keys.queue_state_index(state.value, queue), "", True
        if state is JobState.AVAILABLE:
            # No index over all queues: AdminStore.available_page merges the queues' available sets.
            return "", "", True
        return keys.state_index(state.value), "", True

    def _query(self, job_filter: JobFilter, *, limit: int, cursor: str, ascending: bool, budget: int) -> IndexQuery:
        key, match_queue, timed = self._index(job_filter)
        if not timed and (job_filter.since_ms is not None or job_filter.until_ms is not None):
            what = "active jobs" if job_filter.state is JobState.ACTIVE else "the available jobs of one queue"
            raise invalid(f"since and until do not apply to {what}; they are listed in run order", field="since")
        job_type = job_filter.type or ""
        prefix = job_type.endswith("*")
        if (
            job_filter.since_ms is not None
            and job_filter.until_ms is not None
            and job_filter.since_ms > job_filter.until_ms
        ):
            raise invalid("since must not be after until", field="since")
        return IndexQuery(
            key=key,
            low_ms=job_filter.since_ms,
            high_ms=job_filter.until_ms,
            cursor=decode_cursor(cursor),
            limit=limit,
            ascending=ascending,
            match=job_type.removesuffix("*") if prefix else job_type,
            match_prefix=prefix,
            match_second=match_queue,
            budget=budget,
        )

    async def list_jobs(self, job_filter: JobFilter, *, limit: int, cursor: str, ascending: bool) -> JobPage:
        if job_filter.queue:
            validate_queue(job_filter.queue)
        limit = _bounded(limit, default=20, maximum=MAX_PAGE, field="limit")
        query = self._query(job_filter, limit=limit, cursor=cursor, ascending=ascending, budget=SCAN_BUDGET)
        page = await self._page(job_filter, query, JOB_ROW_FIELDS)
        if query.match_second:
            # The lease set counts every queue's active jobs; the queue's own counter says how many are its.
            page = dataclasses.replace(page, total=await self._store.active_in_queue(query.match_second))
        return JobPage(page=page, next_cursor=encode_cursor(page.next_cursor))

    async def _page(self, job_filter: JobFilter, query: IndexQuery, fields: tuple[str, ...]) -> IndexPage:
        if job_filter.state is JobState.AVAILABLE and not job_filter.queue:
            return await self._store.available_page(query, fields)
        return await self._store.page(query, self._store.keys.job_prefix, fields)

    async def _matching_ids(self, job_filter: JobFilter, limit: int, *, oldest_first: bool = False) -> list[str]:
        """Up to `limit` ids matching the filter, from the start of its index (every page read in full)."""
        ids: list[str] = []
        cursor = ""
        while len(ids) < limit:
            want = min(limit - len(ids), _BULK_CHUNK)
            query = self._query(job_filter, limit=want, cursor=cursor, ascending=oldest_first, budget=_BULK_CHUNK * 4)
            page = await self._page(job_filter, query, ("type", "queue"))
            ids.extend(job_id for _, job_id, _ in page.rows)
            if page.next_cursor is None:
                break
            cursor = encode_cursor(page.next_cursor)
        return ids

    async def retry_job(self, job_id: str) -> StoredJob:
        (refusal,) = await self._store.bulk("retry", [job_id], now_ms=self._clock.now_ms())
        if refusal == "not_found":
            raise not_found("job", job_id)
        if refusal:
            raise conflict(f"cannot retry: {_refusal_message(refusal)}; only discarded or cancelled jobs can")
        stored = await self._jobs.get(job_id)
        if stored is None:
            raise not_found("job", job_id)
        return stored

    async def bulk(
        self, action: BulkAction, job_filter: JobFilter, *, limit: int, dry_run: bool, confirm: bool
    ) -> BulkOutcome:
        if not dry_run:
            _require_confirm(confirm)
        limit = _bounded(limit, default=DEFAULT_BULK, maximum=MAX_BULK, field="limit")
        if action is BulkAction.RETRY and job_filter.state not in (JobState.DISCARDED, JobState.CANCELLED):
            raise invalid("bulk retry applies to discarded or cancelled jobs", field="filter.state")
        if action is BulkAction.DELETE and job_filter.state not in TERMINAL:
            raise invalid("bulk delete applies to completed, discarded or cancelled jobs", field="filter.state")
        if action is BulkAction.CANCEL and job_filter.state in TERMINAL:
            raise invalid("bulk cancel applies to jobs that have not finished", field="filter.state")
        if job_filter.queue:
            validate_queue(job_filter.queue)
        # One more than the limit tells whether the filter matches more.
        ids = await self._matching_ids(job_filter, limit + 1, oldest_first=True)
        truncated = len(ids) > limit
        ids = ids[:limit]
        if dry_run:
            return BulkOutcome(action, len(ids), 0, [], dry_run=True, truncated=truncated)
        if action is BulkAction.CANCEL:
            errors = await self._cancel_all(ids)
        else:
            errors = []
            for start in range(0, len(ids), _BULK_CHUNK):
                chunk = ids[start : start + _BULK_CHUNK]
                refusals = await self._store.bulk(action.value, chunk, now_ms=self._clock.now_ms())
                errors.extend((j, _refusal_message(r)) for j, r in zip(chunk, refusals, strict=True) if r)
        return BulkOutcome(action, len(ids), len(ids) - len(errors), errors, dry_run=False, truncated=truncated)

    async def _cancel_all(self, ids: list[str]) -> list[tuple[str, str]]:
        gate = asyncio.Semaphore(_CANCEL_CONCURRENCY)
        errors: list[tuple[str, str]] = []

        async def cancel(job_id: str) -> None:
            async with gate:
                try:
                    await self._jobs.cancel(job_id, reason="bulk cancel", now_ms=self._clock.now_ms())
                except OJSError as exc:
                    if exc.code is ErrorCode.BACKEND_UNAVAILABLE:
                        raise
                    errors.append((job_id, exc.message))

        async with asyncio.TaskGroup() as group:
            for job_id in ids:
                group.create_task(cancel(job_id))
        return errors

    # ---- Workers ----

    async def worker(self, worker_id: str) -> tuple[WorkerSnapshot, bool]:
        """The worker and whether it is stale (missed its heartbeat deadline)."""
        snapshot = await self._store.worker(worker_id)
        if snapshot is None:
            raise not_found("worker", worker_id)
        return snapshot, snapshot.last_heartbeat_ms < self._clock.now_ms() - self._stale_after_ms

    async def deregister_worker(self, worker_id: str, *, force: bool) -> None:
        cutoff = None if force else self._clock.now_ms() - self._stale_after_ms
        outcome = await self._store.forget_worker(worker_id, cutoff_ms=cutoff)
        if outcome == 0:
            raise not_found("worker", worker_id)
        if outcome < 0:
            raise conflict(
                f"worker '{worker_id}' sent a heartbeat within the last {self._stale_after_ms} ms; "
                "quiet it first, or pass force"
            )

    # ---- Stats ----

    async def stats(self) -> Stats:
        counts, queues, workers, dead = await self._store.totals()
        current = self._clock.now_ms() // 60_000
        minutes = await self._store.minutes(first=current - 60, last=current, queue=None)
        uptime = int(time.monotonic() - self._started)
        return Stats(queues, workers, dead, counts, minutes, uptime)

    async def history(
        self, *, period_minutes: int, since_ms: int | None, until_ms: int | None, queue: str | None
    ) -> list[StatsPoint]:
        period = period_minutes or 1
        if period not in HISTORY_PERIODS:
            raise invalid(f"period must be one of {', '.join(f'{p}m' for p in HISTORY_PERIODS)}", field="period")
        now_minute = self._clock.now_ms() // 60_000
        last = min(now_minute, until_ms // 60_000) if until_ms is not None else now_minute
        first = since_ms // 60_000 if since_ms is not None else last - 59
        first = max(first, now_minute - HISTORY_KEPT_MINUTES + 1)
        if first > last:
            return []
        first -= first % period
        buckets = await self._store.minutes(first=first, last=last, queue=validate_queue(queue) if queue else None)
        points = []
        for start in range(0, len(buckets), period):
            group = buckets[start : start + period]
            processed = sum(b.fields.get("completed", 0) for b in group)
            duration = sum(b.fields.get("duration_ms", 0) for b in group)
            points.append(
                StatsPoint(
                    minute=group[0].minute,
                    processed=processed,
                    failed=sum(b.fields.get("failed", 0) for b in group),
                    enqueued=sum(b.fields.get("enqueued", 0) for b in group),
                    avg_duration_ms=duration / processed if processed else 0.0,
                )
            )
        return points

    # ---- Dead letter ----

    async def purge_dead_letter(self, *, older_than_ms: int | None, confirm: bool) -> int:
        _require_confirm(confirm)
        purged = 0
        while True:
            ids = await self._store.dead_letter_before(older_than_ms, limit=_BULK_CHUNK)
            if not ids:
                return purged
            refusals = await self._store.bulk("delete", ids, now_ms=self._clock.now_ms())
            done = sum(1 for r in refusals if not r)
            purged += done
            if done == 0:
                return purged

    # ---- Workflows ----

    async def list_workflows(self, *, limit: int, cursor: str) -> JobPage:
        limit = _bounded(limit, default=20, maximum=MAX_PAGE, field="limit")
        keys = self._store.keys
        query = IndexQuery(key=keys.workflows, cursor=decode_cursor(cursor), limit=limit, budget=SCAN_BUDGET)
        page = await self._store.page(query, keys.workflow_prefix, WORKFLOW_ROW_FIELDS)
        return JobPage(page=page, next_cursor=encode_cursor(page.next_cursor))


def _require_confirm(confirm: bool) -> None:
    if not confirm:
        raise invalid("this operation is destructive: set confirm to true", field="confirm")


def _bounded(value: int, *, default: int, maximum: int, field: str) -> int:
    if value < 0:
        raise invalid(f"{field} must not be negative", field=field)
    if value == 0:
        return default
    return min(value, maximum)
