"""Short forms of the RPCs the tests make over the `stub` fixture, and a hand-built servicer on its own port."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
from google.protobuf import duration_pb2, json_format, struct_pb2
from ojs.v1 import job_pb2, queue_pb2, worker_pb2
from redis.asyncio import Redis

from server.app import build_servicer
from server.config import Settings
from server.domain.clock import ManualClock
from server.rpc.server import GrpcServer
from server.store.facade import Store
from server.store.keys import KeySchema
from tests.support import SETTLE_S, new_queue, wait_for

DEAD_LETTER_RETRY = {"max_attempts": 1, "on_exhaustion": "dead_letter"}


@dataclasses.dataclass(frozen=True)
class Clocked:
    """A stub of the application whose clock the test steps (the `clocked` fixture)."""

    stub: Any
    clock: ManualClock


# --------------------------------------------------------------------------- values


def ms_of(timestamp: Any) -> int:
    return int(timestamp.seconds * 1000 + timestamp.nanos // 1_000_000)


def extend(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def value_list(items: list[Any]) -> list[struct_pb2.Value]:
    values = struct_pb2.ListValue()
    values.extend(items)
    return list(values.values)


def values_to_python(values: Any) -> Any:
    return json_format.MessageToDict(struct_pb2.ListValue(values=list(values)))


def canonical_of(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical(raw: bytes) -> bytes:
    return canonical_of(orjson.loads(raw))


# --------------------------------------------------------------------------- jobs


async def enqueue_reply(stub: Any, body: dict[str, Any]) -> Any:
    """The whole EnqueueResponse (job and deduplication flag)."""
    return await stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(body)))


async def enqueue_json(stub: Any, body: dict[str, Any]) -> Any:
    return (await enqueue_reply(stub, body)).job


async def enqueue(stub: Any, queue: str, *, job_type: str = "test.echo", **options: Any) -> Any:
    return await enqueue_json(stub, {"type": job_type, "args": [], "options": {"queue": queue, **options}})


async def enqueue_simple(stub: Any, queue: str, *, priority: int = 0, **extra: Any) -> Any:
    options: dict[str, Any] = {"queue": queue, "priority": priority, **extra}
    return await enqueue_json(stub, {"type": "test.echo", "args": [priority], "options": options})


async def fetch(
    stub: Any, queues: list[str], *, count: int = 1, worker_id: str = "", visibility_timeout_ms: int | None = None
) -> list[Any]:
    request = worker_pb2.FetchRequest(queues=queues, count=count, worker_id=worker_id)
    if visibility_timeout_ms is not None:
        request.visibility_timeout_ms = visibility_timeout_ms
    return list((await stub.Fetch(request)).jobs)


async def fetch_one(stub: Any, queue: str, **kwargs: Any) -> Any:
    [job] = await fetch(stub, [queue], **kwargs)
    return job


async def fetch_queue(stub: Any, queue: str, count: int = 10) -> list[Any]:
    """Up to `count` jobs of one queue."""
    return await fetch(stub, [queue], count=count, worker_id="rpc-tests")


async def get_job(stub: Any, job_id: str) -> Any:
    return (await stub.GetJob(job_pb2.GetJobRequest(job_id=job_id))).job


async def wait_for_state(stub: Any, job_id: str, state: int, *, seconds: float = SETTLE_S) -> Any:
    async def check() -> Any:
        job = await get_job(stub, job_id)
        return job if job.state == state else None

    return await wait_for(check, seconds=seconds)


async def fetch_within(stub: Any, queue: str, seconds: float) -> list[Any]:
    """The first non-empty fetch of `queue` within `seconds`."""
    return await wait_for(lambda: fetch(stub, [queue]), seconds=seconds)


async def dead_letter_job(stub: Any, queue: str, *, job_type: str = "dl.job", code: str = "boom") -> Any:
    """A job that exhausted its single attempt under on_exhaustion=dead_letter."""
    job = await enqueue(stub, queue, job_type=job_type, retry=DEAD_LETTER_RETRY)
    await fetch_one(stub, queue)
    error = job_pb2.JobError(code=code, message=f"{code}!")
    response = await stub.Nack(worker_pb2.NackRequest(job_id=job.id, error=error))
    assert response.state == job_pb2.JOB_STATE_DISCARDED
    return response.job


async def dead_letter_ids(stub: Any, **filters: Any) -> list[str]:
    response = await stub.ListDeadLetter(queue_pb2.ListDeadLetterRequest(limit=1000, **filters))
    return [job.id for job in response.jobs]


async def after_a_promoter_pass(clocked: Clocked) -> None:
    """Returns once the promoter of the clocked application has run at (or after) its clock's current time: a
    control job scheduled 1 ms ahead, then due, has become fetchable."""
    queue = new_queue("control")
    body = {"type": "control.job", "args": [], "options": {"queue": queue, "scheduled_at": "+PT0.001S"}}
    control = await enqueue_json(clocked.stub, body)
    assert control.state == job_pb2.JOB_STATE_SCHEDULED
    clocked.clock.advance(1)
    await wait_for(lambda: fetch(clocked.stub, [queue]))


# --------------------------------------------------------------------------- queues and workers


async def queue_stats(stub: Any, queue: str) -> Any:
    response = await stub.QueueStats(queue_pb2.QueueStatsRequest(queue=queue))
    assert response.queue == queue
    return response.stats


async def all_queues(stub: Any) -> dict[str, Any]:
    response = await stub.ListQueues(queue_pb2.ListQueuesRequest(limit=1000))
    rows = {row.name: row for row in response.queues}
    cursor = response.next_cursor
    while cursor:
        response = await stub.ListQueues(queue_pb2.ListQueuesRequest(limit=1000, cursor=cursor))
        rows.update({row.name: row for row in response.queues})
        cursor = response.next_cursor
    return rows


async def heartbeat(stub: Any, **fields: Any) -> Any:
    return await stub.Heartbeat(worker_pb2.HeartbeatRequest(**fields))


async def all_workers(stub: Any) -> list[Any]:
    workers: list[Any] = []
    cursor = ""
    while True:
        page = await stub.ListWorkers(worker_pb2.ListWorkersRequest(limit=1000, cursor=cursor))
        workers.extend(page.workers)
        if not page.next_cursor:
            return workers
        cursor = page.next_cursor


async def find_worker(stub: Any, worker_id: str) -> Any:
    matches = [w for w in await all_workers(stub) if w.worker_id == worker_id]
    assert len(matches) == 1, f"worker {worker_id} listed {len(matches)} times"
    return matches[0]


# --------------------------------------------------------------------------- servers


@contextlib.asynccontextmanager
async def private_server(redis_url: str, *, api_key: str | None, prefix: str) -> AsyncIterator[str]:
    """The servicer stack built by hand on its own port."""
    redis = Redis.from_url(redis_url)
    store = Store(redis, KeySchema(prefix))
    servicer = build_servicer(store, Settings(default_visibility_timeout_ms=60_000))
    server = GrpcServer(servicer, api_key=api_key)
    port = server.bind("127.0.0.1", 0)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await redis.aclose()
