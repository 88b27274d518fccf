"""Helpers every layer shares: unique names, so tests need no cleanup, and polling with a deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Background loops tick every 250 ms; anything they must do is given this long.
SETTLE_S = 5.0


def unique_name(prefix: str) -> str:
    """`prefix-` and 12 random hex digits: a queue, worker or type name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_queue(prefix: str = "q") -> str:
    return unique_name(prefix)


def new_worker(prefix: str = "worker") -> str:
    return unique_name(prefix)


async def wait_for(check: Callable[[], Awaitable[T | None]], *, seconds: float = SETTLE_S, interval: float = 0.05) -> T:
    """Poll until `check` returns something truthy and return it; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(interval)
