"""Readiness: can this process serve now? Starting, serving or draining, and whether Redis answers.

Whether Redis answers comes from the application's Redis monitor (its `down_reason`),
read every second; `/ready` and the gRPC health service read the last value, so
probes cost nothing and agree with each other.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

# How often readiness reads the Redis signal.
CHECK_INTERVAL_S = 1.0


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"


class Readiness:
    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.redis_reachable = True
        self.redis_error = ""
        # Called with the new readiness whenever it changes (the gRPC health service follows it).
        self._listeners: list[Callable[[bool], Awaitable[None]]] = []
        self._last: bool | None = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.SERVING and self.redis_reachable

    def on_change(self, listener: Callable[[bool], Awaitable[None]]) -> None:
        self._listeners.append(listener)

    async def _publish(self) -> None:
        ready = self.ready
        if ready == self._last:
            return
        self._last = ready
        for listener in self._listeners:
            await listener(ready)

    async def set_phase(self, phase: Phase) -> None:
        if phase is not self.phase:
            log.info("readiness: %s", phase.value)
        self.phase = phase
        await self._publish()

    async def set_redis(self, reachable: bool, *, error: str = "") -> None:
        self.redis_reachable, self.redis_error = reachable, error
        await self._publish()

    def report(self) -> dict[str, Any]:
        backend: dict[str, Any] = {"type": "redis", "status": "connected" if self.redis_reachable else "disconnected"}
        if self.redis_error:
            backend["error"] = self.redis_error
        return {"ready": self.ready, "status": self.phase.value, "backend": backend}

    async def follow_redis(self, down_reason: Callable[[], str | None]) -> None:
        """Follow `down_reason` (None while Redis answers) until cancelled."""
        while True:
            reason = down_reason()
            await self.set_redis(reason is None, error=reason or "")
            await asyncio.sleep(CHECK_INTERVAL_S)
