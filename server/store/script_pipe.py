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
pooled connection. A script missing from the server's cache (after SCRIPT
FLUSH or a restart) is sent again as EVAL; a function missing from the server
(after FUNCTION FLUSH or a restart) has its library loaded, then is called again;
either way the calls written after it then ran before it, which `resend_observers`
are told. `script` calls a script in the form the server supports: FCALL where it has
functions (Redis 7, as a connection learns when it opens), else EVALSHA.

A caller that must not lose a reply when it gives up (a claim of jobs, which would
otherwise stay leased to nobody) passes `abandoned`: the reply goes there instead,
whether it came before or after the caller was cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 16
# The error FCALL replies for a function the server does not have.
_FUNCTION_MISSING = "Function not found"
_VERSION = re.compile(rb"^redis_version:(\d+)\.", re.MULTILINE)


@dataclass(frozen=True)
class PipedScript:
    """A script in both forms: for EVALSHA (its SHA1 and text) and for FCALL (its function and library)."""

    sha: str
    program: str
    function: str
    library: str


@dataclass(frozen=True)
class _Call:
    future: asyncio.Future[Any]
    source: str
    keys: list[str]
    args: list[Any]
    # FCALL: the function's name (`source` is its library); None for EVALSHA.
    function: str | None = None
    # Its library was loaded after a first attempt found the function missing.
    reloaded: bool = False
    # Takes the reply of a call whose caller gave up (cancelled, or timed out).
    abandoned: Callable[[Any], None] | None = None


