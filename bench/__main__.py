"""Benchmarks of a real `ojs-server` process: `python -m bench --help`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.pickup import run_pickup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pickup = sub.add_parser(
        "pickup",
        help="enqueue-to-delivery latency for an idle worker (StreamJobs and long-poll Fetch), "
        "and the Redis commands idle workers cause",
    )
    pickup.add_argument("--jobs", type=int, default=1000, help="jobs per mode (default: 1000)")
    pickup.add_argument("--idle-seconds", type=float, default=10.0, help="idle measurement window (default: 10)")
    pickup.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.command == "pickup":
        return asyncio.run(run_pickup(jobs=args.jobs, idle_seconds=args.idle_seconds, json_path=args.json_path))
    return 2


if __name__ == "__main__":
    sys.exit(main())
