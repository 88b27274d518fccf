"""`python -m bench load`: many concurrent HTTP and gRPC clients at once, against one server process.

Phases (each against a fresh server database): "both" runs the HTTP and the gRPC clients together; "http" and
"grpc" run each protocol alone, so the report can say what share of its solo throughput each protocol keeps when
they compete. The clients live in separate processes (`bench.clients`). While a phase runs, the server process's
resident memory and open file descriptors are sampled: before (after start-up), the peak during, and after (once
the clients have gone and the server has had `--settle` seconds).
"""

from __future__ import annotations

import asyncio
import datetime
import multiprocessing
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.clients import ClientReport, Protocol, run_client_process
from bench.metrics import percentile
from bench.server import ojs_server, server_tree

PHASES = ("both", "http", "grpc")
_PROCESS_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoadOptions:
    http_clients: int = 1000
    grpc_clients: int = 200
    duration_s: float = 60.0
    # Each protocol alone, for the fairness ratio; 0 leaves those phases out.
    solo_duration_s: float = 20.0
    http_processes: int = 2
    grpc_processes: int = 2
    # Client-side limit of one call.
    timeout_s: float = 30.0
    settle_s: float = 7.0
    phases: tuple[str, ...] = PHASES
    # OJS_* settings of the server under test.
    server_env: tuple[tuple[str, str], ...] = ()
    json_path: str | None = None


