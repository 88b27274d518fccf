"""The event log: paged reads, and the decoding the live feed shares."""

from __future__ import annotations

from typing import cast

from server.model.records import EventRecord
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors


class EventStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def read_events(self, *, after: str | None, count: int) -> list[EventRecord]:
        start = f"({after}" if after else "-"
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._ctx.redis.xrange(self._ctx.keys.events, min=start, max="+", count=count),
        )
        return [decode_event(entry_id, fields) for entry_id, fields in entries]


def decode_event(entry_id: bytes, fields: dict[bytes, bytes]) -> EventRecord:
    return EventRecord(
        cursor=entry_id.decode(),
        type=fields.get(b"type", b"").decode(),
        job_id=fields.get(b"job_id", b"").decode(),
        queue=fields.get(b"queue", b"").decode(),
        job_type=fields.get(b"job_type", b"").decode(),
        state=fields.get(b"state", b"").decode(),
        time_ms=int(fields.get(b"time", b"0")),
        data_json=fields.get(b"data", b"{}"),
    )
