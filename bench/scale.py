"""Does processing slow down when the queue is deep? Throughput with 1,000,000 jobs queued versus 1,000.

Design. The same drain is measured over two back-logs of the same queue: a
small one (1,000 jobs) and a large one (`--scale-jobs`, default 1,000,000),
and the figure is the ratio large / small.

- The drain: the load process's worker loops settle exactly `drain` jobs
  (default 20,000) with Fetch 100 + one AckBatch (4 workers), or with Fetch
  10 + an Ack per job (8 workers) while the server does not implement AckBatch.
- To hold the back-log steady, a drain goes in phases of `phase` jobs
  (1,000): the benchmark process first tops the queue up by `phase` jobs with
  EnqueueBatch (not timed, not costed), then the load process drains exactly
  `phase` jobs (timed and costed). The back-log therefore moves between B and
  B + `phase` throughout, for both back-logs alike, and the top-ups are not in
  the figures. Phases are short (tens of ms), so the absolute jobs/s is a
  little below the steady-state processing scenarios; the ratio compares
  like with like.
- jobs/s = jobs drained / the sum of the phase times. Each run is one such
  drain on the same back-log (it is filled once per back-log size; filling
  1,000,000 jobs takes about a minute and is reported as `fill_jobs_per_s`).
- Jobs drained stay in Redis as completed jobs (retention), equally for both.
- Measuring starts once a background AOF rewrite set off by the fill is over
  (`redis_child_cpu_us_per_job` shows any rewrite during the drains).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.context import BenchContext
from bench.load import LoadSpec, enqueue_backlog
from bench.metrics import Cost, figure, redis_sample
from bench.throughput import ack_batch_missing

SMALL_BACKLOG = 1_000


async def _drain(ctx: BenchContext, spec: LoadSpec, *, drain: int, phase: int) -> tuple[float, int, Cost | None]:
    """Drain `drain` jobs in phases, topping the queue up before each; (seconds, jobs, cost) of the drains."""
    elapsed = 0.0
    jobs = 0
    cost: Cost | None = None
    for _ in range(max(1, drain // phase)):
        await enqueue_backlog(ctx.stub, phase, queue=spec.queue, concurrency=1)
        result, phase_cost = await ctx.measure(spec)
        if result.skipped:
            raise RuntimeError(result.skipped)
        if result.jobs != phase or result.settle_errors:
            raise RuntimeError(
                f"scale: a phase settled {result.jobs} of {phase} jobs ({result.settle_errors} errors: "
                f"{result.first_error or 'none'})"
            )
        elapsed += result.elapsed_s
        jobs += result.jobs
        cost = phase_cost if cost is None else cost + phase_cost
    return elapsed, jobs, cost


async def _measure_backlog(
    ctx: BenchContext, spec: LoadSpec, *, backlog: int, drain: int, phase: int, runs: int
) -> dict[str, Any]:
    await ctx.reset()
    started = time.perf_counter()
    await enqueue_backlog(ctx.stub, backlog, queue=spec.queue)
    fill_s = time.perf_counter() - started
    await ctx.settle()
    memory = await redis_sample(ctx.redis)
    rates: list[float] = []
    calls: list[float] = []
    redis_cpu: list[float] = []
    redis_child_cpu: list[float] = []
    server_cpu: list[float | None] = []
    for index in range(runs):
        elapsed, jobs, cost = await _drain(ctx, spec, drain=drain, phase=phase)
        rates.append(jobs / elapsed)
        if cost is not None:
            per_job = cost.per_job(jobs)
            calls.append(per_job.redis_calls)
            redis_cpu.append(per_job.redis_cpu_us)
            redis_child_cpu.append(per_job.redis_child_cpu_us)
            server_cpu.append(per_job.server_cpu_us)
        print(
            f"  scale backlog {backlog:,} run {index + 1}/{runs}: {rates[-1]:,.0f} jobs/s", file=sys.stderr, flush=True
        )
    return {
        "backlog": backlog,
        "fill_jobs_per_s": round(backlog / fill_s, 1),
        "used_memory_after_fill": memory.used_memory,
        "jobs_per_s": figure(rates, 1),
        "redis_calls_per_job": figure(calls),
        "redis_cpu_us_per_job": figure(redis_cpu, 2),
        "server_cpu_us_per_job": figure(server_cpu, 2),
        "redis_child_cpu_us_per_job": figure(redis_child_cpu, 2),
    }


async def measure_scale(ctx: BenchContext, *, backlog: int, drain: int, phase: int, runs: int) -> dict[str, Any]:
    missing = await ack_batch_missing(ctx.stub)
    if missing:
        spec = LoadSpec(kind="fetch_ack_grpc", jobs=phase, concurrency=8, batch=10)
        method = f"Fetch 10 + Ack per job, 8 workers ({missing})"
    else:
        spec = LoadSpec(kind="fetch_ackbatch_grpc", jobs=phase, concurrency=4, batch=100)
        method = "Fetch 100 + one AckBatch, 4 workers"
    print(f"scale: {method}; back-logs {SMALL_BACKLOG:,} and {backlog:,}", file=sys.stderr, flush=True)
    small = await _measure_backlog(ctx, spec, backlog=SMALL_BACKLOG, drain=drain, phase=phase, runs=runs)
    large = await _measure_backlog(ctx, spec, backlog=backlog, drain=drain, phase=phase, runs=runs)
    await ctx.reset()
    ratio = None
    if small["jobs_per_s"]["median"] and large["jobs_per_s"]["median"]:
        ratio = round(large["jobs_per_s"]["median"] / small["jobs_per_s"]["median"], 3)
    return {
        "title": f"processing throughput with {backlog:,} jobs queued vs {SMALL_BACKLOG:,}",
        "method": method,
        "load": spec.kind,
        "drain_jobs_per_run": max(1, drain // phase) * phase,
        "phase_jobs": phase,
        "small": small,
        "large": large,
        "ratio_large_to_small": ratio,
    }
