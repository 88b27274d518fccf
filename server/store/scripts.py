"""Lua scripts: assembled from their includes, loaded once, called by EVALSHA.

A script or include declares the includes it calls in a header line of its leading
comment block, `-- include: name, name`. Loading a script prepends every include it
needs, transitively, each once and before its first user; a cycle is an error.
redis-py reloads the scripts after SCRIPT FLUSH.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from server.store.script_pipe import ScriptPipe

SCRIPT_NAMES = (
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
    "progress",
    "admin_list_jobs",
    "admin_bulk",
    "admin_forget_worker",
)
# Every script runs inside a wrapper that flushes the counter updates and the events it deferred
# (see stats.lua and emit.lua).
WRAPPER_INCLUDES = ("stats", "emit")
_INCLUDE_LINE = re.compile(r"^--\s*include:(.*)$")


class ScriptSourceError(Exception):
    """A script or include that cannot be assembled (unknown include, cycle)."""


def read_source(name: str, *, include: bool) -> str:
    path = f"lua/include/{name}.lua" if include else f"lua/{name}.lua"
    try:
        return resources.files("server.store").joinpath(path).read_text()
    except FileNotFoundError:
        kind = "include" if include else "script"
        raise ScriptSourceError(f"no Lua {kind} named {name!r} ({path})") from None


def declared_includes(source: str) -> list[str]:
    """The includes named by `-- include:` lines of the leading comment block."""
    names: list[str] = []
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        match = _INCLUDE_LINE.match(line)
        if match:
            names += [name.strip() for name in match.group(1).split(",") if name.strip()]
    return names


def resolve_includes(roots: list[str], read: Callable[[str], str]) -> list[str]:
    """Every include reachable from `roots`, each once, dependencies before their users."""
    ordered: list[str] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in chain:
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            raise ScriptSourceError(f"include cycle: {cycle}")
        for dependency in declared_includes(read(name)):
            visit(dependency, (*chain, name))
        done.add(name)
        ordered.append(name)

    for root in roots:
        visit(root, ())
    return ordered


def program(name: str, read_include: Callable[[str], str] | None = None) -> str:
    """The script with its includes, run inside a function so its deferred counters and events are flushed."""
    read = read_include or (lambda include: read_source(include, include=True))
    source = read_source(name, include=False)
    includes = resolve_includes([*WRAPPER_INCLUDES, *declared_includes(source)], read)
    return "\n".join(
        [
            *(read(include) for include in includes),
            "local function run_script()",
            source,
            "end",
            "local reply = run_script()",
            "flush_events()",
            "flush_stats()",
            "return reply",
        ]
    )


@functools.cache
def packaged_program(name: str) -> str:
    """`program(name)` from the installed Lua files, assembled once per process: every Store reuses it."""
    return program(name)


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(packaged_program(name)) for name in SCRIPT_NAMES
        }
        # What a call sends: the sha, and the text for when Redis has not cached the script.
        self._calls = {name: (script.sha, str(script.script)) for name, script in self._scripts.items()}
        # Concurrent calls share one write per loop turn on one connection (see script_pipe).
        self._pipe = ScriptPipe.of(redis)

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        sha, source = self._calls[name]
        return await self._pipe.evalsha(sha, source, keys, args)

    async def preload(self, redis: Redis) -> None:
        """Load every script now, so a bad script fails at startup, not on first use."""
        for script in self._scripts.values():
            await redis.script_load(script.script)
