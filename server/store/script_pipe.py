"""Script calls auto-pipelined on one connection: every EVALSHA of a loop turn goes out in one write.

redis-py sends each command on a pooled connection and waits for its reply
before the connection serves another, through several layers of generic
machinery (retry, pool checkout, argument encoding, response callbacks). The
hot scripts need none of it: this sends every script call made during one
event-loop turn in a single write on one connection, packs commands with
hiredis, and hands replies (read and parsed by hiredis straight from the
socket) to their callers in order. Redis answers pipelined commands in order,
so the n-th reply belongs to the n-th call.

The connection is checked out of the client's own pool (so its URL, credentials,
TLS, connect timeout and connection limit keep their meaning) and held; one pipe
serves every store on the same client (`ScriptPipe.of`). Closing the client
closes it.
A call that gets no reply within the client's socket timeout fails with
`redis.exceptions.TimeoutError` and the connection is dropped (replies after
it could no longer be matched to their calls); every call still waiting on it
then fails with `redis.exceptions.ConnectionError`, like a call on a broken
pooled connection. One timer per connection watches the oldest call waiting
(replies come in order, so it is the one to miss its deadline first) instead
of a timeout scope around every call. A script missing from the server's cache (after SCRIPT
FLUSH or a restart) is sent again as EVAL.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import weakref
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

_READ_SIZE = 1 << 16
_NO_DEADLINE = float("inf")


class _Call:
    """A call waiting for its reply; `deadline` is on the loop's clock (inf: no socket timeout)."""

    __slots__ = ("args", "deadline", "future", "keys", "source")

    def __init__(self, future: asyncio.Future[Any], source: str, keys: list[str], args: list[Any], deadline: float):
        self.future = future
        self.source = source
        self.keys = keys
        self.args = args
        self.deadline = deadline


class _Link:
    """One open connection: the writer, the reply reader task, and the calls waiting for replies in order."""

    def __init__(self, connection: AbstractConnection, encoding: str | None) -> None:
        self.connection = connection
        self.pending: collections.deque[_Call] = collections.deque()
        self.outgoing: list[bytes] = []
        self.flush_scheduled = False
        self.closed = False
        # Armed while calls wait, for the deadline of the oldest one.
        self.watchdog: asyncio.TimerHandle | None = None
        reader_args: dict[str, Any] = {"encoding": encoding} if encoding else {}
        self.parser = hiredis.Reader(**reader_args)
        self.reader_task: asyncio.Task[None] | None = None


_PIPES: weakref.WeakKeyDictionary[ConnectionPool, ScriptPipe] = weakref.WeakKeyDictionary()


class ScriptPipe:
    @classmethod
    def of(cls, redis: Redis) -> ScriptPipe:
        """The pipe of `redis`'s connection pool, made on first use."""
        pipe = _PIPES.get(redis.connection_pool)
        if pipe is None:
            pipe = _PIPES[redis.connection_pool] = cls(redis)
        return pipe

    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        kwargs = self._pool.connection_kwargs
        self._encoding: str | None = kwargs.get("encoding", "utf-8") if kwargs.get("decode_responses") else None
        timeout = kwargs.get("socket_timeout")
        self._timeout_s: float | None = float(timeout) if timeout else None
        self._link: _Link | None = None
        self._connecting: asyncio.Lock | None = None
        # Closing connections (kept referenced until done).
        self._closing: set[asyncio.Future[None]] = set()

    async def evalsha(self, sha: str, source: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA `sha` (whose text is `source`) with `keys` and `args`; its reply, or the error it raised."""
        link = self._link if self._link is not None and not self._link.closed else await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._timeout_s is None:
            self._send(link, _Call(future, source, keys, args, _NO_DEADLINE), "EVALSHA", sha)
            return await future
        deadline = loop.time() + self._timeout_s
        self._send(link, _Call(future, source, keys, args, deadline), "EVALSHA", sha)
        if link.watchdog is None:
            link.watchdog = loop.call_at(deadline, self._watch, link)
        return await future

    def _watch(self, link: _Link) -> None:
        """The watchdog's turn: fail the calls if the oldest is overdue, else wait for its deadline."""
        link.watchdog = None
        if link.closed or not link.pending:
            return
        loop = asyncio.get_running_loop()
        deadline = link.pending[0].deadline
        if deadline > loop.time():
            link.watchdog = loop.call_at(deadline, self._watch, link)
            return
        # The first caller still waiting sees the timeout, as if it had timed out itself; the rest, a reset.
        for call in link.pending:
            if not call.future.done():
                call.future.set_exception(RedisTimeoutError(f"no reply from Redis within {self._timeout_s} s"))
                break
        self._drop(link, RedisConnectionError("the Redis connection was reset after a command timed out"))

    def _send(self, link: _Link, call: _Call, command: str, script: str) -> None:
        link.outgoing.append(hiredis.pack_command((command, script, len(call.keys), *call.keys, *call.args)))
        link.pending.append(call)
        if not link.flush_scheduled:
            link.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, link)

    def _flush(self, link: _Link) -> None:
        link.flush_scheduled = False
        if link.closed or not link.outgoing:
            return
        data = b"".join(link.outgoing) if len(link.outgoing) > 1 else link.outgoing[0]
        link.outgoing.clear()
        writer = link.connection._writer
        if writer is None:
            self._drop(link, RedisConnectionError("the Redis connection is closed"))
            return
        try:
            writer.write(data)
        except (OSError, RuntimeError) as exc:
            self._drop(link, RedisConnectionError(f"writing to Redis failed: {exc}"))

    async def _connect(self) -> _Link:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._link is not None and not self._link.closed:
                return self._link
            connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            link = _Link(connection, self._encoding)
            link.reader_task = asyncio.create_task(self._read(link), name="redis-script-pipe")
            self._link = link
            return link

    async def _read(self, link: _Link) -> None:
        reader = link.connection._reader
        try:
            while reader is not None and not link.closed:
                data = await reader.read(_READ_SIZE)
                if not data:
                    raise RedisConnectionError("Redis closed the connection")
                link.parser.feed(data)
                while (reply := link.parser.gets()) is not False:
                    self._deliver(link, reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(f"reading from Redis: {exc}")
            self._drop(link, error)

    def _deliver(self, link: _Link, reply: Any) -> None:
        if not link.pending:
            raise RedisConnectionError("a reply from Redis came for no command")
        call = link.pending.popleft()
        if call.future.done():  # its caller gave up (cancelled, or timed out)
            return
        if isinstance(reply, hiredis.ReplyError):
            error = BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]
            if isinstance(error, NoScriptError):
                # Not in the script cache (flushed, or a new server): send the text once; EVAL caches it.
                self._send(link, call, "EVAL", call.source)
                return
            call.future.set_exception(error)
            return
        call.future.set_result(reply)

    def _drop(self, link: _Link, error: Exception) -> None:
        """Fail every call waiting on `link` and close it; the next call opens a new connection."""
        if link.closed:
            return
        link.closed = True
        if link.watchdog is not None:
            link.watchdog.cancel()
            link.watchdog = None
        while link.pending:
            call = link.pending.popleft()
            if not call.future.done():
                call.future.set_exception(error)
        if link.reader_task is not None and link.reader_task is not asyncio.current_task():
            link.reader_task.cancel()
        closing = asyncio.ensure_future(self._release(link.connection))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _release(self, connection: AbstractConnection) -> None:
        """Back to the pool, closed: nothing read from it can be trusted any more."""
        with contextlib.suppress(Exception):
            await connection.disconnect()
        with contextlib.suppress(Exception):
            await self._pool.release(connection)
