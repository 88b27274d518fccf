"""Reading the event log with the filters of GET /ojs/v1/events."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from server.domain.errors import invalid
from server.store.job_store import EventRecord, JobStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Entries examined per request at most, so a rare filter cannot scan the whole log.
MAX_SCANNED = 20_000
_SCAN_BATCH = 500


@dataclasses.dataclass(frozen=True)
class EventFilter:
    types: Sequence[str] = ()
    queues: Sequence[str] = ()
    job_types: Sequence[str] = ()
    job_id: str = ""

    def matches(self, event: EventRecord) -> bool:
        if self.types and not any(_type_matches(pattern, event.type) for pattern in self.types):
            return False
        if self.queues and event.queue not in self.queues:
            return False
        if self.job_types and event.job_type not in self.job_types:
            return False
        return not (self.job_id and event.job_id != self.job_id)


def _type_matches(pattern: str, event_type: str) -> bool:
    if pattern in ("*", event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


@dataclasses.dataclass(frozen=True)
class EventPage:
    events: list[EventRecord]
    cursor: str
    has_more: bool


class EventService:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    async def list(self, event_filter: EventFilter, *, after: str, limit: int) -> EventPage:
        if limit == 0:
            limit = DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        if after and not _is_cursor(after):
            raise invalid("after must be a cursor returned by a previous call", field="after")
        found: list[EventRecord] = []
        cursor = after
        scanned = 0
        exhausted = False
        while len(found) < limit and scanned < MAX_SCANNED:
            batch = await self._store.read_events(after=cursor or None, count=_SCAN_BATCH)
            if not batch:
                exhausted = True
                break
            for event in batch:
                scanned += 1
                cursor = event.cursor
                if event_filter.matches(event):
                    found.append(event)
                    if len(found) == limit:
                        break
            if len(batch) < _SCAN_BATCH and cursor == batch[-1].cursor and len(found) < limit:
                exhausted = True
                break
        return EventPage(events=found, cursor=cursor, has_more=not exhausted)


def _is_cursor(text: str) -> bool:
    millis, _, sequence = text.partition("-")
    return millis.isdigit() and (sequence == "" or sequence.isdigit())