def process_status(pid: int) -> dict[str, int] | None:
    """Resident memory (bytes) and open descriptors of a process, from /proc; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return {"rss_bytes": rss_kb * 1024, "fds": fds}


class Sampler:
    """Samples a process every `period_s` while running; keeps the peak."""

    def __init__(self, pid: int, period_s: float = 0.5) -> None:
        self._pid = pid
        self._period_s = period_s
        self.peak: dict[str, int] = {"rss_bytes": 0, "fds": 0}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            sample = process_status(self._pid)
            if sample is not None:
                for key, value in sample.items():
                    self.peak[key] = max(self.peak[key], value)
            await asyncio.sleep(self._period_s)

    def __enter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def _run_processes(plan: list[tuple[Protocol, int, str]], options: LoadOptions, duration_s: float) -> list[Any]:
    """Start one process per (protocol, clients, target), start them together, collect their reports."""
    context = multiprocessing.get_context("spawn")
    started: list[tuple[Any, Any]] = []
    try:
        for protocol, clients, target in plan:
            mine, theirs = context.Pipe()
            args = (theirs, protocol, clients, target, duration_s, options.timeout_s)
            process = context.Process(target=run_client_process, args=args, name=f"ojs-load-{protocol}", daemon=True)
            process.start()
            theirs.close()
            started.append((process, mine))
        for _, conn in started:
            if not await asyncio.to_thread(conn.poll, _PROCESS_START_TIMEOUT_S):
                raise RuntimeError("a client process did not get ready")
            status, payload = conn.recv()
            if status != "ready":
                raise RuntimeError(f"client process failed to start: {payload}")
        for _, conn in started:
            conn.send("go")
        reports = []
        for _, conn in started:
            if not await asyncio.to_thread(conn.poll, duration_s + options.timeout_s * 3 + 60):
                raise RuntimeError("a client process did not finish")
            status, payload = conn.recv()
            if status != "ok":
                raise RuntimeError(f"client process failed: {payload}")
            reports.append(payload)
        return reports
    finally:
        for process, conn in started:
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.kill()
            conn.close()


def _merge(reports: list[ClientReport], protocol: str, duration_s: float) -> dict[str, Any]:
    mine = [r for r in reports if r.protocol == protocol]
    if not mine:
        return {}
    calls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    shed: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    first: dict[str, str] = {}
    for r in mine:
        calls.update(r.calls)
        errors.update(r.errors)
        shed.update(r.shed)
        for op, values in r.latencies_ms.items():
            latencies.setdefault(op, []).extend(values)
        for key, detail in r.first_errors.items():
            first.setdefault(key, detail)
    jobs = sum(r.jobs for r in mine)
    return {
        "clients": sum(r.clients for r in mine),
        "jobs": jobs,
        "jobs_per_s": round(jobs / duration_s, 1),
        "calls_per_s": round(sum(calls.values()) / duration_s, 1),
        "latency_ms": {
            op: {"p50": round(percentile(v, 0.5), 2), "p99": round(percentile(v, 0.99), 2), "count": len(v)}
            for op, v in sorted(latencies.items())
            if v
        },
        "errors": dict(sorted(errors.items())),
        "shed": dict(sorted(shed.items())),
        "first_errors": first,
    }


async def _phase(name: str, options: LoadOptions) -> dict[str, Any]:
    http_clients = options.http_clients if name in ("both", "http") else 0
    grpc_clients = options.grpc_clients if name in ("both", "grpc") else 0
    duration_s = options.duration_s if name == "both" else options.solo_duration_s
    clients = f"{http_clients} HTTP + {grpc_clients} gRPC clients"
    print(f"load: phase {name}: {clients} for {duration_s:.0f} s", file=sys.stderr)
    async with ojs_server(dict(options.server_env)) as server:
        await asyncio.sleep(1.0)
        before = process_status(server.pid)
        plan: list[tuple[Protocol, int, str]] = []
        if http_clients:
            plan += [("http", n, server.http_url) for n in _split(http_clients, options.http_processes)]
        if grpc_clients:
            plan += [("grpc", n, server.grpc_target) for n in _split(grpc_clients, options.grpc_processes)]
        with Sampler(server.pid) as sampler:
            reports = await _run_processes(plan, options, duration_s)
        await asyncio.sleep(options.settle_s)
        after = process_status(server.pid)
        result: dict[str, Any] = {"duration_s": duration_s}
        for protocol in ("http", "grpc"):
            merged = _merge(reports, protocol, duration_s)
            if merged:
                result[protocol] = merged
        result["server"] = {"before": before, "peak": sampler.peak, "after": after}
    return result


def _fairness(phases: dict[str, Any]) -> dict[str, float]:
    both = phases.get("both", {})
    ratios = {}
    for protocol in ("http", "grpc"):
        solo = phases.get(protocol, {}).get(protocol, {}).get("jobs_per_s")
        mixed = both.get(protocol, {}).get("jobs_per_s")
        if solo and mixed is not None:
            ratios[protocol] = round(mixed / solo, 3)
    return ratios


def render(document: dict[str, Any]) -> str:
    lines = []
    for name, phase in document["phases"].items():
        lines.append(f"phase {name} ({phase['duration_s']:.0f} s)")
        for protocol in ("http", "grpc"):
            r = phase.get(protocol)
            if not r:
                continue
            lat = ", ".join(f"{op} p50 {v['p50']:.1f} / p99 {v['p99']:.1f} ms" for op, v in r["latency_ms"].items())
            lines.append(f"  {protocol:<4} {r['clients']:>5} clients  {r['jobs_per_s']:>8,.1f} jobs/s  {lat}")
            errors = sum(r["errors"].values())
            shed = sum(r["shed"].values())
            lines.append(f"       errors {errors}  {r['errors'] or ''}")
            lines.append(f"       shed (503/UNAVAILABLE + retry delay) {shed}  {r['shed'] or ''}")
        s = phase["server"]

        def mib(sample: dict[str, int] | None) -> str:
            return "-" if not sample else f"{sample['rss_bytes'] / 2**20:.0f} MiB/{sample['fds']} fds"

        lines.append(f"  server RSS/fds: before {mib(s['before'])}, peak {mib(s['peak'])}, after {mib(s['after'])}")
    if document.get("fairness"):
        shares = ", ".join(f"{p} {v:.2f}" for p, v in document["fairness"].items())
        lines.append(f"share of solo throughput kept when both run: {shares}")
    return "\n".join(lines)


async def run_load(options: LoadOptions) -> dict[str, Any]:
    document: dict[str, Any] = {
        "benchmark": "ojs-server load",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parameters": asdict(options),
        "tree": str(server_tree()),
        "load_average_at_start": report.load_average(),
        "phases": {},
    }
    started = time.monotonic()
    for name in options.phases:
        if name != "both" and options.solo_duration_s <= 0:
            continue
        document["phases"][name] = await _phase(name, options)
    document["fairness"] = _fairness(document["phases"])
    document["load_average_at_end"] = report.load_average()
    document["duration_s"] = round(time.monotonic() - started, 1)
    return document


def main(options: LoadOptions) -> int:
    document = asyncio.run(run_load(options))
    print(render(document))
    if options.json_path:
        report.write_json(options.json_path, document)
        print(f"wrote {options.json_path}")
    return 0
