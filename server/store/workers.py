"""The worker registry: directives, listing and pruning."""

from __future__ import annotations

from typing import cast

from server.model.records import WorkerRow
from server.store import codec
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors


class WorkerStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def set_worker_directive(self, worker_id: str, directive: str, *, now_ms: int) -> WorkerRow:
        c = self._ctx
        raw = await c.scripts.call(
            "set_directive", [c.keys.workers, c.keys.worker(worker_id)], [now_ms, worker_id, directive]
        )
        return _worker_row(worker_id, codec.pairs_to_dict(raw))

    @translate_redis_errors
    async def list_workers(self) -> list[WorkerRow]:
        k = self._ctx.keys
        redis = self._ctx.redis
        seen = cast(list[tuple[bytes, float]], await redis.zrange(k.workers, 0, -1, withscores=True))
        if not seen:
            return []
        async with redis.pipeline(transaction=False) as pipe:
            for worker_id, _ in seen:
                pipe.hgetall(k.worker(worker_id.decode()))
            hashes = await pipe.execute()
        rows = [_worker_row(worker_id.decode(), raw) for (worker_id, _), raw in zip(seen, hashes, strict=True)]
        return sorted(rows, key=lambda row: row.worker_id)

    @translate_redis_errors
    async def prune_workers(self, *, cutoff_ms: int, batch: int) -> int:
        k = self._ctx.keys
        return int(await self._ctx.scripts.call("prune_workers", [k.workers], [cutoff_ms, k.worker_prefix, batch]))


def _worker_row(worker_id: str, raw: dict[bytes, bytes]) -> WorkerRow:
    return WorkerRow(
        worker_id=worker_id,
        last_heartbeat_ms=int(raw.get(b"last_heartbeat_at", b"0")),
        state=raw.get(b"state", b"running").decode(),
        directive=raw.get(b"directive", b"running").decode(),
        active_jobs=int(raw.get(b"active_jobs", b"0")),
    )
