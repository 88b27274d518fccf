"""Does processing slow down when the queue is deep? Throughput with 1,000,000 jobs queued versus 1,000.

Design. Each run measures the same drain twice, back to back, on one queue:
first with a small back-log (1,000 jobs), then, after topping the same queue
up to `--scale-jobs` (default 1,000,000), with the large one. Its figure is
the ratio large / small, so every run has its own ratio, measured minutes
apart at most (the target asks for each run's ratio, not only their median).

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
- jobs/s = jobs drained / the sum of the phase times. Every run starts from an
  empty Redis; filling the large back-log (about a minute) is reported as
  `fill_jobs_per_s`. Jobs drained stay in Redis as completed jobs (retention).
- Measuring starts once a background AOF rewrite set off by a fill is over
  (`redis_child_cpu_us_per_job` shows any rewrite during the drains).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
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


@dataclass
class _Backlog:
    """The figures of every run's drain at one back-log size."""

    backlog: int
    rates: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    redis_cpu: list[float] = field(default_factory=list)
    redis_child_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float | None] = field(default_factory=list)
    fill_rates: list[float] = field(default_factory=list)
    used_memory: list[int] = field(default_factory=list)

    async def fill_to(self, ctx: BenchContext, queue: str, already: int) -> None:
        """Top the queue up from `already` jobs to this back-log, then wait for the AOF rewrite it may start."""
        started = time.perf_counter()
        await enqueue_backlog(ctx.stub, self.backlog - already, queue=queue)
        self.fill_rates.append((self.backlog - already) / (time.perf_counter() - started))
        await ctx.settle()
        self.used_memory.append((await redis_sample(ctx.redis)).used_memory)

    async def drain(self, ctx: BenchContext, spec: LoadSpec, *, drain: int, phase: int, run: int) -> float:
        elapsed, jobs, cost = await _drain(ctx, spec, drain=drain, phase=phase)
        self.rates.append(jobs / elapsed)
        if cost is not None:
            per_job = cost.per_job(jobs)
            self.calls.append(per_job.redis_calls)
            self.redis_cpu.append(per_job.redis_cpu_us)
            self.redis_child_cpu.append(per_job.redis_child_cpu_us)
            self.server_cpu.append(per_job.server_cpu_us)
        print(
            f"  scale run {run}, back-log {self.backlog:,}: {self.rates[-1]:,.0f} jobs/s", file=sys.stderr, flush=True
        )
        return self.rates[-1]

    def figures(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "fill_jobs_per_s": figure(self.fill_rates, 1),
            "used_memory_after_fill": self.used_memory,
            "jobs_per_s": figure(self.rates, 1),
            "redis_calls_per_job": figure(self.calls),
            "redis_cpu_us_per_job": figure(self.redis_cpu, 2),
            "server_cpu_us_per_job": figure(self.server_cpu, 2),
            "redis_child_cpu_us_per_job": figure(self.redis_child_cpu, 2),
        }


async def measure_scale(ctx: BenchContext, *, backlog: int, drain: int, phase: int, runs: int) -> dict[str, Any]:
    if backlog <= SMALL_BACKLOG:
        raise ValueError(f"the large back-log ({backlog:,}) must be above the small one ({SMALL_BACKLOG:,})")
    missing = await ack_batch_missing(ctx.stub)
    if missing:
        spec = LoadSpec(kind="fetch_ack_grpc", jobs=phase, concurrency=8, batch=10)
        method = f"Fetch 10 + Ack per job, 8 workers ({missing})"
    else:
        spec = LoadSpec(kind="fetch_ackbatch_grpc", jobs=phase, concurrency=4, batch=100)
        method = "Fetch 100 + one AckBatch, 4 workers"
    print(f"scale: {method}; back-logs {SMALL_BACKLOG:,} and {backlog:,}", file=sys.stderr, flush=True)
    small, large = _Backlog(SMALL_BACKLOG), _Backlog(backlog)
    ratios: list[float] = []
    for run in range(1, runs + 1):
        await ctx.reset()
        await small.fill_to(ctx, spec.queue, 0)
        small_rate = await small.drain(ctx, spec, drain=drain, phase=phase, run=run)
        # The drain took as many jobs as it added: the queue holds SMALL_BACKLOG again.
        await large.fill_to(ctx, spec.queue, SMALL_BACKLOG)
        large_rate = await large.drain(ctx, spec, drain=drain, phase=phase, run=run)
        ratios.append(round(large_rate / small_rate, 3))
        print(f"  scale run {run}: ratio large/small {ratios[-1]}", file=sys.stderr, flush=True)
    await ctx.reset()
    return {
        "title": f"processing throughput with {backlog:,} jobs queued vs {SMALL_BACKLOG:,}",
        "method": method,
        "load": spec.kind,
        "drain_jobs_per_run": max(1, drain // phase) * phase,
        "phase_jobs": phase,
        "small": small.figures(),
        "large": large.figures(),
        # Each run's own ratio, and their median.
        "ratios_large_to_small": ratios,
        "ratio_large_to_small": round(statistics.median(ratios), 3),
    }
