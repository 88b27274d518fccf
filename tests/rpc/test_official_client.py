"""A client of the official protobuf binding: only fields numbered below 100, every official RPC.

`OfficialStub` refuses to send a request that sets an addition (a field numbered 100 or more, anywhere)
and strips the additions from every reply before the test reads it, as a client generated from the
published ojs-proto sees them (unknown fields). So what passes here works for such clients unchanged.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, message, struct_pb2
from ojs.v1 import events_pb2, job_pb2, queue_pb2, service_pb2, service_pb2_grpc, worker_pb2, workflow_pb2

from server.domain.ids import is_uuid7
from tests.rpc.rich_status import error_info
from tests.support import new_queue

J, Q, S, W, F = job_pb2, queue_pb2, service_pb2, worker_pb2, workflow_pb2
ADDITIONS_START = 100


def _ojs_children(field: Any, value: Any) -> list[message.Message]:
    """The OJS messages a set field holds (well-known types have no additions)."""
    if field.message_type is None or field.message_type.GetOptions().map_entry:
        return []
    items = [value] if isinstance(value, message.Message) else list(value)
    return [item for item in items if item.DESCRIPTOR.full_name.startswith("ojs.")]


def additions(msg: message.Message, path: str = "") -> list[str]:
    """Paths of every set field numbered 100 or more, at any depth."""
    found = []
    for field, value in msg.ListFields():
        where = f"{path}{field.name}"
        if field.number >= ADDITIONS_START:
            found.append(where)
        else:
            for item in _ojs_children(field, value):
                found.extend(additions(item, f"{where}."))
    return found


def official_view(msg: message.Message) -> message.Message:
    """The message as an official client decodes it: every addition dropped."""
    for field, value in msg.ListFields():
        if field.number >= ADDITIONS_START:
            msg.ClearField(field.name)
        else:
            for item in _ojs_children(field, value):
                official_view(item)
    return msg


class OfficialStub:
    def __init__(self, stub: service_pb2_grpc.OJSServiceStub) -> None:
        self._stub = stub

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(request: message.Message, **kwargs: Any) -> Any:
            assert not additions(request), f"{name} request sets additions: {additions(request)}"
            result = method(request, **kwargs)
            if isinstance(result, grpc.aio.UnaryStreamCall):
                return _stream(result)
            return _unary(result)

        return call


async def _unary(call: Any) -> Any:
    return official_view(await call)


async def _stream(call: Any) -> AsyncIterator[Any]:
    async for item in call:
        yield official_view(item)


OFFICIAL_RPCS = {
    "Manifest", "Health", "Enqueue", "EnqueueBatch", "GetJob", "CancelJob", "Fetch", "Ack", "Nack", "Heartbeat",
    "StreamJobs", "StreamEvents", "ListQueues", "QueueStats", "PauseQueue", "ResumeQueue", "ListDeadLetter",
    "RetryDeadLetter", "DeleteDeadLetter", "RegisterCron", "UnregisterCron", "ListCron", "CreateWorkflow",
    "GetWorkflow", "CancelWorkflow",
}  # fmt: skip


@pytest.fixture
async def official(grpc_target: str) -> AsyncIterator[OfficialStub]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield OfficialStub(service_pb2_grpc.OJSServiceStub(channel))


def values(items: list[Any]) -> list[struct_pb2.Value]:
    out = struct_pb2.ListValue()
    out.extend(items)
    return list(out.values)


def struct(data: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


def ms(ts: Any) -> int:
    return int(ts.seconds * 1000 + ts.nanos // 1_000_000)


def test_the_official_rpcs_are_all_in_the_service() -> None:
    methods = {m.name for m in service_pb2.DESCRIPTOR.services_by_name["OJSService"].methods}
    assert methods >= OFFICIAL_RPCS


async def test_discovery(official: OfficialStub) -> None:
    manifest = await official.Manifest(S.ManifestRequest())
    assert manifest.ojs_version == "1.0" and manifest.conformance_level == 4
    assert set(manifest.protocols) == {"http", "grpc"} and manifest.backend == "redis"
    assert "urn:ojs:ext:progress" in manifest.extensions
    health = await official.Health(S.HealthRequest())
    assert health.status == S.HEALTH_STATUS_OK and health.HasField("timestamp")


async def test_job_lifecycle(official: OfficialStub) -> None:
    queue = new_queue("official")
    options = J.EnqueueOptions(
        queue=queue,
        priority=5,
        meta=struct({"tenant": "acme"}),
        retry=J.RetryPolicy(max_attempts=3, initial_interval=duration_pb2.Duration(nanos=10_000_000), jitter=False),
        tags=["a"],
    )
    sent_args = [{"to": "a@b.c", "n": 3}, "welcome", 7, True, None]
    enqueued = (
        await official.Enqueue(J.EnqueueRequest(type="email.send", args=values(sent_args), options=options))
    ).job
    assert is_uuid7(enqueued.id)
    assert (enqueued.type, enqueued.queue, enqueued.state) == ("email.send", queue, J.JOB_STATE_AVAILABLE)
    assert list(enqueued.args) == values(sent_args)
    assert dict(enqueued.meta) == {"tenant": "acme"}
    assert enqueued.priority == 5 and enqueued.max_attempts == 3 and list(enqueued.tags) == ["a"]
    assert enqueued.retry_policy.max_attempts == 3 and enqueued.specversion == "1.0"
    assert enqueued.HasField("created_at") and enqueued.HasField("enqueued_at")

    got = (await official.GetJob(J.GetJobRequest(job_id=enqueued.id))).job
    assert list(got.args) == values(sent_args) and got.state == J.JOB_STATE_AVAILABLE

    fetched = await official.Fetch(W.FetchRequest(queues=[queue], count=1, worker_id="official-w"))
    (job,) = fetched.jobs
    assert (job.id, job.state, job.attempt) == (enqueued.id, J.JOB_STATE_ACTIVE, 1)
    assert job.HasField("started_at") and list(job.args) == values(sent_args)

    before = int(time.time() * 1000)
    beat = await official.Heartbeat(
        W.HeartbeatRequest(id=job.id, worker_id="official-w", extend_by=duration_pb2.Duration(seconds=120))
    )
    assert beat.directed_state == W.WORKER_STATE_RUNNING
    assert ms(beat.new_deadline) >= before + 119_000

    nack = await official.Nack(
        W.NackRequest(job_id=job.id, error=J.JobError(code="io", message="disk", retryable=True))
    )
    assert nack.state == J.JOB_STATE_RETRYABLE and nack.HasField("next_attempt_at")
    failed = (await official.GetJob(J.GetJobRequest(job_id=job.id))).job
    assert [(e.code, e.message, e.attempt) for e in failed.errors] == [("io", "disk", 1)]

    for _ in range(100):
        again = (await official.Fetch(W.FetchRequest(queues=[queue], worker_id="official-w"))).jobs
        if again:
            break
        await asyncio.sleep(0.05)
    assert again[0].attempt == 2
    ack = await official.Ack(W.AckRequest(job_id=job.id, result=struct({"sent": True, "count": 2})))
    assert ack.acknowledged is True
    done = (await official.GetJob(J.GetJobRequest(job_id=job.id))).job
    assert done.state == J.JOB_STATE_COMPLETED and done.HasField("completed_at")
    assert dict(done.result) == {"sent": True, "count": 2}

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await official.Ack(W.AckRequest(job_id=job.id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.value).reason == "conflict"


async def test_cancel_batch_and_queues(official: OfficialStub) -> None:
    queue = new_queue("official")
    batch = await official.EnqueueBatch(
        J.EnqueueBatchRequest(
            jobs=[J.BatchJobEntry(type="b.one", args=values([1])), J.BatchJobEntry(type="b.two", args=values([2]))],
            default_options=J.EnqueueOptions(queue=queue),
        )
    )
    assert batch.count == 2 and [j.type for j in batch.jobs] == ["b.one", "b.two"]
    assert all(j.queue == queue for j in batch.jobs)

    cancelled = (await official.CancelJob(J.CancelJobRequest(job_id=batch.jobs[0].id, reason="no longer"))).job
    assert cancelled.state == J.JOB_STATE_CANCELLED

    listed = await official.ListQueues(Q.ListQueuesRequest(limit=1000))
    mine = [q for q in listed.queues if q.name == queue]
    assert len(mine) == 1 and mine[0].available_count == 1 and not mine[0].paused

    await official.PauseQueue(Q.PauseQueueRequest(queue=queue))
    paused = await official.QueueStats(Q.QueueStatsRequest(queue=queue))
    assert paused.queue == queue and paused.stats.available == 1 and paused.stats.paused is True
    assert (await official.Fetch(W.FetchRequest(queues=[queue]))).jobs == []
    await official.ResumeQueue(Q.ResumeQueueRequest(queue=queue))
    assert (await official.QueueStats(Q.QueueStatsRequest(queue=queue))).stats.paused is False

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await official.GetJob(J.GetJobRequest(job_id=str(uuid.uuid4())))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unique_key_names_dimensions(official: OfficialStub) -> None:
    queue = new_queue("official")
    unique = J.UniquePolicy(key=["type", "args"], on_conflict=J.UNIQUE_CONFLICT_ACTION_IGNORE)
    request = J.EnqueueRequest(
        type="report.build", args=values([{"id": 1}]), options=J.EnqueueOptions(queue=queue, unique=unique)
    )
    first = (await official.Enqueue(request)).job
    second = (await official.Enqueue(request)).job
    assert second.id == first.id
    read = (await official.GetJob(J.GetJobRequest(job_id=first.id))).job.unique_policy
    assert list(read.key) == ["type", "args"] and read.on_conflict == J.UNIQUE_CONFLICT_ACTION_IGNORE
    assert J.JOB_STATE_AVAILABLE in read.states
    other = J.EnqueueRequest()
    other.CopyFrom(request)
    other.args[0].struct_value["id"] = 2
    assert (await official.Enqueue(other)).job.id != first.id

    by_arg = J.UniquePolicy(key=["type", "args"], args_keys=["id"], on_conflict=J.UNIQUE_CONFLICT_ACTION_REJECT)
    keyed = J.EnqueueRequest(
        type="report.keyed", args=values([{"id": 1, "at": 1}]), options=J.EnqueueOptions(queue=queue, unique=by_arg)
    )
    await official.Enqueue(keyed)
    keyed.args[0].struct_value["at"] = 2
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await official.Enqueue(keyed)
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_dead_letter(official: OfficialStub) -> None:
    queue = new_queue("official")
    retry = J.RetryPolicy(max_attempts=1, on_exhaustion="dead_letter")
    job = (
        await official.Enqueue(J.EnqueueRequest(type="dl.job", options=J.EnqueueOptions(queue=queue, retry=retry)))
    ).job
    (fetched,) = (await official.Fetch(W.FetchRequest(queues=[queue]))).jobs
    nack = await official.Nack(W.NackRequest(job_id=fetched.id, error=J.JobError(code="fatal", message="x")))
    assert nack.state == J.JOB_STATE_DISCARDED

    listed = await official.ListDeadLetter(Q.ListDeadLetterRequest(queue=queue, limit=10))
    assert [j.id for j in listed.jobs] == [job.id] and listed.total_count == 1
    retried = (await official.RetryDeadLetter(Q.RetryDeadLetterRequest(job_id=job.id))).job
    assert retried.state == J.JOB_STATE_AVAILABLE and retried.attempt == 0
    (again,) = (await official.Fetch(W.FetchRequest(queues=[queue]))).jobs
    await official.Nack(W.NackRequest(job_id=again.id, error=J.JobError(code="fatal", message="y")))
    await official.DeleteDeadLetter(Q.DeleteDeadLetterRequest(job_id=job.id))
    assert (await official.ListDeadLetter(Q.ListDeadLetterRequest(queue=queue))).jobs == []


async def test_cron(official: OfficialStub) -> None:
    name = f"official-{uuid.uuid4().hex[:8]}"
    queue = new_queue("official")
    registered = await official.RegisterCron(
        S.RegisterCronRequest(
            name=name,
            cron="0 9 * * *",
            timezone="America/New_York",
            type="reports.generate",
            args=values(["daily"]),
            options=J.EnqueueOptions(queue=queue),
        )
    )
    assert registered.name == name and ms(registered.next_run_at) > time.time() * 1000
    (entry,) = [e for e in (await official.ListCron(S.ListCronRequest())).entries if e.name == name]
    assert (entry.cron, entry.timezone, entry.type) == ("0 9 * * *", "America/New_York", "reports.generate")
    assert list(entry.args) == values(["daily"]) and entry.options.queue == queue
    assert ms(entry.next_run_at) == ms(registered.next_run_at)
    await official.UnregisterCron(S.UnregisterCronRequest(name=name))
    assert [e for e in (await official.ListCron(S.ListCronRequest())).entries if e.name == name] == []


async def test_workflow(official: OfficialStub) -> None:
    queue = new_queue("official")
    steps = [
        F.WorkflowStep(id="extract", type="etl.extract", args=values([1]), options=J.EnqueueOptions(queue=queue)),
        F.WorkflowStep(id="load", type="etl.load", depends_on=["extract"], options=J.EnqueueOptions(queue=queue)),
    ]
    created = (await official.CreateWorkflow(F.CreateWorkflowRequest(name="etl", steps=steps))).workflow
    assert is_uuid7(created.id) and created.name == "etl" and created.state == F.WORKFLOW_STATE_RUNNING
    assert [(s.id, s.type, list(s.depends_on)) for s in created.steps] == [
        ("extract", "etl.extract", []),
        ("load", "etl.load", ["extract"]),
    ]
    (first,) = (await official.Fetch(W.FetchRequest(queues=[queue]))).jobs
    assert first.id == created.steps[0].job_id
    await official.Ack(W.AckRequest(job_id=first.id))
    read = (await official.GetWorkflow(F.GetWorkflowRequest(workflow_id=created.id))).workflow
    assert read.steps[0].state == F.WORKFLOW_STEP_STATE_COMPLETED
    cancelled = (await official.CancelWorkflow(F.CancelWorkflowRequest(workflow_id=created.id))).workflow
    assert cancelled.state == F.WORKFLOW_STATE_CANCELLED


async def test_streams(official: OfficialStub) -> None:
    queue = new_queue("official")
    jobs = official.StreamJobs(W.StreamJobsRequest(queues=[queue], worker_id="official-s", max_concurrent=1))
    events = official.StreamEvents(events_pb2.StreamEventsRequest(queues=[queue]))
    next_event = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.3)
    job = (await official.Enqueue(J.EnqueueRequest(type="stream.job", options=J.EnqueueOptions(queue=queue)))).job

    pushed = await asyncio.wait_for(anext(jobs), timeout=10)
    assert pushed.id == job.id and pushed.state == J.JOB_STATE_ACTIVE
    event = await asyncio.wait_for(next_event, timeout=10)
    assert (event.type, event.job_id, event.queue) == ("job.enqueued", job.id, queue)
    assert event.HasField("timestamp") and event.data["queue"] == queue
    await official.Ack(W.AckRequest(job_id=job.id))
    await jobs.aclose()
    await events.aclose()


def test_every_official_rpc_is_exercised() -> None:
    # The names used by the tests above, read from their source so the list cannot drift silently.
    source = Path(__file__).read_text()
    used = {name for name in OFFICIAL_RPCS if f"official.{name}(" in source}
    assert used == OFFICIAL_RPCS


async def test_a_request_that_does_not_decode_is_invalid_argument(grpc_target: str) -> None:
    # Bytes no Enqueue message decodes from (a truncated length-delimited field), as a broken client may send.
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        call = channel.unary_unary(
            "/ojs.v1.OJSService/Enqueue",
            request_serializer=lambda raw: raw,
            response_deserializer=J.EnqueueResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(b"\x0a\xff\xff\xff\x0f")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
