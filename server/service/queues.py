"""Queue operations: listing, pause, resume and statistics."""

from __future__ import annotations

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import not_found
from server.domain.validation import validate_queue
from server.model.records import QueueRow, QueueStatsRow
from server.service.paging import Page, check_limit, page_by_name
from server.store.facade import Store

DEFAULT_LIMIT = 100


class QueueService:
    def __init__(self, store: Store, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._store = store

    async def page(self, *, limit: int = 0, cursor: str = "") -> Page[QueueRow]:
        """Known queues by name; the cursor is the last name of the previous page."""
        limit = check_limit(limit, default=DEFAULT_LIMIT)
        rows = await self._store.queues.list_queues()
        return page_by_name(rows, name_of=lambda row: row.name, limit=limit, cursor=cursor)

    async def set_paused(self, queue: str, *, paused: bool) -> QueueRow:
        """Pausing stops delivery; enqueueing into a paused queue still works."""
        return await self._store.queues.set_paused(validate_queue(queue), paused=paused, now_ms=self._clock.now_ms())

    async def stats(self, queue: str) -> QueueStatsRow:
        stats = await self._store.queues.queue_stats(validate_queue(queue), now_ms=self._clock.now_ms())
        if not stats.known:
            raise not_found("queue", queue)
        return stats
