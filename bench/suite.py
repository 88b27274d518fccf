"""One benchmark invocation: start the server and the load processes, run the chosen parts, report."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.context import BenchContext, bench_context
from bench.floor import measure_floors
from bench.load import describe_error
from bench.memory import measure_memory
from bench.pickup import measure_pickup
from bench.scale import measure_scale
from bench.server import server_tree
from bench.throughput import GROUPS, SCENARIOS, Scenario, measure_throughput, sized

# The parts of the suite besides the throughput scenarios, in the order `all` runs them.
PARTS = ("pickup", "memory", "scale")
COMMANDS: dict[str, tuple[str, ...]] = {
    "all": ("floor", "throughput", *PARTS),
    "throughput": ("floor", "throughput"),
    "floor": ("floor",),
    "memory": ("memory",),
    "scale": ("scale",),
}


@dataclass(frozen=True)
class Options:
    command: str
    runs: int
    quick: bool
    only: tuple[str, ...]
    load_processes: int
    # Overrides every throughput scenario's job count.
    jobs: int | None
    memory_jobs: int
    scale_jobs: int
    scale_drain: int
    scale_phase: int
    pickup_jobs: int
    idle_seconds: float
    json_path: str | None
    # Measure the floors (with the scenarios, or alone): see bench.floor.
    floor: bool = True


def selectable(command: str) -> list[str]:
    """Names `--only` accepts for `command`: scenarios, their groups, and the other parts."""
    parts = COMMANDS[command]
    names: list[str] = []
    if "floor" in parts:
        names.append("floor")
    if "throughput" in parts:
        names += [*GROUPS, *(s.name for s in SCENARIOS)]
    names += [part for part in PARTS if part in parts]
    return names


def _chosen_scenarios(options: Options) -> list[Scenario]:
    if "throughput" not in COMMANDS[options.command]:
        return []
    picked = [s for s in SCENARIOS if not options.only or s.name in options.only or s.group in options.only]
    return [sized(s, quick=options.quick, jobs=options.jobs) for s in picked]


def _chosen_parts(options: Options) -> list[str]:
    return [p for p in PARTS if p in COMMANDS[options.command] and (not options.only or p in options.only)]


async def _run_part(document: dict[str, Any], name: str, measure: Callable[[], Awaitable[Any]]) -> None:
    """Run one part; a failure is recorded in the document and the suite goes on."""
    try:
        document[name] = await measure()
    except Exception as exc:
        traceback.print_exc()
        document.setdefault("errors", {})[name] = {"error": describe_error(exc), "traceback": traceback.format_exc()}


def _floor_wanted(options: Options, scenarios: list[Scenario]) -> bool:
    """The floors run whenever scenarios do (their ratios need them), unless --no-floor."""
    if not options.floor or "floor" not in COMMANDS[options.command]:
        return False
    return not options.only or "floor" in options.only or bool(scenarios)


async def _run_parts(ctx: BenchContext, options: Options, document: dict[str, Any]) -> None:
    scenarios = _chosen_scenarios(options)
    if _floor_wanted(options, scenarios):
        await ctx.reset()
        await _run_part(document, "floor", lambda: measure_floors(ctx, runs=options.runs, quick=options.quick))
    if scenarios:
        # Filled scenario by scenario, so a run cut short still reports the scenarios it finished.
        results: dict[str, dict[str, Any]] = document.setdefault("throughput", {})
        await _run_part(
            document, "throughput", lambda: measure_throughput(ctx, scenarios, runs=options.runs, results=results)
        )
    for part in _chosen_parts(options):
        print(f"{part}: measuring", file=sys.stderr, flush=True)
        if part == "pickup":
            await ctx.reset()
            await _run_part(
                document,
                part,
                lambda: measure_pickup(
                    ctx.server, jobs=options.pickup_jobs, idle_seconds=options.idle_seconds, runs=options.runs
                ),
            )
        elif part == "memory":
            await _run_part(document, part, lambda: measure_memory(ctx, jobs=options.memory_jobs, runs=options.runs))
        elif part == "scale":
            await _run_part(
                document,
                part,
                lambda: measure_scale(
                    ctx,
                    backlog=options.scale_jobs,
                    drain=options.scale_drain,
                    phase=options.scale_phase,
                    runs=options.runs,
                ),
            )


async def run(options: Options) -> int:
    started = time.monotonic()
    # Before the server and the load processes start: what else the machine is doing.
    load_at_start = report.load_average()
    document: dict[str, Any] = {
        "benchmark": "ojs-server",
        "command": options.command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parameters": asdict(options),
    }
    _cancel_on_signals()
    try:
        async with bench_context(options.load_processes) as ctx:
            info = await ctx.redis.info("everything")
            document["machine"] = {**report.machine_info(info), "load_average_at_start": load_at_start}
            document["server"] = {
                "redis": "external (REDIS_URL)" if ctx.server.external_redis else "embedded (private redis-server)",
                "redis_aof_enabled": bool(info.get("aof_enabled")),
                "load_processes": ctx.pool.size,
                "tree": str(server_tree()),
                "commit": _commit_of(server_tree()),
            }
            await _run_parts(ctx, options, document)
    except asyncio.CancelledError:
        # Stopped by a signal: the server and load processes are down; keep what was measured.
        document["interrupted"] = True
        raise
    finally:
        _finish(document, started, options.json_path)
    failed = document.get("errors") or any(
        result["status"] == "error" for result in document.get("throughput", {}).values()
    )
    return 1 if failed else 0


def _commit_of(tree: Path) -> str:
    """The measured server's git commit (with "+changes" when its tree differs), or "" outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "--", "server", "gen"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit + ("+changes" if dirty else "")


def _cancel_on_signals() -> None:
    """SIGINT and SIGTERM cancel the run, so the server it started is stopped rather than orphaned."""
    task = asyncio.current_task()
    if task is None:
        return
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, task.cancel)


def _finish(document: dict[str, Any], started: float, json_path: str | None) -> None:
    """Print the tables and write the JSON file, also for a run cut short."""
    document["duration_s"] = round(time.monotonic() - started, 1)
    if "machine" in document:
        document["machine"]["load_average_at_end"] = report.load_average()
    if document.get("throughput") and document.get("floor"):
        document["ratio_to_floor"] = report.floor_ratios(document["throughput"], document["floor"])
    print()
    print(report.render(document))
    if json_path:
        report.write_json(json_path, document)
        print(f"\nwrote {json_path}")


def main(options: Options) -> int:
    try:
        return asyncio.run(run(options))
    except asyncio.CancelledError:
        print("interrupted", file=sys.stderr)
        return 130
