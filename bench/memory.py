"""Redis memory per queued job: `INFO memory` used_memory before and after enqueuing many small jobs.

Each run empties Redis, then a load process enqueues `jobs` (default 100,000)
no-op jobs with EnqueueBatch of 1,000; bytes/job is the growth of used_memory
divided by the job count. Also reported: the growth of used_memory_dataset
(used_memory less Redis's own overhead), and where the bytes are, from
`MEMORY USAGE`: the average job hash (a sample of 200), the queue's sorted
set, and the event log stream. The event log is capped (OJS_EVENTS_MAXLEN,
100,000 by default), so its share per job shrinks to nothing for a back-log
much larger than the cap.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from redis.asyncio import Redis

from bench.context import BenchContext
from bench.load import LoadSpec
from bench.metrics import figure, redis_sample

# The server's default key prefix (server/store/keys.py); the benchmark does not set OJS_KEY_PREFIX.
_PREFIX = "ojs:"
_JOB_SAMPLE = 200


async def _memory_usage(redis: Redis, key: str) -> int:
    # SAMPLES 0: the exact size of every element of a large set or stream.
    usage = await redis.memory_usage(key, samples=0)
    return int(usage or 0)


async def _job_hash_bytes(redis: Redis) -> float | None:
    keys: list[bytes] = []
    async for key in redis.scan_iter(match=f"{_PREFIX}job:*", count=1000):
        keys.append(key)
        if len(keys) >= _JOB_SAMPLE:
            break
    if not keys:
        return None
    return statistics.mean([await _memory_usage(redis, key.decode()) for key in keys])


async def measure_memory(ctx: BenchContext, *, jobs: int, runs: int, queue: str = "q") -> dict[str, Any]:
    spec = LoadSpec(kind="enqueue_batch_grpc", jobs=jobs, concurrency=4, batch=1000, queue=queue, timeout_s=600)
    total: list[float] = []
    dataset: list[float] = []
    job_hash: list[float | None] = []
    queue_set: list[float] = []
    event_log: list[float] = []
    rates: list[float] = []
    for index in range(runs):
        await ctx.reset()
        before = await redis_sample(ctx.redis)
        result = await ctx.pool.run(spec, processes=1)
        after = await redis_sample(ctx.redis)
        if result.jobs != jobs:
            raise RuntimeError(f"memory: enqueued {result.jobs} jobs, expected {jobs}")
        total.append((after.used_memory - before.used_memory) / jobs)
        dataset.append((after.used_memory_dataset - before.used_memory_dataset) / jobs)
        job_hash.append(await _job_hash_bytes(ctx.redis))
        queue_set.append(await _memory_usage(ctx.redis, f"{_PREFIX}available:{queue}") / jobs)
        event_log.append(await _memory_usage(ctx.redis, f"{_PREFIX}events") / jobs)
        rates.append(jobs / result.elapsed_s)
        print(f"  memory run {index + 1}/{runs}: {total[-1]:.0f} bytes/job", file=sys.stderr, flush=True)
    return {
        "title": f"Redis used_memory growth per job, {jobs:,} small jobs enqueued with EnqueueBatch of 1,000",
        "jobs": jobs,
        "bytes_per_job": figure(total, 1),
        "dataset_bytes_per_job": figure(dataset, 1),
        "breakdown_bytes_per_job": {
            "job_hash": figure(job_hash, 1),
            "queue_sorted_set": figure(queue_set, 1),
            "event_log": figure(event_log, 1),
        },
        "enqueue_jobs_per_s": figure(rates, 1),
    }
