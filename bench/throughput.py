"""Throughput scenarios: enqueue, processing a back-log, and the full job cycle, each in jobs/s with its cost.

Every run starts from an empty Redis (FLUSHDB). Processing scenarios first put
their jobs in the queue with EnqueueBatch of 1,000 (not timed), then drain
exactly that many. The load runs in the load processes (`bench.pool`); the
benchmark process only takes the cost snapshots around it (see
`bench.metrics`), so a scenario's cost window also holds the few commands of
the server's own background loops (promote, reap: a handful per second).

- jobs/s: jobs settled (enqueue answered, ack recorded) / time from the load's
  start to the last settlement. With several load processes: all their jobs
  over the slowest one's time. The sequential cycles report 1 / mean latency.
- Redis cmds/job: `INFO commandstats` calls, every command (a script call
  counts as one EVALSHA plus each command the script runs); scripts/job: the
  EVALSHA/EVAL calls alone.
- Redis CPU µs/job: `INFO cpu` used_cpu_user + used_cpu_sys.
- server CPU µs/job: the `ojs-server` process (gRPC server and in-process
  gateway), user + system; its redis-server child is not included.
- client CPU µs/job: the load processes; shows when the load, not the
  server, was the limit (2 cores are shared by all three).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import grpc
from ojs.v1 import worker_pb2

from bench.context import BenchContext
from bench.load import LoadKind, LoadResult, LoadSpec
from bench.metrics import JobCost, figure, percentile
from bench.pool import LoadError

Group = Literal["enqueue", "processing", "cycle"]
GROUPS: tuple[Group, ...] = ("enqueue", "processing", "cycle")


@dataclass(frozen=True)
class Scenario:
    name: str
    group: Group
    title: str
    load: LoadSpec
    # Jobs per run in --quick mode.
    quick_jobs: int
    # The jobs are put in the queue before the run (processing) rather than by it.
    backlog: bool = False
    # One client doing one thing at a time: runs on a single load process.
    sequential: bool = False
    needs_ack_batch: bool = False


def _scenario(
    name: str,
    group: Group,
    title: str,
    kind: LoadKind,
    *,
    jobs: int,
    quick_jobs: int,
    concurrency: int = 1,
    batch: int = 1,
    needs_ack_batch: bool = False,
) -> Scenario:
    return Scenario(
        name=name,
        group=group,
        title=title,
        load=LoadSpec(kind=kind, jobs=jobs, concurrency=concurrency, batch=batch),
        quick_jobs=quick_jobs,
        backlog=group == "processing",
        sequential=group == "cycle",
        needs_ack_batch=needs_ack_batch,
    )


# Job counts give runs of a few seconds each on the 2-core dev machine.
SCENARIOS: tuple[Scenario, ...] = (
    _scenario(
        "enqueue_grpc", "enqueue", "gRPC Enqueue, 50 in flight", "enqueue_grpc",
        jobs=10_000, quick_jobs=1_000, concurrency=50,
    ),
    _scenario(
        "enqueue_batch100_grpc", "enqueue", "gRPC EnqueueBatch of 100, 4 in flight", "enqueue_batch_grpc",
        jobs=50_000, quick_jobs=5_000, concurrency=4, batch=100,
    ),
    _scenario(
        "enqueue_batch1000_grpc", "enqueue", "gRPC EnqueueBatch of 1,000, 4 in flight", "enqueue_batch_grpc",
        jobs=100_000, quick_jobs=10_000, concurrency=4, batch=1000,
    ),
    _scenario(
        "enqueue_http", "enqueue", "HTTP POST /ojs/v1/jobs, 50 in flight", "enqueue_http",
        jobs=10_000, quick_jobs=1_000, concurrency=50,
    ),
    _scenario(
        "enqueue_batch100_http", "enqueue", "HTTP POST /ojs/v1/jobs/batch of 100, 4 in flight", "enqueue_batch_http",
        jobs=50_000, quick_jobs=5_000, concurrency=4, batch=100,
    ),
    _scenario(
        "fetch1_ack_grpc", "processing", "gRPC Fetch 1 + Ack, 8 workers", "fetch_ack_grpc",
        jobs=5_000, quick_jobs=500, concurrency=8, batch=1,
    ),
    _scenario(
        "fetch10_ack_grpc", "processing", "gRPC Fetch 10 + Ack each (concurrent), 8 workers", "fetch_ack_grpc",
        jobs=10_000, quick_jobs=1_000, concurrency=8, batch=10,
    ),
    _scenario(
        "fetch100_ack_grpc", "processing", "gRPC Fetch 100 + Ack each (concurrent), 4 workers", "fetch_ack_grpc",
        jobs=10_000, quick_jobs=2_000, concurrency=4, batch=100,
    ),
    _scenario(
        "stream_ack_grpc", "processing", "gRPC StreamJobs max_concurrent 100 + Ack each", "stream_ack_grpc",
        jobs=10_000, quick_jobs=2_000, batch=100,
    ),
    _scenario(
        "fetch100_ackbatch_grpc", "processing", "gRPC Fetch 100 + one AckBatch, 4 workers", "fetch_ackbatch_grpc",
        jobs=50_000, quick_jobs=5_000, concurrency=4, batch=100, needs_ack_batch=True,
    ),
    _scenario(
        "stream_batch_ackbatch_grpc", "processing",
        "gRPC StreamJobBatches of 100, 4 in flight + one AckBatch per message", "stream_batch_ackbatch_grpc",
        jobs=50_000, quick_jobs=5_000, concurrency=4, batch=100, needs_ack_batch=True,
    ),
    _scenario(
        "fetch100_ackbatch_http", "processing", "HTTP fetch 100 + one POST /workers/ack/batch, 4 workers",
        "fetch_ackbatch_http", jobs=20_000, quick_jobs=2_000, concurrency=4, batch=100,
    ),
    _scenario(
        "fetch10_ack_http", "processing", "HTTP fetch 10 + ack each (concurrent), 8 workers", "fetch_ack_http",
        jobs=5_000, quick_jobs=1_000, concurrency=8, batch=10,
    ),
    _scenario(
        "cycle_grpc", "cycle", "gRPC Enqueue → Fetch → Ack, one job at a time", "cycle_grpc",
        jobs=2_000, quick_jobs=200,
    ),
    _scenario(
        "cycle_http", "cycle", "HTTP jobs → workers/fetch → workers/ack, one job at a time", "cycle_http",
        jobs=2_000, quick_jobs=200,
    ),
    _scenario(
        "cycle_batch100_grpc", "cycle", "gRPC EnqueueBatch 100 → Fetch 100 → AckBatch, repeated", "cycle_batch_grpc",
        jobs=20_000, quick_jobs=2_000, batch=100, needs_ack_batch=True,
    ),
)  # fmt: skip


def sized(scenario: Scenario, *, quick: bool, jobs: int | None) -> Scenario:
    """The scenario with its job count for this invocation (`jobs` overrides, rounded to whole batches)."""
    count = jobs if jobs is not None else scenario.quick_jobs if quick else scenario.load.jobs
    batch = scenario.load.batch if scenario.load.kind.startswith(("enqueue_batch", "cycle_batch")) else 1
    count = max(batch, count - count % batch)
    timeout = max(120.0, count / 200)
    return replace(scenario, load=replace(scenario.load, jobs=count, timeout_s=timeout))


async def ack_batch_missing(stub: Any) -> str | None:
    """Why AckBatch cannot be measured (the server answers UNIMPLEMENTED), or None when it can."""
    try:
        # No entries: nothing is settled, whatever the server makes of an empty batch.
        await stub.AckBatch(worker_pb2.AckBatchRequest(worker_id="bench-probe"))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return f"AckBatch is not implemented by the server ({exc.details()})"
    return None


@dataclass(frozen=True)
class Run:
    result: LoadResult
    cost: JobCost

    @property
    def jobs_per_s(self) -> float:
        if self.result.latencies_ms and self.result.jobs:
            # Sequential: 1 / mean latency of a job (of a round, for the batched cycle).
            per_round = self.result.jobs / len(self.result.latencies_ms)
            return per_round * 1000 / statistics.mean(self.result.latencies_ms)
        return self.result.jobs / self.result.elapsed_s if self.result.elapsed_s > 0 else 0.0

    @property
    def client_cpu_us(self) -> float:
        return self.result.client_cpu_s * 1e6 / max(self.result.jobs, 1)


async def run_once(ctx: BenchContext, scenario: Scenario) -> Run:
    await ctx.reset(scenario.load.jobs if scenario.backlog else 0, queue=scenario.load.queue)
    result, cost = await ctx.measure(scenario.load, processes=1 if scenario.sequential else None)
    return Run(result=result, cost=cost.per_job(result.jobs))


def _describe(scenario: Scenario, processes: int) -> dict[str, Any]:
    load = scenario.load
    return {
        "group": scenario.group,
        "title": scenario.title,
        "load": load.kind,
        "jobs_per_run": load.jobs,
        "concurrency": load.concurrency,
        "batch": load.batch,
        "load_processes": 1 if scenario.sequential else processes,
        "backlog_before_run": load.jobs if scenario.backlog else 0,
    }


def summarize(runs: Sequence[Run]) -> dict[str, Any]:
    """Every figure of a scenario: the median over the runs, and each run's value."""
    costs = [run.cost for run in runs]
    commands = sorted({name for cost in costs for name in cost.redis_calls_by_command})
    out: dict[str, Any] = {
        "jobs_per_s": figure([run.jobs_per_s for run in runs], 1),
        "redis_calls_per_job": figure([c.redis_calls for c in costs]),
        "redis_script_calls_per_job": figure([c.redis_script_calls for c in costs]),
        "redis_cpu_us_per_job": figure([c.redis_cpu_us for c in costs], 2),
        "server_cpu_us_per_job": figure([c.server_cpu_us for c in costs], 2),
        "client_cpu_us_per_job": figure([run.client_cpu_us for run in runs], 2),
        "redis_child_cpu_us_per_job": figure([c.redis_child_cpu_us for c in costs], 2),
        "redis_calls_per_job_by_command": {
            name: round(statistics.median(c.redis_calls_by_command.get(name, 0.0) for c in costs), 3)
            for name in commands
        },
        "jobs": [run.result.jobs for run in runs],
        "elapsed_s": [round(run.result.elapsed_s, 4) for run in runs],
        "settle_errors": [run.result.settle_errors for run in runs],
    }
    first_error = next((run.result.first_error for run in runs if run.result.first_error), "")
    if first_error:
        out["first_settle_error"] = first_error
    latencies = [run.result.latencies_ms for run in runs if run.result.latencies_ms]
    if latencies:
        out["latency_ms"] = {
            "p50": figure([percentile(samples, 0.5) for samples in latencies]),
            "p99": figure([percentile(samples, 0.99) for samples in latencies]),
        }
    return out


