"""Benchmarks of a real `ojs-server` process: `python -m bench --help`.

The server runs as its own process with its own private Redis (or the Redis of
REDIS_URL, which is flushed between scenarios); the load runs in separate load
processes. `python -m bench all --json bench-results.json` (`make bench`) runs
everything and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench import overload, suite, workers
from bench.pickup import run_pickup

_QUICK_DEFAULTS = {"memory_jobs": 10_000, "scale_jobs": 20_000, "scale_drain": 2_000, "pickup_jobs": 100}
_FULL_DEFAULTS = {"memory_jobs": 100_000, "scale_jobs": 1_000_000, "scale_drain": 20_000, "pickup_jobs": 1_000}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _suite_options(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--runs", type=_positive, help="runs per figure; each figure is their median (default: 3)")
    parser.add_argument(
        "--quick", action="store_true", help="small job counts and 1 run (a smoke test, not a measurement)"
    )
    names = ", ".join(suite.selectable(command))
    parser.add_argument("--only", default="", metavar="NAME,NAME", help=f"run only these: {names}")
    parser.add_argument("--json", dest="json_path", metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument(
        "--load-procs", type=_positive, default=1, help="load processes (default: 1; the dev machine has 2 cores)"
    )
    if "floor" in suite.COMMANDS[command] and command != "floor":
        parser.add_argument(
            "--no-floor", action="store_true", help="leave out the floors (then no scenario has a ratio to its floor)"
        )
    if "throughput" in suite.COMMANDS[command]:
        parser.add_argument("--jobs", type=_positive, help="jobs per run of every throughput scenario")
    if "memory" in suite.COMMANDS[command]:
        parser.add_argument("--memory-jobs", type=_positive, help="jobs enqueued per memory run (default: 100,000)")
    if "scale" in suite.COMMANDS[command]:
        parser.add_argument("--scale-jobs", type=_positive, help="the large back-log (default: 1,000,000)")
        parser.add_argument("--scale-drain", type=_positive, help="jobs drained per scale run (default: 20,000)")
        parser.add_argument(
            "--scale-phase", type=_positive, default=1_000, help="jobs per top-up/drain phase (default: 1,000)"
        )
    if "pickup" in suite.COMMANDS[command]:
        parser.add_argument("--pickup-jobs", type=_positive, help="jobs per pickup mode (default: 1,000)")
        parser.add_argument("--idle-seconds", type=float, help="idle window of pickup in s (default: 10)")


def _options(args: argparse.Namespace) -> suite.Options:
    defaults = _QUICK_DEFAULTS if args.quick else _FULL_DEFAULTS
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = sorted(set(only) - set(suite.selectable(args.command)))
    if unknown:
        raise SystemExit(f"--only: unknown name(s) {', '.join(unknown)}; choose from {suite.selectable(args.command)}")

    def given(name: str) -> int:
        value = getattr(args, name, None)
        return int(value) if value is not None else defaults.get(name, 0)

    return suite.Options(
        command=args.command,
        runs=args.runs or (1 if args.quick else 3),
        quick=args.quick,
        only=only,
        load_processes=args.load_procs,
        jobs=getattr(args, "jobs", None),
        memory_jobs=given("memory_jobs"),
        scale_jobs=given("scale_jobs"),
        scale_drain=given("scale_drain"),
        scale_phase=getattr(args, "scale_phase", 1_000),
        pickup_jobs=given("pickup_jobs"),
        idle_seconds=(1.0 if args.quick else 10.0)
        if getattr(args, "idle_seconds", None) is None
        else args.idle_seconds,
        json_path=args.json_path,
        floor=not getattr(args, "no_floor", False),
    )


def _load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-clients", type=int, default=1000, help="concurrent HTTP clients (default: 1000)")
    parser.add_argument("--grpc-clients", type=int, default=200, help="concurrent gRPC clients (default: 200)")
    parser.add_argument("--duration", type=float, default=60.0, help="s of both protocols at once (default: 60)")
    parser.add_argument(
        "--solo-duration", type=float, default=20.0, help="s of each protocol alone; 0: skip (default: 20)"
    )
    parser.add_argument("--http-procs", type=_positive, default=2, help="processes of HTTP clients (default: 2)")
    parser.add_argument("--grpc-procs", type=_positive, default=2, help="processes of gRPC clients (default: 2)")
    parser.add_argument(
        "--phases", default=",".join(overload.PHASES), help="phases to run, of both, http, grpc (default: all)"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="OJS_NAME=VALUE", help="a server setting (repeatable)"
    )
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")


def _workers_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--counts", default="1,2", help="worker counts; the first is the base (default: 1,2)")
    parser.add_argument(
        "--only", default=",".join(workers.DEFAULT_SCENARIOS), metavar="NAME,NAME", help="throughput scenarios"
    )
    parser.add_argument("--runs", type=_positive, default=3, help="runs per figure, median reported (default: 3)")
    parser.add_argument("--quick", action="store_true", help="small job counts (a smoke test, not a measurement)")
    parser.add_argument("--jobs", type=_positive, help="jobs per run of every scenario")
    parser.add_argument("--load-procs", type=_positive, default=2, help="load processes (default: 2)")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("OJS_"):
        raise SystemExit(f"--server-env: expected OJS_NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "all": "everything below: floor, throughput, pickup, memory, scale",
        "floor": "the bare stack on this machine: aiohttp, grpc.aio unary and bidi stream, Redis EVALSHA",
        "throughput": "jobs/s and cost per job: enqueue, processing a back-log, full cycle; with the floors",
        "memory": "Redis bytes per queued job",
        "scale": "processing throughput with 1,000,000 jobs queued vs 1,000",
    }
    for command, text in helps.items():
        _suite_options(sub.add_parser(command, help=text, description=text), command)
    pickup = sub.add_parser(
        "pickup",
        help="enqueue-to-delivery latency for an idle worker (StreamJobs and long-poll Fetch), "
        "and the Redis commands idle workers cause",
    )
    pickup.add_argument("--jobs", type=int, default=1000, help="jobs per mode (default: 1000)")
    pickup.add_argument("--idle-seconds", type=float, default=10.0, help="idle measurement window (default: 10)")
    pickup.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    _load_options(sub.add_parser("load", help="many concurrent HTTP and gRPC clients: fairness, errors, RSS, fds"))
    _workers_options(
        sub.add_parser(
            "workers",
            help="the throughput scenarios on `--workers 1` and `--workers 2` servers, and what N cores would give",
        )
    )
    args = parser.parse_args(argv)
    if args.command == "workers":
        return workers.main(
            workers.WorkersOptions(
                scenarios=tuple(name.strip() for name in args.only.split(",") if name.strip()),
                counts=tuple(int(count) for count in args.counts.split(",") if count.strip()),
                runs=args.runs,
                quick=args.quick,
                jobs=args.jobs,
                load_processes=args.load_procs,
                json_path=args.json_path,
            )
        )
    if args.command == "load":
        return overload.main(
            overload.LoadOptions(
                http_clients=args.http_clients,
                grpc_clients=args.grpc_clients,
                duration_s=args.duration,
                solo_duration_s=args.solo_duration,
                http_processes=args.http_procs,
                grpc_processes=args.grpc_procs,
                phases=tuple(p.strip() for p in args.phases.split(",") if p.strip()),
                json_path=args.json_path,
                server_env=tuple(_setting(text) for text in args.server_env),
            )
        )
    if args.command == "pickup":
        return asyncio.run(run_pickup(jobs=args.jobs, idle_seconds=args.idle_seconds, json_path=args.json_path))
    return suite.main(_options(args))


if __name__ == "__main__":
    sys.exit(main())
