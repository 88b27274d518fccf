"""Lua scripts: loaded once, called by EVALSHA (redis-py reloads them after SCRIPT FLUSH)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_SCRIPT_NAMES = (
    "enqueue",
    "fetch",
    "cancel",
    "activate",
    "reap",
    "heartbeat",
    "promote",
    "retry_dead",
    "delete_dead",
    "prune_dead",
    "prune_workers",
    "expire",
    "cron_register",
    "cron_unregister",
    "cron_fire",
    "set_directive",
    "wf_create",
    "wf_cancel",
    "queue_pause",
    "enqueue_batch",
    "settle_batch",
)


def _source(name: str) -> str:
    return resources.files("server.store").joinpath(f"lua/{name}.lua").read_text()


def _program(name: str) -> str:
    """The script run inside a function, so counter updates it deferred are flushed before it returns."""
    return "\n".join(
        [
            _source("lib"),
            "local function run_script()",
            _source(name),
            "end",
            "local reply = run_script()",
            "flush_stats()",
            "return reply",
        ]
    )


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {name: redis.register_script(_program(name)) for name in _SCRIPT_NAMES}

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    async def preload(self, redis: Redis) -> None:
        """Load every script now, so a bad script fails at startup, not on first use."""
        for script in self._scripts.values():
            await redis.script_load(script.script)
