"""Wake-ups for waiting workers: one Redis subscription per process, fanned out in memory.

The Lua scripts publish the available set of a queue whenever jobs become
available in it. Long polls and job streams wait here instead of polling Redis,
so an idle worker costs Redis nothing beyond this one subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from server.store.keys import KeySchema

log = logging.getLogger(__name__)

_RECONNECT_DELAY_S = 1.0


class QueueWatch:
    """Set when one of the watched queues may have jobs; waiters re-check with a fetch."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True when woken (the flag is then cleared), False on timeout."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
        try:
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class JobNotifier:
    def __init__(self, redis: Redis, keys: KeySchema) -> None:
        self._redis = redis
        self._keys = keys
        self._watches: dict[str, set[QueueWatch]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="job-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def watch(self, queues: Sequence[str]) -> Iterator[QueueWatch]:
        """Register before checking for jobs, so a wake-up between the check and the wait is not lost."""
        watch = QueueWatch()
        names = [self._keys.available(queue) for queue in queues]
        for name in names:
            self._watches.setdefault(name, set()).add(watch)
        try:
            yield watch
        finally:
            for name in names:
                waiting = self._watches.get(name)
                if waiting is not None:
                    waiting.discard(watch)
                    if not waiting:
                        del self._watches[name]

    def wake_all(self) -> None:
        for waiting in self._watches.values():
            for watch in waiting:
                watch.wake()

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.notify_channel)
                # Whatever was published while not subscribed is lost: let every waiter look again.
                self.wake_all()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    name = message["data"]
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    for watch in self._watches.get(name, ()):
                        watch.wake()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                log.warning("job notifications interrupted (%s); resubscribing", exc)
                await asyncio.sleep(_RECONNECT_DELAY_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
