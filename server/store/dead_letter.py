"""The dead letter set: listing, retrying, deleting and pruning."""

from __future__ import annotations

from typing import cast

from server.domain.errors import not_found
from server.domain.job import StoredJob
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors
from server.store.jobs import job_reply
from server.store.status import ScriptStatus, status_of


class DeadLetterStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def dead_letter_ids(self) -> list[str]:
        """Dead-lettered job ids, newest first."""
        return [job_id for job_id, _ in await self.dead_letter_entries()]

    @translate_redis_errors
    async def dead_letter_entries(self) -> list[tuple[str, int]]:
        """(job id, discarded_at ms), newest first (ties: higher id first)."""
        rows = cast(
            list[tuple[bytes, float]], await self._ctx.redis.zrevrange(self._ctx.keys.dead, 0, -1, withscores=True)
        )
        return [(job_id.decode(), int(score)) for job_id, score in rows]

    @translate_redis_errors
    async def retry_dead(self, job_id: str, *, now_ms: int) -> StoredJob:
        c = self._ctx
        k = c.keys
        reply = await c.scripts.call(
            "retry_dead",
            [k.job(job_id), k.errors(job_id), k.dead, k.sequence, k.events],
            [now_ms, c.events_maxlen, job_id, k.available_prefix, c.script_context],
        )
        if status_of(reply[0], "retry_dead") is ScriptStatus.NOT_FOUND:
            raise not_found("dead letter job", job_id)
        return job_reply("retry_dead", reply, job_id, expected="discarded", action="retry")

    @translate_redis_errors
    async def delete_dead(self, job_id: str) -> bool:
        c = self._ctx
        k = c.keys
        return bool(
            await c.scripts.call("delete_dead", [k.job(job_id), k.errors(job_id), k.dead], [job_id, c.script_context])
        )

    @translate_redis_errors
    async def prune_dead(self, *, now_ms: int, batch: int) -> int:
        c = self._ctx
        k = c.keys
        retention = c.retention
        cutoff = now_ms - retention.dead_letter_ms if retention.dead_letter_ms else 0
        return int(
            await c.scripts.call(
                "prune_dead",
                [k.dead],
                [cutoff, retention.dead_letter_max_count, batch, k.job_prefix, k.errors_prefix, c.script_context],
            )
        )
