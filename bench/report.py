"""The results document: machine description, readable tables, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import google.protobuf
import grpc
import orjson
import redis
from google.protobuf.internal import api_implementation

from bench.floor import CALLS_PER_FLOOR, FLOOR_OF


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(redis_info: Mapping[str, Any]) -> dict[str, Any]:
    """Where the figures come from: hardware, OS, runtimes and library versions."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "protobuf_implementation": api_implementation.Type(),
        "redis_py": redis.__version__,
        "aiohttp": aiohttp.__version__,
        "orjson": orjson.__version__,
        "redis_server": redis_info.get("redis_version"),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine shares its cores with the benchmark."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def write_json(path: str, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _median(entry: Mapping[str, Any] | None) -> float | None:
    if not entry:
        return None
    value = entry.get("median")
    return None if value is None else float(value)


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _spread(entry: Mapping[str, Any]) -> str:
    """(max - min) / median of the runs, in percent."""
    runs = [v for v in entry.get("runs", []) if v is not None]
    median = _median(entry)
    if len(runs) < 2 or not median:
        return "-"
    return f"{(max(runs) - min(runs)) * 100 / median:.0f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join([first.ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(rest, widths[1:], strict=True))])

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def floor_ratios(
    results: Mapping[str, Mapping[str, Any]], floors: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each scenario against its floor (bench.floor.FLOOR_OF), from the medians of one run of the suite.

    - jobs_per_s: the scenario's jobs/s over the floor's calls/s (for a cycle: over a third of it);
    - server_cpu: the scenario's server CPU per job over the floor server's CPU per call (times 3 for a cycle);
    - redis_cpu: the scenario's Redis CPU per job over that of one unpipelined EVALSHA of a trivial script.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        floor = floors.get(FLOOR_OF.get(name, ""))
        if not floor or result.get("status") not in ("ok", "incomplete"):
            continue
        calls = CALLS_PER_FLOOR.get(name, 1)
        rate, floor_rate = _median(result.get("jobs_per_s")), _median(floor["calls_per_s"])
        cpu, floor_cpu = _median(result.get("server_cpu_us_per_job")), _median(floor["server_cpu_us_per_call"])
        redis_cpu = _median(result.get("redis_cpu_us_per_job"))
        evalsha = _median(floors["redis"]["redis_cpu_us_per_call"]) if "redis" in floors else None
        out[name] = {
            "floor": FLOOR_OF[name],
            "bare_calls": calls,
            "jobs_per_s": round(rate * calls / floor_rate, 3) if rate and floor_rate else None,
            "server_cpu": round(cpu / (floor_cpu * calls), 3) if cpu and floor_cpu else None,
            "redis_cpu_vs_evalsha": round(redis_cpu / evalsha, 2) if redis_cpu and evalsha else None,
        }
    return out


def floor_table(floors: Mapping[str, Mapping[str, Any]]) -> str:
    header = ("floor", "calls/s", "spread", "server CPU µs/call", "Redis CPU µs/call", "client CPU µs/call", "p50 ms")
    rows = [
        [
            name,
            number(_median(floor["calls_per_s"]), 0),
            _spread(floor["calls_per_s"]),
            number(_median(floor["server_cpu_us_per_call"]), 1),
            number(_median(floor["redis_cpu_us_per_call"]), 2),
            number(_median(floor["client_cpu_us_per_call"]), 1),
            number(_median(floor.get("latency_p50_ms")), 3),
        ]
        for name, floor in floors.items()
    ]
    note = "(server CPU: the floor server's; for the redis floors, redis-server's)"
    return table(header, rows) + "\n" + note


def throughput_table(
    results: Mapping[str, Mapping[str, Any]], ratios: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    header = (
        "scenario",
        "jobs/s",
        "spread",
        "Redis cmds/job",
        "scripts/job",
        "Redis CPU µs/job",
        "server CPU µs/job",
        "client CPU µs/job",
        "÷floor jobs/s",
        "÷floor CPU",
        "Redis÷EVALSHA",
    )
    ratios = ratios or {}
    rows: list[list[str]] = []
    notes: list[str] = []
    for name, result in results.items():
        if result["status"] in ("skipped", "error"):
            rows.append([name, result["status"], *["-"] * (len(header) - 2)])
            notes.append(f"{name}: {result['status']}: {result.get('reason', '')}")
            continue
        if result["status"] != "ok":
            notes.append(f"{name}: {result['status']}: {result.get('reason', '')}")
        rows.append(
            [
                name,
                number(_median(result["jobs_per_s"]), 0),
                _spread(result["jobs_per_s"]),
                number(_median(result["redis_calls_per_job"]), 2),
                number(_median(result["redis_script_calls_per_job"]), 2),
                number(_median(result["redis_cpu_us_per_job"]), 1),
                number(_median(result["server_cpu_us_per_job"]), 1),
                number(_median(result["client_cpu_us_per_job"]), 1),
                number(ratios.get(name, {}).get("jobs_per_s"), 2),
                number(ratios.get(name, {}).get("server_cpu"), 2),
                number(ratios.get(name, {}).get("redis_cpu_vs_evalsha"), 1),
            ]
        )
    text = table(header, rows)
    latency_rows = [
        [
            name,
            number(_median(result["latency_ms"]["p50"]), 2),
            number(_median(result["latency_ms"]["p99"]), 2),
        ]
        for name, result in results.items()
        if "latency_ms" in result
    ]
    if latency_rows:
        text += "\n\n" + table(("sequential cycle", "p50 ms", "p99 ms"), latency_rows)
    if notes:
        text += "\n\n" + "\n".join(notes)
    return text


def pickup_table(pickup: Mapping[str, Any]) -> str:
    rows = [
        [name, *(number(_median(pickup[name][key]), 2) for key in ("p50_ms", "p99_ms", "max_ms"))]
        for name in ("stream_jobs", "long_poll_fetch")
    ]
    text = table(("pickup latency", "p50 ms", "p99 ms", "max ms"), rows)
    idle = pickup.get("idle_redis_commands_per_s")
    if idle:
        text += "\nRedis commands/s of the server's own loops: " + json.dumps(idle["server_background_loops"])
        text += "\nRedis commands/s added by idle workers: " + (json.dumps(idle["added_by_idle_workers"]) or "none")
    return text


def memory_lines(memory: Mapping[str, Any]) -> str:
    breakdown = memory["breakdown_bytes_per_job"]
    return (
        f"memory: {memory['title']}\n"
        f"  used_memory: {number(_median(memory['bytes_per_job']), 0)} bytes/job "
        f"(used_memory_dataset: {number(_median(memory['dataset_bytes_per_job']), 0)}); "
        f"of which job hash {number(_median(breakdown['job_hash']), 0)}, "
        f"queue sorted set {number(_median(breakdown['queue_sorted_set']), 0)}, "
        f"event log {number(_median(breakdown['event_log']), 0)}"
    )


def scale_lines(scale: Mapping[str, Any]) -> str:
    lines = [f"scale: {scale['title']} ({scale['method']}, {scale['drain_jobs_per_run']:,} jobs drained per run)"]
    for key in ("small", "large"):
        part = scale[key]
        lines.append(
            f"  back-log {part['backlog']:>11,}: {number(_median(part['jobs_per_s']), 0):>8} jobs/s "
            f"(spread {_spread(part['jobs_per_s'])}), Redis {number(_median(part['redis_calls_per_job']), 2)} "
            f"cmds/job, {number(_median(part['redis_cpu_us_per_job']), 1)} µs/job, "
            f"server {number(_median(part['server_cpu_us_per_job']), 1)} µs/job"
        )
    each = scale.get("ratios_large_to_small")
    lines.append(f"  ratio large/small: {scale['ratio_large_to_small']}" + (f" (runs: {each})" if each else ""))
    return "\n".join(lines)


def render(document: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if document.get("interrupted"):
        parts.append("interrupted: these are the figures measured before the run was stopped")
    busy = document.get("machine", {}).get("load_average_at_start")
    cores = document.get("machine", {}).get("cores") or 1
    if busy and busy[0] > 0.25 * cores:
        parts.append(
            f"note: the load average was {busy[0]} on {cores} cores when the benchmark started; "
            "other work on the machine lowers these figures"
        )
    if document.get("floor"):
        parts.append(floor_table(document["floor"]))
    if document.get("throughput"):
        ratios = floor_ratios(document["throughput"], document.get("floor") or {})
        parts.append(throughput_table(document["throughput"], ratios))
    if document.get("pickup"):
        parts.append(pickup_table(document["pickup"]))
    if document.get("memory"):
        parts.append(memory_lines(document["memory"]))
    if document.get("scale"):
        parts.append(scale_lines(document["scale"]))
    for name, failure in document.get("errors", {}).items():
        parts.append(f"{name}: failed: {failure['error']}")
    return "\n\n".join(parts)
