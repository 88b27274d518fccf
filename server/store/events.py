"""The event log: paged reads, and the decoding the live feed shares.

An entry holds one event, or all the events of one script call (see emit.lua).
An event of a one-event entry has the entry id as its cursor (`1700000000000-0`);
the i-th event of a batch entry has the entry id, a dot and i (`1700000000000-0.3`).
A bare entry id as a position means "after all of that entry".
"""

from __future__ import annotations

from typing import Any, cast

import orjson

from server.model.records import EventRecord
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors

_FIELDS = ("type", "job_id", "queue", "job_type", "state", "time")
# Inserts leave priority 0 out of their job.enqueued events (insert_job.lua); readers see it.
_ENQUEUED = "job.enqueued"


class EventStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def read_events(self, *, after: str | None, count: int) -> list[EventRecord]:
        """The events after cursor `after` (from the start when None), from up to `count` entries."""
        entry_id, _, index = (after or "").partition(".")
        # Inside a batch entry: read that entry again (one more, to still get `count` new ones), minus what was seen.
        start = entry_id if index else f"({after}" if after else "-"
        reply = await self._ctx.redis.xrange(self._ctx.keys.events, min=start, max="+", count=count + bool(index))
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], reply)
        events = [event for entry, fields in entries for event in decode_entry(entry, fields)]
        if index:
            seen = f"{entry_id}.{index}"
            events = [event for event in events if not _in_entry_up_to(event.cursor, entry_id, seen)]
        return events


def _in_entry_up_to(cursor: str, entry_id: str, seen: str) -> bool:
    """`cursor` is an event of entry `entry_id` at or before cursor `seen`."""
    head, _, index = cursor.partition(".")
    return head == entry_id and (not index or int(index) <= int(seen.partition(".")[2]))


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> list[EventRecord]:
    """The events of one log entry, in order."""
    cursor = entry_id.decode()
    count = fields.get(b"n")
    if count is None:
        event_type = fields.get(b"type", b"").decode()
        data_json = fields.get(b"data", b"{}")
        if event_type == _ENQUEUED and b'"priority"' not in data_json:
            data_json = orjson.dumps({"priority": 0, **orjson.loads(data_json)})
        return [
            EventRecord(
                cursor=cursor,
                type=event_type,
                job_id=fields.get(b"job_id", b"").decode(),
                queue=fields.get(b"queue", b"").decode(),
                job_type=fields.get(b"job_type", b"").decode(),
                state=fields.get(b"state", b"").decode(),
                time_ms=int(fields.get(b"time", b"0")),
                data_json=data_json,
            )
        ]
    n = int(count)
    columns = {name: _column(fields, name, n) for name in _FIELDS}
    data: list[Any] = orjson.loads(fields.get(b"datas", b"[]"))
    events: list[EventRecord] = []
    for i in range(n):
        queue, job_type, event_type = str(columns["queue"][i]), str(columns["job_type"][i]), str(columns["type"][i])
        # An empty Lua table encodes as {} or [] alike: both mean no data.
        item = data[i] if i < len(data) and isinstance(data[i], dict) else {}
        if event_type == _ENQUEUED and "priority" not in item:
            item = {"priority": 0, **item}
        events.append(
            EventRecord(
                cursor=f"{cursor}.{i}",
                type=event_type,
                job_id=str(columns["job_id"][i]),
                queue=queue,
                job_type=job_type,
                state=str(columns["state"][i]),
                time_ms=int(columns["time"][i]),
                data_json=orjson.dumps({**item, "job_type": job_type, "queue": queue}),
            )
        )
    return events


def _column(fields: dict[bytes, bytes], name: str, n: int) -> list[Any]:
    """One value per event: the shared value repeated, or the per-event JSON array."""
    shared = fields.get(name.encode())
    if shared is not None:
        return [shared.decode()] * n
    values: list[Any] = orjson.loads(fields.get(f"{name}s".encode(), b"[]"))
    if len(values) != n:
        values = [*values, *[""] * (n - len(values))][:n]
    return values
