"""Live events: one reader of the event log per process, fanned out to subscribers in memory.

Every subscriber gets a bounded buffer; a subscriber that falls behind loses
events (counted, and reported to it) instead of slowing the server down.
The reader runs only while someone is subscribed: with no subscriber, reading
and decoding every event of a busy server would be pure overhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from server.model.records import EventRecord
from server.store.events import decode_entry
from server.store.keys import KeySchema

log = logging.getLogger(__name__)

BUFFER_SIZE = 1000
# Below the client's command timeout (OJS_REDIS_COMMAND_TIMEOUT_MS), or an idle read would count as a failure.
_BLOCK_MS = 2000
_READ_COUNT = 500


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(maxsize=BUFFER_SIZE)
        self.dropped = 0

    def offer(self, event: EventRecord | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def next(self, timeout_s: float) -> EventRecord | None:
        """The next event; None on timeout or when the feed closes."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self.queue.get()
        except TimeoutError:
            return None


class EventFeed:
    def __init__(self, redis: Redis, keys: KeySchema, *, block_ms: int = _BLOCK_MS) -> None:
        self._redis = redis
        self._keys = keys
        self._block_ms = block_ms
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        # Resolved once the reader knows where the log ends.
        self._started: asyncio.Future[None] | None = None
        self.closed = False

    async def stop(self) -> None:
        self.closed = True
        for subscriber in self._subscribers:
            subscriber.offer(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription that receives every event logged after this call returns."""
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            if self._task is None or self._started is None:
                self._started = asyncio.get_running_loop().create_future()
                self._task = asyncio.create_task(self._read(self._started), name="event-feed")
            await asyncio.shield(self._started)
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    async def _last_id(self) -> str:
        """The id new entries follow; "0-0" when the log is empty or was deleted (e.g. flushed)."""
        try:
            info: dict[Any, Any] = await self._redis.xinfo_stream(self._keys.events)
        except redis_errors.ResponseError:
            return "0-0"
        last = info.get("last-generated-id") or info.get(b"last-generated-id") or b"0-0"
        return last.decode() if isinstance(last, bytes) else str(last)

    async def _read(self, started: asyncio.Future[None]) -> None:
        try:
            await self._read_while_subscribed(started)
        finally:
            # Runs with no await after the last subscriber check, so a new
            # subscriber is either seen by that check or starts a new reader.
            if self._task is asyncio.current_task():
                self._task = None
            # Subscribers waiting for a reader that ended before it started (stopped,
            # cancelled) go on; they see `closed` or get a new reader.
            if not started.done():
                started.set_result(None)

    async def _read_while_subscribed(self, started: asyncio.Future[None]) -> None:
        last_id: str | None = None
        while True:
            if not self._subscribers and last_id is not None:
                return
            try:
                if last_id is None:
                    last_id = await self._last_id()
                    if not started.done():
                        started.set_result(None)
                reply = await self._redis.xread({self._keys.events: last_id}, count=_READ_COUNT, block=self._block_ms)
                if not reply:
                    # Idle: make sure the log was not reset underneath (its ids would restart lower).
                    current = await self._last_id()
                    if _id_key(current) < _id_key(last_id):
                        last_id = "0-0"
                    continue
                # RESP2 shape: [[stream name, [(id, fields), ...]]].
                entries = cast(list[tuple[bytes, dict[bytes, bytes]]], cast(Any, reply)[0][1])
                for entry_id, fields in entries:
                    last_id = entry_id.decode()
                    for event in decode_entry(entry_id, fields):
                        for subscriber in self._subscribers:
                            subscriber.offer(event)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                log.warning("event feed interrupted (%s); retrying", exc)
                await asyncio.sleep(1.0)


def _id_key(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis or 0), int(sequence or 0)
