"""Cron entries: register, unregister, read, and fire due occurrences exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from server.domain.cron_entry import CronEntry
from server.domain.job import NewJob
from server.store import codec
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors, unexpected
from server.store.new_jobs import insert_entry, insert_keys
from server.store.status import ScriptStatus, status_of


class CronStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def register_cron(
        self, name: str, fields: Mapping[str, str | bytes | int], *, next_run_ms: int | None, now_ms: int
    ) -> tuple[bool, CronEntry]:
        k = self._ctx.keys
        flat = [item for pair in fields.items() for item in pair]
        created, raw = await self._ctx.scripts.call(
            "cron_register",
            [k.cron(name), k.cron_names, k.cron_due],
            [now_ms, name, "" if next_run_ms is None else next_run_ms, *flat],
        )
        return bool(created), codec.decode_cron(codec.pairs_to_dict(raw))

    @translate_redis_errors
    async def unregister_cron(self, name: str) -> bool:
        k = self._ctx.keys
        return bool(await self._ctx.scripts.call("cron_unregister", [k.cron(name), k.cron_names, k.cron_due], [name]))

    @translate_redis_errors
    async def get_cron(self, name: str) -> CronEntry | None:
        raw = cast(dict[bytes, bytes], await self._ctx.redis.hgetall(self._ctx.keys.cron(name)))
        return codec.decode_cron(raw) if raw else None

    @translate_redis_errors
    async def list_crons(self) -> list[CronEntry]:
        k = self._ctx.keys
        names = cast(list[bytes], await self._ctx.redis.zrange(k.cron_names, 0, -1))
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(k.cron(name.decode()))
            hashes = await pipe.execute()
        return sorted((codec.decode_cron(raw) for raw in hashes if raw), key=lambda entry: entry.name)

    @translate_redis_errors
    async def due_crons(self, *, now_ms: int, limit: int) -> list[tuple[str, int]]:
        due = cast(
            list[tuple[bytes, float]],
            await self._ctx.redis.zrangebyscore(
                self._ctx.keys.cron_due, "-inf", now_ms, start=0, num=limit, withscores=True
            ),
        )
        return [(name.decode(), int(score)) for name, score in due]

    @translate_redis_errors
    async def fire_cron(self, name: str, *, occurrence_ms: int, next_run_ms: int, job: NewJob) -> tuple[str, str]:
        """('fired', job id) | ('skipped', unfinished job id) | ('stale', '')."""
        c = self._ctx
        reply = await c.scripts.call(
            "cron_fire",
            [c.keys.cron(name), c.keys.cron_due, *insert_keys(c.keys, job)],
            [
                job.created_at_ms,
                c.events_maxlen,
                name,
                occurrence_ms,
                next_run_ms,
                c.script_context,
                codec.dumps(insert_entry(job)),
            ],
        )
        status = status_of(reply[0], "cron_fire")
        if status not in (ScriptStatus.FIRED, ScriptStatus.SKIPPED, ScriptStatus.STALE):
            raise unexpected("cron_fire", status)
        return status.value, reply[1].decode() if len(reply) > 1 else ""
