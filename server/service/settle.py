"""Group commit: concurrent single acks and nacks settled together in one script call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.model.records import Settlement, SettleReply
from server.store.facade import Store

# Entries per script call; a longer queue is settled over several calls.
MAX_GROUP = 500


class SettleGroup:
    """Settles entries one call at a time; what arrives meanwhile goes in the next call.

    An entry arriving while nothing is in flight is sent on the next loop turn,
    so a lone ack costs what it did alone, and under load each call carries
    every ack that arrived during the previous one.
    """

    def __init__(self, store: Store, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._store = store
        self._waiting: list[tuple[Settlement, asyncio.Future[SettleReply]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def settle(self, entry: Settlement) -> SettleReply:
        future: asyncio.Future[SettleReply] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def flush(self) -> None:
        """Wait until every entry handed in so far is settled."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                try:
                    replies: Sequence[SettleReply] = await self._store.leases.settle_batch(
                        [entry for entry, _ in group], now_ms=self._clock.now_ms(), return_jobs=True
                    )
                except Exception as exc:  # every waiter gets the store's error
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), reply in zip(group, replies, strict=True):
                    if not future.done():
                        future.set_result(reply)
        finally:
            self._flusher = None
