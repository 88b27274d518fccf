"""A fetch never leases a job it does not deliver: what it claimed but cannot send goes back at once."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
import pytest
from ojs.v1 import job_pb2, worker_pb2
from redis.asyncio import Redis

from server.domain.limits import FETCH_REPLY_MAX_BYTES
from server.store.keys import KeySchema
from tests.hostile.conftest import Http, assert_rich_error

KEYS = KeySchema("ojs")


async def enqueue_json(stub: Any, queue: str, args: list[Any]) -> str:
    envelope = {"type": "big.job", "args": args, "options": {"queue": queue}}
    reply = await stub.Enqueue(job_pb2.EnqueueRequest(job_json=orjson.dumps(envelope), json_only=True))
    job_id: str = reply.job.id
    return job_id


async def state_and_attempt(redis: Redis, job_id: str) -> tuple[str, int]:
    state, attempt = await redis.hmget(KEYS.job(job_id), ["state", "attempt"])
    assert isinstance(state, bytes)
    return state.decode(), int(attempt or 0)


async def test_a_reply_holds_what_fits_and_gives_back_the_rest(stub: Any, redis: Redis) -> None:
    # Five jobs of ~0.95 MB each: all within the job limit, not all within one 4 MiB reply.
    ids = [await enqueue_json(stub, "big", ["x" * 950_000]) for _ in range(5)]
    reply = await stub.Fetch(worker_pb2.FetchRequest(queues=["big"], count=5, worker_id="w1", json_only=True))
    delivered = [job.id for job in reply.jobs]
    assert 1 <= len(delivered) < 5
    assert reply.ByteSize() <= FETCH_REPLY_MAX_BYTES
    for job_id in ids:
        state, attempt = await state_and_attempt(redis, job_id)
        if job_id in delivered:
            assert (state, attempt) == ("active", 1)
        else:
            # Back at once, its attempt not counted: the next fetch takes it.
            assert (state, attempt) == ("available", 0)
    rest = await stub.Fetch(worker_pb2.FetchRequest(queues=["big"], count=5, worker_id="w2", json_only=True))
    assert {job.id for job in rest.jobs} | set(delivered) >= set(ids[: len(delivered) + len(rest.jobs)])
    assert rest.jobs, "the jobs given back are fetchable right away"


async def test_a_job_too_large_for_any_reply_is_put_back_with_a_clear_error(stub: Any, redis: Redis) -> None:
    # ~0.9 MB of JSON, but ~5 MB as protobuf Values: no stock client could receive it in full form.
    job_id = await enqueue_json(stub, "values", [0] * 450_000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Fetch(worker_pb2.FetchRequest(queues=["values"], worker_id="w1"))
    assert_rich_error(caught.value, code=grpc.StatusCode.RESOURCE_EXHAUSTED, reason="payload_too_large")
    assert job_id in (caught.value.details() or "")
    assert await state_and_attempt(redis, job_id) == ("available", 0)
    # The JSON form fits: a JSON client gets it and can ack it.
    reply = await stub.Fetch(worker_pb2.FetchRequest(queues=["values"], worker_id="w2", json_only=True))
    assert [job.id for job in reply.jobs] == [job_id]
    await stub.Ack(worker_pb2.AckRequest(job_id=job_id, worker_id="w2", json_only=True))
    assert (await state_and_attempt(redis, job_id))[0] == "completed"


async def test_a_stored_job_that_cannot_be_rendered_does_not_block_the_queue(http: Http, redis: Redis) -> None:
    status, bad = await http.post("/ojs/v1/jobs", {"type": "a", "args": [], "options": {"queue": "legacy"}})
    assert status == 201
    status, good = await http.post("/ojs/v1/jobs", {"type": "a", "args": [], "options": {"queue": "legacy"}})
    assert status == 201
    # A value no check lets in any more, as data written by an older server could hold.
    await redis.hset(KEYS.job(bad["job"]["id"]), "timeout_ms", str(2**70))
    status, fetched = await http.post("/ojs/v1/workers/fetch", {"queues": ["legacy"], "count": 2, "worker_id": "w"})
    assert status == 200, fetched
    assert [job["id"] for job in fetched["jobs"]] == [good["job"]["id"]]
    # The broken job ended (no retry) instead of being leased and forgotten.
    state, _ = await state_and_attempt(redis, bad["job"]["id"])
    assert state == "discarded"
    status, again = await http.post("/ojs/v1/workers/fetch", {"queues": ["legacy"], "worker_id": "w"})
    assert (status, again) == (200, {"jobs": []})


async def test_a_fetch_whose_caller_gives_up_during_the_claim_gives_the_jobs_back(stub: Any, redis: Redis) -> None:
    job_id = await enqueue_json(stub, "deadline", [1])
    # Writes wait while Redis is paused: the claim is in flight when the client's deadline passes.
    await redis.client_pause(600, all=False)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Fetch(worker_pb2.FetchRequest(queues=["deadline"], worker_id="w1"), timeout=0.2)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Once Redis resumes, the claim runs (the lease token moves on) and the job comes straight back.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        token = await redis.hget(KEYS.job(job_id), "lease_token")
        if token is not None and await state_and_attempt(redis, job_id) == ("available", 0):
            break
        assert asyncio.get_running_loop().time() < deadline, (token, await state_and_attempt(redis, job_id))
        await asyncio.sleep(0.05)
    reply = await stub.Fetch(worker_pb2.FetchRequest(queues=["deadline"], worker_id="w2"))
    assert [job.id for job in reply.jobs] == [job_id]