async def measure_scenario(ctx: BenchContext, scenario: Scenario, runs: int) -> dict[str, Any]:
    described = _describe(scenario, ctx.pool.size)
    if scenario.needs_ack_batch and (missing := await ack_batch_missing(ctx.stub)):
        return {**described, "status": "skipped", "reason": missing}
    done: list[Run] = []
    for index in range(runs):
        try:
            run = await run_once(ctx, scenario)
        except LoadError as exc:
            failed = {"status": "error", "reason": str(exc), "traceback": exc.details}
            return {**described, **failed, **(summarize(done) if done else {})}
        if run.result.skipped:
            return {**described, "status": "skipped", "reason": run.result.skipped}
        done.append(run)
        print(
            f"  {scenario.name} run {index + 1}/{runs}: {run.jobs_per_s:,.0f} jobs/s "
            f"({run.result.jobs} jobs in {run.result.elapsed_s:.2f} s)",
            file=sys.stderr,
            flush=True,
        )
    summary = summarize(done)
    expected = scenario.load.jobs
    short = [run.result.jobs for run in done if run.result.jobs != expected]
    status = "ok" if not short and not any(summary["settle_errors"]) else "incomplete"
    out = {**described, "status": status, **summary}
    if status != "ok":
        out["reason"] = (
            f"expected {expected} jobs per run; settled {summary['jobs']}, errors {summary['settle_errors']}"
        )
    return out


async def measure_throughput(
    ctx: BenchContext, scenarios: Sequence[Scenario], *, runs: int, results: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Measure each scenario in turn, adding its figures to `results` as soon as it is done."""
    for scenario in scenarios:
        print(f"throughput: {scenario.name} ({scenario.title}, {scenario.load.jobs:,} jobs)", file=sys.stderr)
        results[scenario.name] = await measure_scenario(ctx, scenario, runs)
    return results
