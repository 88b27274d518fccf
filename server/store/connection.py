"""The process's Redis client (a bounded pool that waits, with time limits) and a watch on Redis's health."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import dataclasses
import logging
from collections.abc import Callable

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis

__all__ = ["RedisLimits", "RedisMonitor", "close_idle_connections", "connect"]

log = logging.getLogger(__name__)

# Idle connections are checked with a PING after this long, so a Redis restart is noticed before a command fails.
_HEALTH_CHECK_INTERVAL_S = 30


@dataclasses.dataclass(frozen=True)
class RedisLimits:
    pool_size: int = 64
    # Longest wait for a free connection when all are in use.
    pool_timeout_s: float = 2.0
    connect_timeout_s: float = 2.0
    # Longest wait for the reply to one command.
    command_timeout_s: float = 5.0


def connect(url: str, limits: RedisLimits, *, pool_size: int | None = None) -> Redis:
    """A client whose pool waits (up to `pool_timeout_s`) for a free connection instead of failing at once.

    A full pool, a refused or slow connect and an unanswered command all end in `redis.ConnectionError` or
    `redis.TimeoutError`, which the store reports as `backend_unavailable`.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size or limits.pool_size,
        timeout=limits.pool_timeout_s,
        socket_connect_timeout=limits.connect_timeout_s,
        socket_timeout=limits.command_timeout_s,
        health_check_interval=_HEALTH_CHECK_INTERVAL_S,
    )
    return Redis.from_pool(pool)


async def close_idle_connections(redis: Redis, keep: int) -> int:
    """Close the sockets of pooled connections idle beyond the `keep` most recently used; how many were closed.

    A burst opens up to the pool size; without this, those descriptors stay open for the life of the process.
    A closed connection stays in the pool and reconnects when next used. The ones being closed are taken out of
    the pool meanwhile, so no request can pick one up half closed.
    """
    pool = redis.connection_pool
    async with pool._lock:
        idle = pool._available_connections
        # Taken from the end, reused last-in first-out: the front ones have waited longest.
        surplus = [conn for conn in idle[: max(0, len(idle) - keep)] if conn.is_connected]
        for conn in surplus:
            idle.remove(conn)
    try:
        for conn in surplus:
            with contextlib.suppress(OSError, redis_errors.RedisError):
                await conn.disconnect()
    finally:
        async with pool._lock:
            idle[:0] = surplus
    return len(surplus)


def _libc_malloc_trim() -> Callable[[], object] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)


# glibc keeps the heap a burst grew (thousands of connections' buffers) after it is freed; this hands it back.
_MALLOC_TRIM = _libc_malloc_trim()


def release_freed_memory() -> None:
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM()


class RedisMonitor:
    """Pings Redis on a connection of its own every `interval_s`; `down_reason` is None while Redis answers.

    Its own connection, so a pool busy with load does not make Redis look down; a ping unanswered within the
    command timeout (a stalled Redis), a refused connection (a dead one) or a Redis still loading its data all
    count as down, until a ping succeeds again.
    """

    def __init__(self, url: str, limits: RedisLimits, *, interval_s: float = 1.0) -> None:
        self._redis = connect(url, limits, pool_size=1)
        self._interval_s = interval_s
        self._timeout_s = limits.command_timeout_s + limits.connect_timeout_s
        self._down_reason: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def down_reason(self) -> str | None:
        return self._down_reason

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="redis-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()

    async def check(self) -> str | None:
        """Ping once and record the outcome; the reason Redis is down, or None."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._redis.ping()
        except redis_errors.BusyLoadingError:
            reason: str | None = "Redis is loading its data"
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, TimeoutError, OSError) as exc:
            reason = f"Redis does not answer ({exc or type(exc).__name__})"
        except redis_errors.RedisError as exc:
            reason = f"Redis answers with an error ({exc})"
        else:
            reason = None
        if reason != self._down_reason:
            if reason is None:
                log.warning("Redis is back")
            elif self._down_reason is None:
                log.error("%s; refusing requests with 503 until it is back", reason)
            self._down_reason = reason
        return reason

    async def _watch(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval_s)
