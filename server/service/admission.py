"""Admission control: how many requests the process serves at once, shared fairly by HTTP and gRPC.

Both protocols run on one event loop. Without a limit, a flood on one of them fills the loop with half-done
requests: every turn of the loop then takes long, and grpc.aio, which accepts one new call per turn, falls far
behind aiohttp, which reads every ready connection per turn. So every request that does work takes a slot first;
at most `limit` hold one. Waiters queue per lane ("http", "grpc") and freed slots go to the lanes in turn, so a
protocol with few clients is not drowned by one with many.

A request is shed (`backend_unavailable` with a retry delay: HTTP 503 + Retry-After, gRPC UNAVAILABLE +
`retry-after`) when `max_waiting` requests already wait, when it waited `wait_timeout_s` without a slot, or at once
while the backend is known to be down. It is never left to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from server.domain.errors import ErrorCode, OJSError

__all__ = ["Admission", "overloaded", "unavailable"]

LANES = ("http", "grpc")


def overloaded(retry_after_s: int) -> OJSError:
    return OJSError(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"the server is overloaded; retry after {retry_after_s} s",
        details={"retry_after_s": retry_after_s},
    )


def unavailable(reason: str, retry_after_s: int) -> OJSError:
    return OJSError(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"backend unavailable: {reason}",
        details={"retry_after_s": retry_after_s},
    )


class Admission:
    def __init__(
        self,
        limit: int,
        *,
        max_waiting: int,
        wait_timeout_s: float,
        retry_after_s: int,
        backend_down: Callable[[], str | None] = lambda: None,
    ) -> None:
        """`limit` 0: no limit (requests are only refused while the backend is down)."""
        self.limit = limit
        self._free = limit
        self._max_waiting = max_waiting
        self._wait_timeout_s = wait_timeout_s
        self.retry_after_s = retry_after_s
        self._backend_down = backend_down
        self._lanes: dict[str, deque[asyncio.Future[None]]] = {lane: deque() for lane in LANES}
        self._queues = tuple(self._lanes.values())
        # Lane order for the next free slot; the lane served last goes to the back.
        self._turns: deque[str] = deque(LANES)
        self.shed = 0

    @property
    def in_use(self) -> int:
        return self.limit - self._free if self.limit else 0

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues)

    async def enter(self, lane: str) -> None:
        """Take a slot (what `slot` does on entry); `leave` gives it back."""
        reason = self._backend_down()
        if reason is not None:
            self.shed += 1
            raise unavailable(reason, self.retry_after_s)
        if self.limit:
            await self._acquire(lane)

    def leave(self) -> None:
        if self.limit:
            self._release()

    def slot(self, lane: str) -> _Slot:
        """Hold a slot for the body (`async with`); raises `backend_unavailable` (with `retry_after_s`) when
        refused."""
        return _Slot(self, lane)

    async def _acquire(self, lane: str) -> None:
        if self._free > 0 and not any(self._queues):
            self._free -= 1
            return
        if self.waiting >= self._max_waiting:
            self.shed += 1
            raise overloaded(self.retry_after_s)
        queue = self._lanes[lane]
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(granted)
        try:
            async with asyncio.timeout(self._wait_timeout_s):
                await granted
        except BaseException as exc:
            if granted.done() and not granted.cancelled():
                # The slot was handed over as the wait ended: pass it on.
                self._release()
            else:
                granted.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(granted)
            if isinstance(exc, TimeoutError):
                self.shed += 1
                raise overloaded(self.retry_after_s) from None
            raise

    def _release(self) -> None:
        """Hand the slot to the first waiter of the next lane that has one, else free it."""
        for _ in range(len(self._turns)):
            lane = self._turns[0]
            self._turns.rotate(-1)
            queue = self._lanes[lane]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class _Slot:
    """`async with admission.slot(lane)`: a plain class, cheaper per call than a generator-based manager."""

    __slots__ = ("_admission", "_lane")

    def __init__(self, admission: Admission, lane: str) -> None:
        self._admission = admission
        self._lane = lane

    async def __aenter__(self) -> None:
        await self._admission.enter(self._lane)

    async def __aexit__(self, *exc_info: object) -> None:
        self._admission.leave()
