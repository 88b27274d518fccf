"""Reading the event log with the filters of GET /ojs/v1/events."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

import orjson

from server.domain.errors import ErrorCode, OJSError, invalid
from server.model.records import EventRecord
from server.service.paging import check_limit
from server.store.event_feed import EventFeed
from server.store.facade import Store

DEFAULT_LIMIT = 100
# An idle event stream sends a keepalive this often.
KEEPALIVE_S = 15.0
# Entries examined per request at most, so a rare filter cannot scan the whole log.
MAX_SCANNED = 20_000
_SCAN_BATCH = 500


@dataclasses.dataclass(frozen=True)
class EventFilter:
    types: Sequence[str] = ()
    queues: Sequence[str] = ()
    job_types: Sequence[str] = ()
    job_id: str = ""
    workflow_id: str = ""

    def matches(self, event: EventRecord) -> bool:
        if self.types and not any(_type_matches(pattern, event.type) for pattern in self.types):
            return False
        if self.queues and event.queue not in self.queues:
            return False
        if self.job_types and event.job_type not in self.job_types:
            return False
        if self.job_id and event.job_id != self.job_id:
            return False
        return not self.workflow_id or orjson.loads(event.data_json).get("workflow_id") == self.workflow_id


def _type_matches(pattern: str, event_type: str) -> bool:
    if pattern in ("*", event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


@dataclasses.dataclass(frozen=True)
class EventPage:
    events: list[EventRecord]
    cursor: str
    has_more: bool


@dataclasses.dataclass(frozen=True)
class StreamSignal:
    """Not an event of the log: a keepalive, or how many events a slow subscriber missed."""

    kind: str  # "keepalive" | "dropped"
    dropped: int = 0


class EventService:
    def __init__(self, store: Store, feed: EventFeed | None = None) -> None:
        self._store = store
        self._feed = feed

    async def stream(
        self, event_filter: EventFilter, *, after: str = "", keepalive_s: float = KEEPALIVE_S
    ) -> AsyncIterator[EventRecord | StreamSignal]:
        """Matching events as they happen; with `after`, the logged ones after that cursor first."""
        if self._feed is None:
            raise OJSError(ErrorCode.UNSUPPORTED, "event streams are not available on this server")
        if after and not _is_cursor(after):
            raise invalid("after must be a cursor returned by a previous call", field="after")
        async with self._feed.subscribe() as subscription:
            # Subscribed first, so nothing falls between the replay and the live events.
            last = _cursor_key(after) if after else (0, 0, 0)
            cursor = after
            while after:
                batch = await self._store.events.read_events(after=cursor, count=_SCAN_BATCH)
                for event in batch:
                    last = _cursor_key(event.cursor)
                    if event_filter.matches(event):
                        yield event
                if len(batch) < _SCAN_BATCH:
                    break
                cursor = batch[-1].cursor
            reported = 0
            while not self._feed.closed:
                live = await subscription.next(keepalive_s)
                if subscription.dropped > reported:
                    yield StreamSignal("dropped", subscription.dropped - reported)
                    reported = subscription.dropped
                if live is None:
                    if not self._feed.closed:
                        yield StreamSignal("keepalive")
                    continue
                if _cursor_key(live.cursor) > last and event_filter.matches(live):
                    yield live

    async def list(self, event_filter: EventFilter, *, after: str, limit: int) -> EventPage:
        limit = check_limit(limit, default=DEFAULT_LIMIT)
        if after and not _is_cursor(after):
            raise invalid("after must be a cursor returned by a previous call", field="after")
        found: list[EventRecord] = []
        cursor = after
        scanned = 0
        exhausted = False
        while len(found) < limit and scanned < MAX_SCANNED:
            batch = await self._store.events.read_events(after=cursor or None, count=_SCAN_BATCH)
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


# An event's place in the log: entry id, then its index in a batch entry (store/events.py).
# A bare entry id stands for the whole entry, so it sorts after every event the entry holds.
_WHOLE_ENTRY = 1 << 62


def _cursor_key(cursor: str) -> tuple[int, int, int]:
    entry, _, index = cursor.partition(".")
    millis, _, sequence = entry.partition("-")
    return int(millis or 0), int(sequence or 0), int(index) if index else _WHOLE_ENTRY


def _is_cursor(text: str) -> bool:
    entry, dot, index = text.partition(".")
    millis, _, sequence = entry.partition("-")
    return millis.isdigit() and (sequence == "" or sequence.isdigit()) and (not dot or index.isdigit())
