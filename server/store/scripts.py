"""Lua scripts: loaded once, called by EVALSHA (redis-py reloads them after SCRIPT FLUSH)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_SCRIPT_NAMES = (
    "enqueue",
    "fetch",
    "ack",
    "nack",
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
)


def _source(name: str) -> str:
    return resources.files("server.store").joinpath(f"lua/{name}.lua").read_text()


class Scripts:
    def __init__(self, redis: Redis) -> None:
        library = _source("lib")
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(library + "\n" + _source(name)) for name in _SCRIPT_NAMES
        }

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    async def preload(self, redis: Redis) -> None:
        """Load every script now, so a bad script fails at startup, not on first use."""
        for script in self._scripts.values():
            await redis.script_load(script.script)
