"""Lua scripts: assembled from their includes, loaded once, called by FCALL (Redis 7) or EVALSHA (6.2).

A script or include declares the includes it calls in a header line of its leading
comment block, `-- include: name, name`. Loading a script prepends every include it
needs, transitively, each once and before its first user; a cycle is an error.

On Redis 7 each script is a function library (`library`): its includes are defined once,
when the library loads, not on every call as an EVAL script's are, which saves a fifth
of the Redis CPU of the hot scripts. An include that keeps state for one script call
(buffers, caches) defines `reset_<something>()`, which the library's function calls first.
Redis 6.2 has no functions: there the scripts run by EVALSHA (`program`). A script or
library missing from the server (after SCRIPT FLUSH, FUNCTION FLUSH or a restart) is sent
again by the script pipe.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from server.store.script_pipe import PipedScript, ScriptPipe

logger = logging.getLogger(__name__)

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
    "admin_list_available",
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


def _assemble(name: str, read_include: Callable[[str], str] | None) -> tuple[list[str], str]:
    """The sources of the includes `name` needs, in order, and its own source."""
    read = read_include or (lambda include: read_source(include, include=True))
    source = read_source(name, include=False)
    includes = resolve_includes([*WRAPPER_INCLUDES, *declared_includes(source)], read)
    return [read(include) for include in includes], source


def program(name: str, read_include: Callable[[str], str] | None = None) -> str:
    """The script with its includes, run inside a function so its deferred counters and events are flushed."""
    includes, source = _assemble(name, read_include)
    return "\n".join(
        [
            *includes,
            "local function run_script()",
            source,
            "end",
            "local reply = run_script()",
            "flush_events()",
            "flush_stats()",
            "return reply",
        ]
    )


_RESET = re.compile(r"^local function (reset_\w+)\(\)", re.MULTILINE)
_LIBRARY_PREFIX = "ojs_"
# A library of any version of these scripts: its function's name and a hash of its source.
_OWN_LIBRARY = re.compile(rf"^{_LIBRARY_PREFIX}({'|'.join(SCRIPT_NAMES)})_[0-9a-f]{{16}}$")


def library(name: str, read_include: Callable[[str], str] | None = None) -> tuple[str, str]:
    """The script as a Redis function library: (function name, library source).

    The name carries a hash of the source, so servers running different versions of a
    script never replace each other's."""
    includes, source = _assemble(name, read_include)
    resets = [reset for text in includes for reset in _RESET.findall(text)]
    body = "\n".join(
        [
            *includes,
            # KEYS and ARGV are the function's arguments, not globals as in an EVAL script.
            "local function run_script(KEYS, ARGV)",
            source,
            "end",
            "redis.register_function(FUNCTION_NAME, function(keys, args)",
            *(f"  {reset}()" for reset in resets),
            "  local reply = run_script(keys, args)",
            "  flush_events()",
            "  flush_stats()",
            "  return reply",
            "end)",
        ]
    )
    function_name = f"{_LIBRARY_PREFIX}{name}_{hashlib.sha1(body.encode()).hexdigest()[:16]}"
    text = body.replace("redis.register_function(FUNCTION_NAME,", f"redis.register_function('{function_name}',")
    return function_name, f"#!lua name={function_name}\n{text}"


@functools.cache
def packaged_program(name: str) -> str:
    """`program(name)` from the installed Lua files, assembled once per process: every Store reuses it."""
    return program(name)


@functools.cache
def packaged_library(name: str) -> tuple[str, str]:
    """`library(name)` from the installed Lua files, assembled once per process."""
    return library(name)


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, PipedScript] = {}
        for name in SCRIPT_NAMES:
            script = redis.register_script(packaged_program(name))
            function, library_source = packaged_library(name)
            self._scripts[name] = PipedScript(script.sha, str(script.script), function, library_source)
        # Concurrent calls share one write per loop turn on one connection (see script_pipe).
        self._pipe = ScriptPipe.of(redis)

    async def call(
        self, name: str, keys: list[str], args: list[Any], *, abandoned: Callable[[Any], None] | None = None
    ) -> Any:
        """The script's reply; `abandoned` gets it instead if the caller is cancelled first (see ScriptPipe)."""
        return await self._pipe.script(self._scripts[name], keys, args, abandoned=abandoned)

    async def preload(self, redis: Redis) -> None:
        """Load every script now (as functions where the server has them), so a bad one fails at startup.

        Functions persist with the data: the libraries of other versions of the scripts are deleted,
        so they do not pile up with each upgrade (a server still running one loads it again on use)."""
        info = await redis.info("server")
        functions = int(str(info.get("redis_version", "0")).split(".")[0] or 0) >= 7
        scripts = list(self._scripts.values())
        if functions:
            # Loading the first library is the probe: on success only the others are left to load.
            functions = await self._functions_allowed(redis, scripts[0])
        for script in scripts[1:] if functions else scripts:
            if functions:
                await redis.function_load(script.library, replace=True)
            else:
                await redis.script_load(script.program)
        if functions:
            current = {script.function for script in self._scripts.values()}
            for stale in set(await library_names(redis, _LIBRARY_PREFIX)) - current:
                if _OWN_LIBRARY.match(stale):
                    await redis.function_delete(stale)

    async def _functions_allowed(self, redis: Redis, first: PipedScript) -> bool:
        """Load `first` as a function library; if the server refuses, scripts run by EVALSHA from now on."""
        try:
            await redis.function_load(first.library, replace=True)
        except ResponseError as exc:
            # NOPERM from an ACL, or an unknown or renamed command on a managed Redis.
            logger.warning("Redis refused FUNCTION LOAD (%s); scripts run by EVALSHA", exc)
            self._pipe.disallow_functions()
            return False
        return True


async def library_names(redis: Redis, prefix: str) -> list[str]:
    """The names of the function libraries on the server whose names start with `prefix`."""
    names = []
    for entry in await redis.function_list(library=f"{prefix}*"):
        # A map (RESP3) or a flat list of names and values (RESP2).
        fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=True))
        name = fields.get(b"library_name", fields.get("library_name"))
        names.append(name.decode() if isinstance(name, bytes) else str(name))
    return names
