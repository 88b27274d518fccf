"""`--workers N` against one process: the same throughput scenarios on servers of 1, 2, ... worker processes.

Each server size gets its own `ojs-server` (OJS_WORKERS=N, one embedded Redis shared by its workers) and runs
the same scenarios in one invocation, so the ratios compare like with like. The load connects many clients (each
its own connection), which SO_REUSEPORT spreads over the workers.

On a machine with as many cores as the server, Redis and the load need together, throughput would grow with N
until Redis is the limit. On the 2-core dev machine they all share two cores, so the measured ratio mostly
shows the cost of the extra processes. The per-process figures say what N cores would give instead:
- one server core's ceiling: 1,000,000 / server CPU µs per job (jobs/s one busy process can serve);
- Redis's ceiling: 1,000,000 / Redis CPU µs per job (one Redis, single-threaded, serves every process);
- N cores: min(N * one core's ceiling, Redis's ceiling), with the load and Redis on cores of their own.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench import report
from bench.context import bench_context
from bench.report import number, table
from bench.throughput import SCENARIOS, Scenario, measure_throughput, sized

# Scenarios with many concurrent clients (a sequential cycle is one client, so it meets one worker only).
DEFAULT_SCENARIOS = (
    "enqueue_grpc",
    "enqueue_http",
    "enqueue_batch100_grpc",
    "fetch10_ack_grpc",
    "fetch100_ackbatch_grpc",
    "fetch10_ack_http",
)
DEFAULT_WORKER_COUNTS = (1, 2)


def chosen(names: Sequence[str], *, quick: bool, jobs: int | None) -> list[Scenario]:
    by_name = {scenario.name: scenario for scenario in SCENARIOS}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; choose from {sorted(by_name)}")
    picked = [by_name[name] for name in names]
    for scenario in picked:
        if scenario.sequential:
            raise SystemExit(f"{scenario.name} is one client at a time: it cannot spread over workers")
    return [sized(scenario, quick=quick, jobs=jobs) for scenario in picked]


async def measure_workers(
    scenarios: Sequence[Scenario], *, counts: Sequence[int], runs: int, load_processes: int
) -> dict[str, Any]:
    """Figures of every scenario for every worker count: {"by_workers": {"1": {...}, "2": {...}}, "ceilings": ...}."""
    by_workers: dict[str, dict[str, dict[str, Any]]] = {}
    for count in counts:
        print(f"workers: ojs-server --workers {count}", file=sys.stderr, flush=True)
        results: dict[str, dict[str, Any]] = {}
        by_workers[str(count)] = results
        async with bench_context(load_processes, settings={"OJS_WORKERS": str(count)}) as ctx:
            await measure_throughput(ctx, scenarios, runs=runs, results=results)
    return {"by_workers": by_workers, "ceilings": ceilings(by_workers)}


def _median(entry: Mapping[str, Any], name: str) -> float | None:
    value = entry.get(name, {}).get("median")
    return float(value) if value else None


def ceilings(by_workers: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """Per scenario, from the single-process run: one server core's and Redis's ceilings in jobs/s."""
    single = by_workers.get("1", {})
    out: dict[str, dict[str, float | None]] = {}
    for name, entry in single.items():
        server_us = _median(entry, "server_cpu_us_per_job")
        redis_us = _median(entry, "redis_cpu_us_per_job")
        out[name] = {
            "server_core_jobs_per_s": round(1e6 / server_us, 1) if server_us else None,
            "redis_jobs_per_s": round(1e6 / redis_us, 1) if redis_us else None,
        }
    return out


def projected(ceiling: Mapping[str, float | None], cores: int) -> float | None:
    server, redis = ceiling.get("server_core_jobs_per_s"), ceiling.get("redis_jobs_per_s")
    if server is None or redis is None:
        return None
    return min(cores * server, redis)


def render(figures: Mapping[str, Any]) -> str:
    by_workers: Mapping[str, Mapping[str, Mapping[str, Any]]] = figures.get("by_workers", {})
    counts = list(by_workers)
    if not counts:
        return "workers: nothing measured"
    names = list(by_workers[counts[0]])
    header = ["scenario", *(f"jobs/s, {c} proc" for c in counts)]
    header += [f"{c} proc ÷ {counts[0]}" for c in counts[1:]]
    header += [f"server CPU µs/job, {c} proc" for c in counts]
    rows: list[list[str]] = []
    for name in names:
        rates = [_median(by_workers[c].get(name, {}), "jobs_per_s") for c in counts]
        cpu = [_median(by_workers[c].get(name, {}), "server_cpu_us_per_job") for c in counts]
        ratios = [rate / rates[0] if rate and rates[0] else None for rate in rates[1:]]
        rows.append(
            [name, *(number(r, 0) for r in rates), *(number(r, 2) for r in ratios), *(number(c, 0) for c in cpu)]
        )
    lines = [table(header, rows), ""]
    cores_header = ["2 cores", "4 cores", "8 cores"]
    ceiling_rows = []
    for name, ceiling in figures.get("ceilings", {}).items():
        ceiling_rows.append(
            [
                name,
                number(ceiling.get("server_core_jobs_per_s"), 0),
                number(ceiling.get("redis_jobs_per_s"), 0),
                *(number(projected(ceiling, cores), 0) for cores in (2, 4, 8)),
            ]
        )
    lines.append(
        table(
            ["from the 1-process run", "one server core jobs/s", "Redis ceiling jobs/s", *cores_header],
            ceiling_rows,
        )
    )
    lines.append(
        "(N cores: min(N * one server core, Redis ceiling), with the load and Redis on cores of their own; "
        "this machine has fewer, so the measured columns include the load and Redis competing for them)"
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class WorkersOptions:
    scenarios: tuple[str, ...]
    counts: tuple[int, ...]
    runs: int
    quick: bool
    jobs: int | None
    load_processes: int
    json_path: str | None


def main(options: WorkersOptions) -> int:
    if not options.counts or min(options.counts) < 1:
        raise SystemExit("--counts: worker counts of at least 1, e.g. 1,2")
    scenarios = chosen(options.scenarios, quick=options.quick, jobs=options.jobs)
    document: dict[str, Any] = {
        "benchmark": "ojs-server --workers",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parameters": asdict(options),
        "load_average_at_start": report.load_average(),
    }
    document["workers"] = asyncio.run(
        measure_workers(scenarios, counts=options.counts, runs=options.runs, load_processes=options.load_processes)
    )
    document["load_average_at_end"] = report.load_average()
    print()
    print(render(document["workers"]))
    if options.json_path:
        report.write_json(options.json_path, document)
        print(f"\nwrote {options.json_path}")
    failed = any(
        entry.get("status") != "ok"
        for results in document["workers"]["by_workers"].values()
        for entry in results.values()
    )
    return 1 if failed else 0
