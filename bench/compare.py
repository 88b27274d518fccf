"""One table from the JSON files of a benchmark session: before/after, ratios to the floors, BullMQ, targets.

    python -m bench.compare --after after.json [--before before.json] [--bullmq bullmq.json]
                            [--pickup pickup.json] [--memory memory.json]

`after.json` and `before.json` are `python -m bench throughput|all --json` files (the "before" one made with
BENCH_SERVER_TREE=<other checkout>); each holds the floors of its own run, so the floors of the two files
also show how much the machine changed between the runs. `make bench-report BEFORE=<checkout>` makes all
the files and prints this table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.report import floor_ratios, number, table


def _load(path: str | None) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if path else {}


def _median(entry: Any) -> float | None:
    if isinstance(entry, Mapping):
        value = entry.get("median")
        return None if value is None else float(value)
    return None if entry is None else float(entry)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def floors_table(after: Mapping[str, Any], before: Mapping[str, Any]) -> str:
    rows = []
    for name, floor in after.get("floor", {}).items():
        other = before.get("floor", {}).get(name, {})
        rows.append(
            [
                name,
                number(_median(other.get("calls_per_s"))),
                number(_median(floor["calls_per_s"]), 0),
                number(_median(other.get("server_cpu_us_per_call")), 1),
                number(_median(floor["server_cpu_us_per_call"]), 1),
            ]
        )
    header = ["floor", "calls/s (before run)", "calls/s (after run)", "CPU µs/call (before)", "CPU µs/call (after)"]
    return table(header, rows)


def throughput_table(after: Mapping[str, Any], before: Mapping[str, Any]) -> str:
    ratios = floor_ratios(after.get("throughput", {}), after.get("floor", {}))
    # Each run against its own floors: comparable even when the machine was busier during one of them.
    old_ratios = floor_ratios(before.get("throughput", {}), before.get("floor", {}))
    rows = []
    for name, result in after.get("throughput", {}).items():
        old = before.get("throughput", {}).get(name, {})
        new_rate, old_rate = _median(result.get("jobs_per_s")), _median(old.get("jobs_per_s"))
        ratio = ratios.get(name, {})
        rows.append(
            [
                name,
                number(old_rate, 0),
                number(new_rate, 0),
                number(_ratio(new_rate, old_rate), 2),
                number(_median(old.get("server_cpu_us_per_job")), 1),
                number(_median(result.get("server_cpu_us_per_job")), 1),
                number(_median(old.get("redis_cpu_us_per_job")), 1),
                number(_median(result.get("redis_cpu_us_per_job")), 1),
                number(_median(old.get("redis_calls_per_job")), 2),
                number(_median(result.get("redis_calls_per_job")), 2),
                number(old_ratios.get(name, {}).get("jobs_per_s"), 2),
                number(ratio.get("jobs_per_s"), 2),
                number(old_ratios.get(name, {}).get("server_cpu"), 2),
                number(ratio.get("server_cpu"), 2),
            ]
        )
    header = [
        "scenario", "jobs/s before", "after", "after/before", "server µs before", "after",
        "Redis µs before", "after", "Redis cmds before", "after",
        "÷floor jobs/s before", "after", "÷floor CPU before", "after",
    ]  # fmt: skip
    return table(header, rows)


def _scenario(document: Mapping[str, Any], name: str, key: str) -> float | None:
    return _median(document.get("throughput", {}).get(name, {}).get(key))


def targets_table(
    after: Mapping[str, Any], bullmq: Mapping[str, Any], pickup: Mapping[str, Any], memory: Mapping[str, Any]
) -> str:
    ratios = floor_ratios(after.get("throughput", {}), after.get("floor", {}))
    bull = bullmq.get("median", {})
    # One job per call on both sides: BullMQ's `add` with 50 in flight, then its worker (concurrency 50) taking
    # one job per script; ours Enqueue with 50 in flight, then StreamJobs delivering one job per message, each
    # acked on its own. (The sequential cycle is not comparable: it idles between calls, so the server's own
    # background loops weigh on every job.)
    single = [_scenario(after, n, "redis_cpu_us_per_job") for n in ("enqueue_grpc", "stream_ack_grpc")]
    life = _ratio(None if None in single else sum(v or 0.0 for v in single), bull.get("life_redis_cpu_us_per_job"))
    batched = [_scenario(after, n, "redis_cpu_us_per_job") for n in ("enqueue_batch100_grpc", "fetch100_ackbatch_grpc")]
    batched_life = None if None in batched else sum(v or 0.0 for v in batched)
    bull_batched = (bull.get("add_bulk_100_redis_cpu_us_per_job") or 0) + (bull.get("drain_redis_cpu_us_per_job") or 0)
    drain = max(
        (_scenario(after, n, "jobs_per_s") or 0 for n in ("fetch100_ackbatch_grpc", "stream_batch_ackbatch_grpc")),
        default=0,
    )
    memory_bytes = _median(memory.get("memory", {}).get("bytes_per_job"))
    stream = pickup.get("stream_jobs", {})
    scale_ratios = after.get("scale", {}).get("ratios_large_to_small") or []

    def row(target: str, value: float | None, limit: float, *, at_most: bool, digits: int = 2) -> list[str]:
        met = "-" if value is None else "yes" if (value <= limit if at_most else value >= limit) else "no"
        return [target, number(value, digits), ("≤ " if at_most else "≥ ") + number(limit, 2), met]

    rows = [
        row(
            "HTTP POST /jobs: server CPU ÷ bare aiohttp",
            ratios.get("enqueue_http", {}).get("server_cpu"),
            2,
            at_most=True,
        ),
        row("gRPC Enqueue: server CPU ÷ bare unary", ratios.get("enqueue_grpc", {}).get("server_cpu"), 2, at_most=True),
        row("gRPC cycle ÷ 3 sequential bare calls", ratios.get("cycle_grpc", {}).get("jobs_per_s"), 0.5, at_most=False),
        row("HTTP cycle ÷ 3 sequential bare calls", ratios.get("cycle_http", {}).get("jobs_per_s"), 0.5, at_most=False),
        row("Redis CPU per job life ÷ BullMQ (one at a time)", life, 1.0, at_most=True),
        row("Redis CPU per job life ÷ BullMQ (batched)", _ratio(batched_life, bull_batched or None), 1.0, at_most=True),
        row(
            "Redis bytes per queued job ÷ BullMQ",
            _ratio(memory_bytes, bull.get("memory_bytes_per_job")),
            1.3,
            at_most=True,
        ),
        row(
            "batched drain ÷ BullMQ worker (c=50)",
            _ratio(drain or None, bull.get("drain_jobs_per_s")),
            1.0,
            at_most=False,
        ),
        row(
            "EnqueueBatch 100 ÷ BullMQ addBulk 100",
            _ratio(_scenario(after, "enqueue_batch100_grpc", "jobs_per_s"), bull.get("add_bulk_100_jobs_per_s")),
            1.2,
            at_most=False,
        ),
        row("StreamJobs pickup p50 ms", _median(stream.get("p50_ms")), 2.0, at_most=True),
        row("StreamJobs pickup p99 ms", _median(stream.get("p99_ms")), 5.0, at_most=True),
        # The target holds for each run, so the worst run's ratio is the one that counts.
        row(
            "1,000,000 queued ÷ 1,000 queued (worst run)",
            min(scale_ratios) if scale_ratios else None,
            0.9,
            at_most=False,
        ),
    ]
    return table(["target", "measured", "target", "met?"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--after", required=True, help="bench JSON of the checkout measured")
    parser.add_argument("--before", help="bench JSON of the other checkout (BENCH_SERVER_TREE)")
    parser.add_argument("--bullmq", help="python -m bench.bullmq_compare JSON")
    parser.add_argument("--pickup", help="python -m bench pickup JSON (default: the pickup part of --after)")
    parser.add_argument("--memory", help="python -m bench memory JSON (default: the memory part of --after)")
    args = parser.parse_args(argv)
    after, before = _load(args.after), _load(args.before)
    # `bench all` files hold their own pickup and memory parts.
    bullmq = _load(args.bullmq)
    pickup = _load(args.pickup) or after.get("pickup", {})
    memory = _load(args.memory) or {"memory": after.get("memory", {})}
    print(f"after: {after.get('server', {}).get('commit')}  before: {before.get('server', {}).get('commit', '-')}")
    print(f"load average at start: after {after.get('machine', {}).get('load_average_at_start')}, "
          f"before {before.get('machine', {}).get('load_average_at_start')}")  # fmt: skip
    print()
    print(floors_table(after, before))
    print()
    print(throughput_table(after, before))
    print()
    print(targets_table(after, bullmq, pickup.get("pickup", pickup), memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