class _Link:
    """One open connection: the writer, the reply reader task, and the calls waiting for replies in order."""

    def __init__(self, connection: AbstractConnection, encoding: str | None) -> None:
        self.connection = connection
        self.pending: collections.deque[_Call] = collections.deque()
        self.outgoing: list[bytes] = []
        self.flush_scheduled = False
        self.closed = False
        reader_args: dict[str, Any] = {"encoding": encoding} if encoding else {}
        self.parser = hiredis.Reader(**reader_args)
        self.reader_task: asyncio.Task[None] | None = None
        # The server has Redis functions (FCALL).
        self.functions = False


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
        # Cleared by `disallow_functions`.
        self.functions_allowed = True
        # Closing connections (kept referenced until done).
        self._closing: set[asyncio.Future[None]] = set()
        # Called when a call is sent again as EVAL: the calls written behind it ran first (see JobNotifier).
        self.resend_observers: list[Callable[[], None]] = []

    def disallow_functions(self) -> None:
        """Run scripts by EVALSHA even where the server has functions (it refused to load them)."""
        self.functions_allowed = False
        if self._link is not None:
            self._link.functions = False

    async def evalsha(
        self,
        sha: str,
        source: str,
        keys: list[str],
        args: list[Any],
        *,
        abandoned: Callable[[Any], None] | None = None,
    ) -> Any:
        """EVALSHA `sha` (whose text is `source`) with `keys` and `args`; its reply, or the error it raised.

        `abandoned`: called with the reply if this call is cancelled before its caller took it.
        """
        return await self._call(
            lambda link, future: (_Call(future, source, keys, args, abandoned=abandoned), "EVALSHA", sha), abandoned
        )

    async def script(
        self,
        script: PipedScript,
        keys: list[str],
        args: list[Any],
        *,
        abandoned: Callable[[Any], None] | None = None,
    ) -> Any:
        """`script` by FCALL if the server has functions, else by EVALSHA; its reply, or the error it raised.

        `abandoned`: as for `evalsha`."""

        def build(link: _Link, future: asyncio.Future[Any]) -> tuple[_Call, str, str]:
            if link.functions:
                return _fcall(future, script.function, script.library, keys, args, abandoned)
            return _Call(future, script.program, keys, args, abandoned=abandoned), "EVALSHA", script.sha

        return await self._call(build, abandoned)

    async def _call(
        self,
        build: Callable[[_Link, asyncio.Future[Any]], tuple[_Call, str, str]],
        abandoned: Callable[[Any], None] | None,
    ) -> Any:
        link = self._link if self._link is not None and not self._link.closed else await self._connect()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        call, command, target = build(link, future)
        self._send(link, call, command, target)
        try:
            if self._timeout_s is None:
                return await future
            # A timeout cancels `future`: its reply, when it comes, is read and dropped.
            async with asyncio.timeout(self._timeout_s):
                return await future
        except TimeoutError:
            self._drop(link, RedisConnectionError("the Redis connection was reset after a command timed out"))
            raise RedisTimeoutError(f"no reply from Redis within {self._timeout_s} s") from None
        except asyncio.CancelledError:
            # Cancelled after the reply came but before this task took it: the reply is the caller's to give up.
            if abandoned is not None and future.done() and not future.cancelled() and future.exception() is None:
                _hand_over(abandoned, future.result())
            raise

    def _send(self, link: _Link, call: _Call, command: str, script: str) -> None:
        self._send_packed(link, call, hiredis.pack_command((command, script, len(call.keys), *call.keys, *call.args)))

    def _send_packed(self, link: _Link, call: _Call, packed: bytes) -> None:
        link.outgoing.append(packed)
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
            try:
                functions = await _has_functions(connection)
            except BaseException:
                await self._release(connection)
                raise
            link = _Link(connection, self._encoding)
            link.functions = functions and self.functions_allowed
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
            if call.abandoned is not None and not isinstance(reply, hiredis.ReplyError):
                _hand_over(call.abandoned, reply)
            return
        if isinstance(reply, hiredis.ReplyError):
            error = BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]
            if isinstance(error, NoScriptError):
                # Not in the script cache (flushed, or a new server): send the text once; EVAL caches it.
                self._send(link, call, "EVAL", call.source)
                for observer in self.resend_observers:
                    observer()
                return
            if call.function is not None and not call.reloaded and str(error) == _FUNCTION_MISSING:
                # Not loaded (flushed, or a new server): load its library, then call it once more. The
                # load's own reply is dropped; if it failed, the second call fails with the same error.
                loaded: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                loaded.add_done_callback(_drop_outcome)
                load_command: tuple[Any, ...] = ("FUNCTION", "LOAD", "REPLACE", call.source)
                load = hiredis.pack_command(load_command)
                self._send_packed(link, _Call(loaded, "", [], []), load)
                self._send(link, dataclasses.replace(call, reloaded=True), "FCALL", call.function)
                for observer in self.resend_observers:
                    observer()
                return
            call.future.set_exception(error)
            return
        call.future.set_result(reply)

    def _drop(self, link: _Link, error: Exception) -> None:
        """Fail every call waiting on `link` and close it; the next call opens a new connection."""
        if link.closed:
            return
        link.closed = True
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


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    """Mark a reply nobody waits for as seen (so asyncio does not log its error as never retrieved)."""
    if not future.cancelled():
        future.exception()


def _fcall(
    future: asyncio.Future[Any],
    function: str,
    library: str,
    keys: list[str],
    args: list[Any],
    abandoned: Callable[[Any], None] | None,
) -> tuple[_Call, str, str]:
    return _Call(future, library, keys, args, function, abandoned=abandoned), "FCALL", function


async def _has_functions(connection: AbstractConnection) -> bool:
    """Whether the server behind `connection` has Redis functions (7.0 and later), asked before the pipe uses it."""
    await connection.send_command("INFO", "server")
    info = await connection.read_response()
    text = info.encode() if isinstance(info, str) else bytes(info)
    match = _VERSION.search(text)
    return match is not None and int(match.group(1)) >= 7


def _hand_over(abandoned: Callable[[Any], None], reply: Any) -> None:
    """A failing handler must not break the reading of the replies after it."""
    try:
        abandoned(reply)
    except Exception:
        log.exception("handling the reply of an abandoned script call failed")
