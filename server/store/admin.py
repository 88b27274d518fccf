"""Redis reads and writes of the admin API: state indexes, queue summaries, bulk changes, stats.

The state indexes are kept by the transition scripts (include/index_move.lua);
this part only reads them, trims them for retention and changes finished jobs
through its own scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from server.model.admin import IndexPage, IndexQuery, MinuteBucket, QueueSnapshot, WorkerSnapshot
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors
from server.store.keys import KeySchema

__all__ = ["INDEXED_STATES", "JOB_ROW_FIELDS", "STATES", "WORKFLOW_ROW_FIELDS", "AdminStore"]

# States with an index per queue and one over all queues (include/index_move.lua). Available jobs have
# their queue's available set (merged over all queues when listed); active jobs the active set (their leases).
INDEXED_STATES = ("pending", "scheduled", "retryable", "completed", "discarded", "cancelled")
STATES = ("pending", "scheduled", "available", "active", "retryable", "completed", "discarded", "cancelled")
_TERMINAL = ("completed", "discarded", "cancelled")
# Job hash fields a listed job row carries, in order.
JOB_ROW_FIELDS = (
    "type",
    "queue",
    "state",
    "priority",
    "attempt",
    "r_max",
    "created_at",
    "error",
    "workflow_id",
    "worker_id",
    "args",
    "enqueued_at",
    "started_at",
)
WORKFLOW_ROW_FIELDS = ("name", "state", "step_count", "completed", "failed", "created_at")
# Queues whose terminal indexes one trim pass visits per pipeline.
_TRIM_CHUNK = 200


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class AdminStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._redis = ctx.redis
        self._keys = ctx.keys
        self._scripts = ctx.scripts

    @property
    def keys(self) -> KeySchema:
        return self._keys

    # ---- Indexes ----

    @translate_redis_errors
    async def page(self, query: IndexQuery, prefix: str, fields: Sequence[str]) -> IndexPage:
        cursor_score, cursor_id = query.cursor or ("", "")
        reply = await self._scripts.call(
            "admin_list_jobs",
            [query.key],
            [
                prefix,
                "-inf" if query.low_ms is None else query.low_ms,
                "+inf" if query.high_ms is None else query.high_ms,
                cursor_score,
                cursor_id,
                query.limit,
                "1" if query.ascending else "0",
                query.match,
                "1" if query.match_prefix else "0",
                query.budget,
                query.match_second,
                *fields,
            ],
        )
        return _index_page(reply, fields)

    @translate_redis_errors
    async def available_page(self, query: IndexQuery, fields: Sequence[str]) -> IndexPage:
        """One page of the available jobs of every queue, in the order they became available.

        `query.key` is not read: every queue's available set serves (see admin_list_available.lua). The
        cursor is a position in that order (a sequence number); the rows' scores are their enqueued_at.
        """
        k = self._keys
        cursor_sequence, _ = query.cursor or ("", "")
        reply = await self._scripts.call(
            "admin_list_available",
            [k.queues],
            [
                k.job_prefix,
                k.available_prefix,
                "-inf" if query.low_ms is None else query.low_ms,
                "+inf" if query.high_ms is None else query.high_ms,
                cursor_sequence,
                query.limit,
                "1" if query.ascending else "0",
                query.match,
                "1" if query.match_prefix else "0",
                query.budget,
                *fields,
            ],
        )
        return _index_page(reply, fields)

    @translate_redis_errors
    async def bulk(self, action: str, job_ids: Sequence[str], *, now_ms: int) -> list[str]:
        """Retry or delete finished jobs; per id '' when done, else the refusal (see admin_bulk.lua)."""
        if not job_ids:
            return []
        k = self._keys
        reply = await self._scripts.call(
            "admin_bulk",
            [k.dead, k.sequence, k.events],
            [now_ms, self._ctx.events_maxlen, action, self._ctx.script_context, *job_ids],
        )
        return [_text(item) for item in reply]

    @translate_redis_errors
    async def trim_indexes(self, *, now_ms: int) -> int:
        """Drop terminal index entries older than their retention (their jobs have expired)."""
        r = self._ctx.retention
        ttl = {
            "completed": r.completed_ms,
            "cancelled": r.cancelled_ms,
            # Dead-lettered jobs outlive the discarded retention.
            "discarded": max(r.discarded_ms, r.dead_letter_ms),
        }
        k = self._keys
        # Earlier versions indexed available jobs over all queues; nothing reads or updates that index now.
        await self._redis.unlink(k.state_index("available"))
        cutoffs = {state: now_ms - ms for state, ms in ttl.items() if ms > 0}
        if not cutoffs:
            return 0
        names = sorted(_text(n) for n in cast(list[bytes], await self._redis.hkeys(k.queues)))
        removed = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for state, cutoff in cutoffs.items():
                pipe.zremrangebyscore(k.state_index(state), "-inf", f"({cutoff}")
            removed += sum(int(n) for n in await pipe.execute())
        for start in range(0, len(names), _TRIM_CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names[start : start + _TRIM_CHUNK]:
                    for state, cutoff in cutoffs.items():
                        pipe.zremrangebyscore(k.queue_state_index(state, name), "-inf", f"({cutoff}")
                removed += sum(int(n) for n in await pipe.execute())
        return removed

    # ---- Queues ----

    @translate_redis_errors
    async def queue_names(self) -> list[str]:
        return sorted(_text(n) for n in cast(list[bytes], await self._redis.hkeys(self._keys.queues)))

    @translate_redis_errors
    async def queue_snapshots(self, names: Sequence[str], *, now_ms: int, minutes: int = 61) -> list[QueueSnapshot]:
        """Counts, configuration and recent activity of the named queues, in one round trip."""
        k = self._keys
        current = now_ms // 60_000
        per_queue = 5 + len(INDEXED_STATES) + minutes
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(k.queues, name)
                pipe.hget(k.paused, name)
                pipe.hgetall(k.queue_counts(name))
                pipe.hmget(k.queue_limits_prefix + name, "concurrency", "max_per_second")
                pipe.zcard(k.available(name))
                for state in INDEXED_STATES:
                    pipe.zcard(k.queue_state_index(state, name))
                for back in range(minutes):
                    pipe.hgetall(k.queue_minute(name, current - back))
            replies = await pipe.execute()
        out = []
        for i, name in enumerate(names):
            chunk = replies[i * per_queue : (i + 1) * per_queue]
            created, paused, totals, limits, available = chunk[:5]
            counts = dict(zip(INDEXED_STATES, (int(n) for n in chunk[5 : 5 + len(INDEXED_STATES)]), strict=True))
            counts["available"] = int(available)
            # Kept by the transition scripts' counters (the active set holds every queue's jobs).
            counts["active"] = max(int(totals.get(b"active", 0)), 0)
            out.append(
                QueueSnapshot(
                    name=name,
                    created_at_ms=int(created) if created else 0,
                    paused_at_ms=int(paused) if paused else None,
                    counts=counts,
                    totals={state: int(totals.get(state.encode(), 0)) for state in _TERMINAL},
                    concurrency=int(limits[0]) if limits[0] else 0,
                    max_per_second=float(limits[1]) if limits[1] else 0.0,
                    minutes=_buckets(current, chunk[5 + len(INDEXED_STATES) :]),
                )
            )
        return out

    @translate_redis_errors
    async def active_in_queue(self, queue: str) -> int:
        raw = await self._redis.hget(self._keys.queue_counts(queue), "active")
        return max(int(raw), 0) if raw else 0

    @translate_redis_errors
    async def set_queue_config(self, queue: str, *, concurrency: int, max_per_second: float) -> None:
        key = self._keys.queue_limits_prefix + queue
        async with self._redis.pipeline(transaction=True) as pipe:
            # 0 removes a limit: the fetch script treats a missing field as unlimited.
            if concurrency > 0:
                pipe.hset(key, "concurrency", concurrency)
            else:
                pipe.hdel(key, "concurrency")
            if max_per_second > 0:
                pipe.hset(key, "max_per_second", repr(max_per_second))
            else:
                pipe.hdel(key, "max_per_second")
            await pipe.execute()

    # ---- Stats ----

    @translate_redis_errors
    async def totals(self) -> tuple[dict[str, int], int, int, int]:
        """Jobs per state over all queues, and the number of queues, workers and dead-lettered jobs."""
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            for state in INDEXED_STATES:
                pipe.zcard(k.state_index(state))
            pipe.zcard(k.active)
            pipe.hkeys(k.queues)
            pipe.zcard(k.workers)
            pipe.zcard(k.dead)
            replies = await pipe.execute()
        counts = dict(zip(INDEXED_STATES, (int(n) for n in replies[: len(INDEXED_STATES)]), strict=True))
        active, names, workers, dead = replies[len(INDEXED_STATES) :]
        # Available jobs have no index over all queues: their queues' sets count them.
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(k.available(_text(name)))
            available = sum(int(n) for n in await pipe.execute())
        counts.update(available=available, active=int(active))
        return counts, len(names), int(workers), int(dead)

    @translate_redis_errors
    async def minutes(self, *, first: int, last: int, queue: str | None) -> list[MinuteBucket]:
        """Activity per minute (epoch minutes first..last), for one queue or all, oldest first."""
        k = self._keys
        span = range(first, last + 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for minute in span:
                pipe.hgetall(k.queue_minute(queue, minute) if queue is not None else k.stats_minute(minute))
            replies = await pipe.execute()
        return [
            MinuteBucket(minute, {_text(f): int(v) for f, v in raw.items()})
            for minute, raw in zip(span, replies, strict=True)
        ]

    # ---- Workers ----

    @translate_redis_errors
    async def worker(self, worker_id: str) -> WorkerSnapshot | None:
        """One worker and the ids of the active jobs leased to it (read from the active index)."""
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zscore(k.workers, worker_id)
            pipe.hgetall(k.worker(worker_id))
            pipe.zrange(k.active, 0, -1, withscores=True)
            seen, raw, active = await pipe.execute()
        if seen is None:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id, _ in active:
                pipe.hmget(k.job(_text(job_id)), JOB_ROW_FIELDS)
            found = await pipe.execute()
        jobs = []
        for (job_id, score), values in zip(active, found, strict=True):
            fields = {name: _text(v) for name, v in zip(JOB_ROW_FIELDS, values, strict=True)}
            if fields["worker_id"] == worker_id:
                jobs.append((int(score), _text(job_id), fields))
        return WorkerSnapshot(
            worker_id=worker_id,
            last_heartbeat_ms=int(seen),
            state=_text(raw.get(b"state")) or "running",
            directive=_text(raw.get(b"directive")) or "running",
            active_jobs=int(raw.get(b"active_jobs", b"0")),
            jobs=jobs,
        )

    @translate_redis_errors
    async def forget_worker(self, worker_id: str, *, cutoff_ms: int | None) -> int:
        """1 removed, 0 unknown, -1 heard from at or after `cutoff_ms` (None: remove anyway)."""
        k = self._keys
        reply = await self._scripts.call(
            "admin_forget_worker",
            [k.workers, k.worker(worker_id)],
            [worker_id, "" if cutoff_ms is None else cutoff_ms],
        )
        return int(reply)

    # ---- Dead letter ----

    @translate_redis_errors
    async def dead_letter_before(self, cutoff_ms: int | None, *, limit: int) -> list[str]:
        high = "+inf" if cutoff_ms is None else f"({cutoff_ms}"
        ids = cast(list[bytes], await self._redis.zrangebyscore(self._keys.dead, "-inf", high, start=0, num=limit))
        return [i.decode() for i in ids]


def _index_page(reply: Any, fields: Sequence[str]) -> IndexPage:
    """{total, scanned, next cursor score, next cursor id, rows...} of the list scripts."""
    total, scanned, next_score, next_id, *raw_rows = reply
    rows = [
        (int(_text(row[0])), _text(row[1]), {name: _text(v) for name, v in zip(fields, row[2:], strict=True)})
        for row in raw_rows
    ]
    if "enqueued_at" in fields and "created_at" in fields:
        for _, _, row in rows:
            # A job available since its creation has no enqueued_at field (see insert_job.lua).
            if not row["enqueued_at"] and row.get("state") not in ("scheduled", "pending"):
                row["enqueued_at"] = row["created_at"]
    next_cursor = (_text(next_score), _text(next_id)) if next_id else None
    return IndexPage(total=int(total), scanned=int(scanned), next_cursor=next_cursor, rows=rows)


def _buckets(current: int, raw: list[dict[bytes, bytes]]) -> list[MinuteBucket]:
    return [
        MinuteBucket(current - back, {_text(f): int(v) for f, v in bucket.items()}) for back, bucket in enumerate(raw)
    ]
