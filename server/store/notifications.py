"""Wake-ups for waiting workers: one Redis subscription per process, fanned out in memory.

The Lua scripts publish the available set of a queue whenever jobs become
available in it. Long polls and job streams wait here instead of polling Redis,
so an idle worker costs Redis nothing beyond this one subscription.

Jobs this process enqueues wake its own waiters directly (`wake_local`), before
the enqueue is even sent: their fetches then go out on the same connection right
behind it and find the job without waiting for the notification to come back.
Those notifications carry the process's origin, and the process skips them.
That order holds unless the enqueue's script had to be sent again (after a
SCRIPT FLUSH or a Redis restart): then every waiter is woken once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from server.store.keys import KeySchema
from server.store.script_pipe import ScriptPipe

log = logging.getLogger(__name__)

_RECONNECT_DELAY_S = 1.0
# The subscription is kept this long after the last watch ends.
_IDLE_S = 30.0
_READ_SIZE = 1 << 16


class QueueWatch:
    """Set when one of the watched queues may have jobs; waiters re-check with a fetch."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """A fetch is starting: it covers every wake-up so far."""
        self._event.clear()

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
    """Wakes the watches of a queue when its available set is published.

    The subscription is held only while someone watches (and for `idle_s` after
    the last watch ends, so short long polls do not resubscribe each time): a
    process that only enqueues or settles does no work on the notifications, its
    own included. Messages are read and parsed with hiredis straight from the
    socket, not through redis-py's generic pub/sub machinery.

    `origin`: the messages ending in it are this process's own (see the store's
    origin): skipped, since `wake_local` woke the waiters already.
    """

    def __init__(self, redis: Redis, keys: KeySchema, *, origin: str = "", idle_s: float = _IDLE_S) -> None:
        self._pool = redis.connection_pool
        self._pipe = ScriptPipe.of(redis)
        self._keys = keys
        self._own_suffix = b"\0" + origin.encode() if origin else None
        self._idle_s = idle_s
        self._watches: dict[bytes, set[QueueWatch]] = {}
        self._watch_count = 0
        self._unwatched_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._started = False

    def start(self) -> None:
        """Allow subscribing; the subscription itself starts with the first watch."""
        self._started = True
        # A script sent again ran after the fetches written behind it, woken for the jobs it made available.
        self._pipe.resend_observers.append(self.wake_all)
        if self._watch_count:
            self._ensure_listening()

    async def stop(self) -> None:
        self._started = False
        with contextlib.suppress(ValueError):
            self._pipe.resend_observers.remove(self.wake_all)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def listening(self) -> bool:
        return self._task is not None and not self._task.done()

    @contextlib.contextmanager
    def watch(self, queues: Sequence[str]) -> Iterator[QueueWatch]:
        """Register before checking for jobs, so a wake-up between the check and the wait is not lost."""
        watch = QueueWatch()
        names = [self._keys.available(queue).encode() for queue in queues]
        for name in names:
            self._watches.setdefault(name, set()).add(watch)
        self._watch_count += 1
        self._ensure_listening()
        try:
            yield watch
        finally:
            self._watch_count -= 1
            if not self._watch_count:
                self._unwatched_at = asyncio.get_running_loop().time()
            for name in names:
                waiting = self._watches.get(name)
                if waiting is not None:
                    waiting.discard(watch)
                    if not waiting:
                        del self._watches[name]

    def wake_local(self, queue: str) -> None:
        """Jobs are being made available in `queue` by this process: wake its watches now.

        Called before the script that makes them available is sent, so the fetches of
        the woken waiters go out behind it on the same connection.
        """
        for watch in self._watches.get(self._keys.available(queue).encode(), ()):
            watch.wake()

    def wake_all(self) -> None:
        for waiting in self._watches.values():
            for watch in waiting:
                watch.wake()

    def _ensure_listening(self) -> None:
        if self._started and not self.listening:
            self._task = asyncio.create_task(self._listen(), name="job-notifier")

    def _idle(self) -> bool:
        """Nobody has watched for `idle_s`: the listener lets go (the next watch starts a new one)."""
        if self._watch_count or asyncio.get_running_loop().time() - self._unwatched_at < self._idle_s:
            return False
        if self._task is asyncio.current_task():
            self._task = None
        return True

    async def _listen(self) -> None:
        while True:
            try:
                await self._subscribed()
                return
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
                log.warning("job notifications interrupted (%s); resubscribing", exc)
            await asyncio.sleep(_RECONNECT_DELAY_S)
            if self._idle():
                return

    async def _subscribed(self) -> None:
        """Hold one subscription until nobody has watched for `idle_s`."""
        connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.connect()
            reader, writer = connection._reader, connection._writer
            if reader is None or writer is None:
                raise redis_errors.ConnectionError("no connection for job notifications")
            command: tuple[Any, ...] = ("SUBSCRIBE", self._keys.notify_channel)
            writer.write(hiredis.pack_command(command))
            parser = hiredis.Reader()
            while True:
                try:
                    async with asyncio.timeout(self._idle_s):
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    if self._idle():
                        return
                    continue
                if not data:
                    raise redis_errors.ConnectionError("Redis closed the notification connection")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    self._dispatch(reply)
        finally:
            with contextlib.suppress(Exception):
                await connection.disconnect()

    def _dispatch(self, reply: list[bytes]) -> None:
        kind = reply[0]
        if kind == b"message":
            message: bytes = reply[2]
            if self._own_suffix is not None and message.endswith(self._own_suffix):
                return
            # Another process's marked message: the available set is what comes before its origin.
            for watch in self._watches.get(message.partition(b"\0")[0], ()):
                watch.wake()
        elif kind == b"subscribe":
            # Whatever was published while not subscribed is lost: let every waiter look again.
            self.wake_all()
