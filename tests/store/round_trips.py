"""Counting the commands a store sends to Redis: through redis-py, and through the script pipe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from server.store.script_pipe import ScriptPipe


def count_round_trips(monkeypatch: pytest.MonkeyPatch, redis: Redis) -> list[str]:
    """A list that gets each command's name as it is sent, until `monkeypatch` is undone."""
    calls: list[str] = []
    original: Callable[..., Awaitable[Any]] = redis.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0]))
        return await original(*args, **kwargs)

    monkeypatch.setattr(redis, "execute_command", counting)
    pipe = ScriptPipe.of(redis)
    original_send = pipe._send

    def counting_send(link: Any, call: Any, command: str, script: str) -> None:
        calls.append(command)
        original_send(link, call, command, script)

    monkeypatch.setattr(pipe, "_send", counting_send)
    return calls
