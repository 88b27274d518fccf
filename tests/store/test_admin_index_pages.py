"""Paging an index with the admin list script, on every supported Redis line."""

from __future__ import annotations

import itertools
from typing import cast

from redis.asyncio import Redis

from server.model.admin import IndexQuery
from server.model.records import Retention
from server.store.admin import AdminStore
from server.store.facade import Store
from server.store.keys import KeySchema

_prefixes = itertools.count()


async def _store_with_jobs(redis: Redis, scores: list[int]) -> tuple[AdminStore, str, list[str]]:
    keys = KeySchema(f"ai{next(_prefixes)}")
    facade = Store(redis, keys, events_maxlen=100)
    await facade.load_scripts()
    store = facade.admin
    index = keys.state_index("completed")
    ids = [f"job-{i:03d}" for i in range(len(scores))]
    for job_id, score in zip(ids, scores, strict=True):
        await redis.zadd(index, {job_id: score})
        await redis.hset(keys.job(job_id), mapping={"type": "t.even" if score % 2 == 0 else "t.odd", "queue": "q"})
    return store, index, ids


async def _walk(store: AdminStore, query: IndexQuery, fields: tuple[str, ...] = ("type",)) -> list[str]:
    seen: list[str] = []
    cursor = query.cursor
    for _ in range(100):
        page = await store.page(IndexQuery(**{**query.__dict__, "cursor": cursor}), store.keys.job_prefix, fields)
        seen.extend(job_id for _, job_id, _ in page.rows)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("paging did not end")


async def test_pages_cover_the_index_once_in_order_with_ties(store_redis: Redis) -> None:
    # Many jobs share a millisecond: ties are ordered by id.
    scores = [1000 + i // 7 for i in range(60)]
    store, index, ids = await _store_with_jobs(store_redis, scores)
    newest_first = await _walk(store, IndexQuery(key=index, limit=8))
    assert newest_first == sorted(ids, key=lambda j: (scores[ids.index(j)], j), reverse=True)
    oldest_first = await _walk(store, IndexQuery(key=index, limit=8, ascending=True))
    assert oldest_first == list(reversed(newest_first))


async def test_a_cursor_whose_job_left_the_index_continues_where_it_was(store_redis: Redis) -> None:
    scores = [1000 + i // 5 for i in range(30)]
    store, index, _ = await _store_with_jobs(store_redis, scores)
    first = await store.page(IndexQuery(key=index, limit=7), store.keys.job_prefix, ("type",))
    assert first.next_cursor is not None
    await store_redis.zrem(index, first.next_cursor[1])
    rest = await _walk(store, IndexQuery(key=index, limit=7, cursor=first.next_cursor))
    shown = [job_id for _, job_id, _ in first.rows]
    remaining = cast(list[bytes], await store_redis.zrevrange(index, 0, -1))
    assert shown[:-1] + rest == [m.decode() for m in remaining]


async def test_time_range_and_type_filter(store_redis: Redis) -> None:
    store, index, ids = await _store_with_jobs(store_redis, list(range(1000, 1040)))
    in_range = await _walk(store, IndexQuery(key=index, low_ms=1010, high_ms=1019, limit=3))
    assert in_range == [ids[i] for i in range(19, 9, -1)]
    page = await store.page(IndexQuery(key=index, low_ms=1010, high_ms=1019, limit=3), store.keys.job_prefix, ())
    assert page.total == 10
    odd = await _walk(store, IndexQuery(key=index, match="t.o", match_prefix=True, limit=4, budget=5))
    assert odd == [ids[i] for i in range(39, -1, -1) if i % 2 == 1]


async def test_entries_without_a_job_hash_are_skipped(store_redis: Redis) -> None:
    store, index, ids = await _store_with_jobs(store_redis, [1, 2, 3])
    await store_redis.delete(store.keys.job(ids[1]))
    assert await _walk(store, IndexQuery(key=index, limit=10)) == [ids[2], ids[0]]


async def test_trim_drops_terminal_entries_past_their_retention(store_redis: Redis) -> None:
    keys = KeySchema(f"ai{next(_prefixes)}")
    retention = Retention(completed_ms=1000, cancelled_ms=0, discarded_ms=1000, dead_letter_ms=5000)
    store = Store(store_redis, keys, retention=retention).admin
    await store_redis.hset(keys.queues, "q", 1)
    for state in ("completed", "cancelled", "discarded", "available"):
        for index in (keys.state_index(state), keys.queue_state_index(state, "q")):
            await store_redis.zadd(index, {"old": 100, "recent": 9_500})
    # Cut-offs: completed 9,000; discarded 5,000 (the dead-letter age, longer); cancelled kept.
    assert await store.trim_indexes(now_ms=10_000) == 4
    for queue in (None, "q"):

        def key(state: str, queue: str | None = queue) -> str:
            return keys.state_index(state) if queue is None else keys.queue_state_index(state, queue)

        assert await store_redis.zrange(key("completed"), 0, -1) == [b"recent"]
        assert await store_redis.zrange(key("discarded"), 0, -1) == [b"recent"]
        assert await store_redis.zcard(key("cancelled")) == 2
    # Earlier versions kept an index of available jobs over all queues; nothing reads it now, so it goes.
    assert await store_redis.exists(keys.state_index("available")) == 0
    assert await store_redis.zcard(keys.queue_state_index("available", "q")) == 2
