"""InProcessClient and ChannelClient against a tiny servicer: same responses, same errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import orjson
import pytest
from grpc_status import rpc_status
from ojs.v1 import events_pb2, job_pb2, service_pb2, service_pb2_grpc, worker_pb2, workflow_pb2

from gateway.client import SERVICE, ChannelClient, InProcessClient, OJSClient, RpcStatusError
from tests.gateway.conftest import JOB_ID, MEDIA_TYPE, FakeClient, MakeClient, fresh_job, rich_status, ts


async def test_every_rpc_is_answered_by_every_adapter() -> None:
    # Built from the service descriptor: nothing to write by hand when an RPC is added.
    # Async: an aio channel needs the running loop (a sync test finds none after any test that ran asyncio.run).
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    adapters: list[OJSClient] = [ChannelClient(channel), InProcessClient(tiny_servicer()), FakeClient()]
    for adapter in adapters:
        missing = [method.name for method in SERVICE.methods if not callable(getattr(adapter, method.name, None))]
        assert missing == [], type(adapter).__name__
    await channel.close()
    assert {"StreamJobs", "StreamEvents"} <= {method.name for method in SERVICE.methods if method.server_streaming}


WORKFLOW_ID = "019539a4-b68c-7def-8000-0000000f1000"


def tiny_workflow(**fields) -> workflow_pb2.Workflow:
    step = workflow_pb2.WorkflowStepStatus(
        id="0", type="wf.step", state=workflow_pb2.WORKFLOW_STEP_STATE_PENDING, job_id=JOB_ID, kind="step"
    )
    defaults = {
        "id": WORKFLOW_ID,
        "name": "tiny",
        "type": "chain",
        "state": workflow_pb2.WORKFLOW_STATE_RUNNING,
        "steps": [step],
        "steps_total": 1,
        "created_at": ts("2026-02-12T10:30:00Z"),
    }
    return workflow_pb2.Workflow(**{**defaults, **fields})


class TinyServicer(service_pb2_grpc.OJSServiceServicer):
    """Answers like the real servicer: rich statuses through context.abort."""

    def __init__(self) -> None:
        self.metadata: dict[str, str] = {}
        self.stream_cancelled: bool | None = None
        self.workflow_json = b""

    async def GetJob(self, request, context):
        self.metadata = dict(context.invocation_metadata())
        if request.job_id == JOB_ID:
            return job_pb2.GetJobResponse(job=fresh_job())
        status = rich_status(
            grpc.StatusCode.NOT_FOUND,
            "not_found",
            f"job '{request.job_id}' not found",
            request_id=self.metadata.get("x-ojs-request-id", ""),
        )
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def Health(self, request, context):
        raise RuntimeError("the servicer has a bug")

    async def Manifest(self, request, context):
        # Ending a call with set_code and no abort is also an error.
        context.set_code(grpc.StatusCode.UNAVAILABLE)
        context.set_details("draining")
        return service_pb2.ManifestResponse()

    async def Fetch(self, request, context):
        status = rich_status(grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "queues must not be empty")
        try:
            await context.abort(status.code, status.details, status.trailing_metadata)
        finally:
            # Cleanup that raises must not hide the status the call was aborted with.
            raise ValueError("cleanup failed")

    async def SetWorkerDirective(self, request, context):
        worker = worker_pb2.WorkerInfo(
            worker_id=request.worker_id,
            state=worker_pb2.WORKER_STATE_RUNNING,
            directive=request.directive,
            last_heartbeat_at=ts("2026-02-12T10:30:15Z"),
            active_jobs=2,
        )
        return worker_pb2.SetWorkerDirectiveResponse(worker=worker)

    async def GetCron(self, request, context):
        if request.name == "nightly":
            entry = service_pb2.CronEntry(
                name="nightly",
                cron="@daily",
                timezone="UTC",
                enabled=True,
                job_template_json=b'{"type":"report.generate","args":[1.50]}',
                next_run_at=ts("2026-02-13T00:00:00Z"),
            )
            return service_pb2.GetCronResponse(entry=entry)
        status = rich_status(grpc.StatusCode.NOT_FOUND, "not_found", f"cron '{request.name}' not found")
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def ListWorkers(self, request, context):
        worker = worker_pb2.WorkerInfo(worker_id="w-1", state=worker_pb2.WORKER_STATE_QUIET)
        return worker_pb2.ListWorkersResponse(workers=[worker], total=1, next_cursor=request.cursor + "+")

    async def CreateWorkflow(self, request, context):
        self.workflow_json = request.workflow_json
        return workflow_pb2.CreateWorkflowResponse(workflow=tiny_workflow())

    async def GetWorkflow(self, request, context):
        if request.workflow_id == WORKFLOW_ID:
            return workflow_pb2.GetWorkflowResponse(workflow=tiny_workflow())
        status = rich_status(grpc.StatusCode.NOT_FOUND, "not_found", f"workflow '{request.workflow_id}' not found")
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def CancelWorkflow(self, request, context):
        workflow = tiny_workflow(state=workflow_pb2.WORKFLOW_STATE_CANCELLED, cancelled_at=ts("2026-02-12T10:31:00Z"))
        return workflow_pb2.CancelWorkflowResponse(workflow=workflow, steps_cancelled=1, steps_already_completed=0)

    async def AckBatch(self, request, context):
        results = [worker_pb2.SettleResult(job_id=entry.job_id, ok=True) for entry in request.entries]
        return worker_pb2.AckBatchResponse(results=results, settled=len(results))

    async def StreamJobs(self, request, context):
        try:
            while True:
                yield fresh_job()
        finally:
            self.stream_cancelled = context.cancelled()

    async def StreamEvents(self, request, context):
        for n in range(3):
            yield events_pb2.Event(id=f"evt_{n}")
        status = rich_status(grpc.StatusCode.UNAVAILABLE, "backend_unavailable", "stream lost", retryable=True)
        await context.abort(status.code, status.details, status.trailing_metadata)


def tiny_servicer() -> TinyServicer:
    # The generated stub marks every RPC abstract; at runtime the base class answers
    # UNIMPLEMENTED for the ones not overridden, which is what these tests rely on.
    return TinyServicer()  # type: ignore[abstract]


class TestInProcess:
    async def test_abort_becomes_the_error_envelope(self, make_client: MakeClient) -> None:
        servicer = tiny_servicer()
        client = await make_client(InProcessClient(servicer))

        resp = await client.get("/ojs/v1/jobs/missing", headers={"X-Request-Id": "req-tiny"})

        assert resp.status == 404
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "not_found" and error["message"] == "job 'missing' not found"
        assert error["retryable"] is False and error["request_id"] == "req-tiny"
        assert error["hint"] and error["docs_url"]
        assert servicer.metadata["x-ojs-request-id"] == "req-tiny"

    async def test_success(self, make_client: MakeClient) -> None:
        client = await make_client(InProcessClient(tiny_servicer()))
        resp = await client.get(f"/ojs/v1/jobs/{JOB_ID}")
        assert resp.status == 200
        assert (await resp.json(content_type=None))["job"]["id"] == JOB_ID

    async def test_error_matches_what_from_call_reads(self) -> None:
        with pytest.raises(grpc.RpcError) as info:
            await InProcessClient(tiny_servicer()).GetJob(job_pb2.GetJobRequest(job_id="x"))
        error = info.value
        assert isinstance(error, RpcStatusError)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        status = rpc_status.from_call(error)
        assert status is not None and status.message == error.details() == "job 'x' not found"

    async def test_escaped_exception_is_internal(self, make_client: MakeClient, caplog) -> None:
        client = await make_client(InProcessClient(tiny_servicer()))

        with caplog.at_level(logging.ERROR, logger="gateway"):
            with pytest.raises(RpcStatusError) as info:
                await InProcessClient(tiny_servicer()).Health(service_pb2.HealthRequest())
            resp = await client.post("/ojs/v1/workers/ack", json={"job_id": JOB_ID})

        assert info.value.code() == grpc.StatusCode.INTERNAL
        status = rpc_status.from_call(info.value)
        assert status is not None and status.details[0].TypeName() == "google.rpc.ErrorInfo"
        assert any("the servicer has a bug" in str(record.exc_info) for record in caplog.records)
        # Ack is not overridden: the generated base sets UNIMPLEMENTED before raising.
        assert resp.status == 501
        assert (await resp.json(content_type=None))["error"]["code"] == "unimplemented"

    async def test_set_code_without_abort(self) -> None:
        with pytest.raises(RpcStatusError) as info:
            await InProcessClient(tiny_servicer()).Manifest(service_pb2.ManifestRequest())
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and info.value.details() == "draining"

    async def test_abort_wins_over_a_later_exception(self) -> None:
        with pytest.raises(RpcStatusError) as info:
            await InProcessClient(tiny_servicer()).Fetch(worker_pb2.FetchRequest())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    async def test_stream(self) -> None:
        received: list[str] = []
        with pytest.raises(RpcStatusError) as info:
            async for event in InProcessClient(tiny_servicer()).StreamEvents(events_pb2.StreamEventsRequest()):
                received.append(event.id)
        assert received == ["evt_0", "evt_1", "evt_2"]
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    async def test_stream_closed_by_the_consumer(self) -> None:
        servicer = tiny_servicer()
        stream = InProcessClient(servicer).StreamJobs(worker_pb2.StreamJobsRequest())
        async for job in stream:
            assert job.id == JOB_ID
            break
        assert stream.cancel() is True
        assert stream.cancelled() and stream.done() and stream.cancel() is False
        for _ in range(100):
            if servicer.stream_cancelled is not None:
                break
            await asyncio.sleep(0.01)
        # The servicer's cleanup ran and saw its context cancelled.
        assert servicer.stream_cancelled is True

    async def test_stream_read_until_eof(self) -> None:
        call = InProcessClient(tiny_servicer()).StreamEvents(events_pb2.StreamEventsRequest())
        assert [(await call.read()).id for _ in range(3)] == ["evt_0", "evt_1", "evt_2"]
        with pytest.raises(RpcStatusError):
            await call.read()
        assert call.done() and not call.cancelled()

    async def test_stream_of_an_rpc_the_servicer_lacks(self) -> None:
        bare = service_pb2_grpc.OJSServiceServicer()  # type: ignore[abstract]
        with pytest.raises(RpcStatusError) as info:
            async for _ in InProcessClient(bare).StreamEvents(events_pb2.StreamEventsRequest()):
                pass
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED

    async def test_default_metadata_comes_first(self) -> None:
        servicer = tiny_servicer()
        client = InProcessClient(servicer, metadata=[("authorization", "Bearer k")])
        await client.GetJob(job_pb2.GetJobRequest(job_id=JOB_ID), metadata=[("x-ojs-request-id", "r1")])
        assert servicer.metadata == {"authorization": "Bearer k", "x-ojs-request-id": "r1"}


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    service_pb2_grpc.add_OJSServiceServicer_to_server(tiny_servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(None)


async def test_channel_and_in_process_render_the_same(make_client: MakeClient, channel: grpc.aio.Channel) -> None:
    over_channel = await make_client(ChannelClient(channel))
    in_process = await make_client(InProcessClient(tiny_servicer()))
    bodies = []
    for client in (over_channel, in_process):
        found = await client.get(f"/ojs/v1/jobs/{JOB_ID}")
        missing = await client.get("/ojs/v1/jobs/nope", headers={"X-Request-Id": "same"})
        assert (found.status, missing.status) == (200, 404)
        bodies.append((await found.read(), await missing.read()))
    assert bodies[0] == bodies[1]


async def test_worker_registry_over_both_clients(make_client: MakeClient, channel: grpc.aio.Channel) -> None:
    over_channel = await make_client(ChannelClient(channel))
    in_process = await make_client(InProcessClient(tiny_servicer()))
    bodies = []
    for client in (over_channel, in_process):
        quieted = await client.post("/ojs/v1/admin/workers/w-9/quiet")
        listed = await client.get("/ojs/v1/admin/workers?cursor=c")
        assert (quieted.status, listed.status) == (200, 200)
        bodies.append((await quieted.json(content_type=None), await listed.json(content_type=None)))
    assert bodies[0] == bodies[1]
    quieted_body, listed_body = bodies[0]
    assert quieted_body["worker"]["worker_id"] == "w-9" and quieted_body["worker"]["directive"] == "quiet"
    assert listed_body["items"][0]["state"] == "quiet"
    assert listed_body["pagination"]["next_cursor"] == "c+"


async def test_get_cron_over_both_clients(make_client: MakeClient, channel: grpc.aio.Channel) -> None:
    over_channel = await make_client(ChannelClient(channel))
    in_process = await make_client(InProcessClient(tiny_servicer()))
    bodies = []
    for client in (over_channel, in_process):
        found = await client.get("/ojs/v1/cron/nightly")
        missing = await client.get("/ojs/v1/cron/gone", headers={"X-Request-Id": "same"})
        assert (found.status, missing.status) == (200, 404)
        bodies.append((await found.read(), await missing.read()))
    assert bodies[0] == bodies[1]
    assert b'"job_template":{"type":"report.generate","args":[1.50]}' in bodies[0][0]


async def test_workflows_over_both_clients(make_client: MakeClient) -> None:
    servicers = [tiny_servicer(), tiny_servicer()]
    server = grpc.aio.server()
    service_pb2_grpc.add_OJSServiceServicer_to_server(servicers[0], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        over_channel = await make_client(ChannelClient(channel))
        in_process = await make_client(InProcessClient(servicers[1]))
        body = b'{"type":"chain","name":"tiny","steps":[{"type":"wf.step","args":[18446744073709551617]}]}'
        bodies = []
        for client in (over_channel, in_process):
            created = await client.post("/ojs/v1/workflows", data=body, headers={"Content-Type": MEDIA_TYPE})
            found = await client.get(f"/ojs/v1/workflows/{WORKFLOW_ID}")
            missing = await client.get("/ojs/v1/workflows/nope", headers={"X-Request-Id": "same"})
            cancelled = await client.delete(f"/ojs/v1/workflows/{WORKFLOW_ID}")
            assert (created.status, found.status, missing.status, cancelled.status) == (201, 200, 404, 200)
            bodies.append([await resp.read() for resp in (created, found, missing, cancelled)])
    finally:
        await channel.close()
        await server.stop(None)
    assert bodies[0] == bodies[1]
    assert [servicer.workflow_json for servicer in servicers] == [body, body]
    cancelled_workflow = orjson.loads(bodies[0][3])["workflow"]
    assert cancelled_workflow["state"] == "cancelled" and cancelled_workflow["steps_cancelled"] == 1


async def test_channel_stream(channel: grpc.aio.Channel) -> None:
    received: list[str] = []
    with pytest.raises(grpc.RpcError) as info:
        async for event in ChannelClient(channel).StreamEvents(events_pb2.StreamEventsRequest()):
            received.append(event.id)
    assert received == ["evt_0", "evt_1", "evt_2"]
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_unreachable_server_is_503(make_client: MakeClient) -> None:
    dead = grpc.aio.insecure_channel("127.0.0.1:1")
    try:
        client = await make_client(ChannelClient(dead, timeout_s=5))
        resp = await asyncio.wait_for(client.get(f"/ojs/v1/jobs/{JOB_ID}"), 10)
        assert resp.status == 503
        assert resp.headers["Retry-After"].isdigit()
        assert (await resp.json(content_type=None))["error"]["code"] == "backend_unavailable"
    finally:
        await dead.close()


async def test_an_rpc_without_client_code(channel: grpc.aio.Channel) -> None:
    # AckBatch has no line of its own in gateway/client.py: both adapters take it from the descriptor.
    request = worker_pb2.AckBatchRequest(entries=[worker_pb2.SettleEntry(job_id=JOB_ID)])
    replies = [
        await ChannelClient(channel).AckBatch(request, metadata=[("x-ojs-request-id", "r")]),
        await InProcessClient(tiny_servicer()).AckBatch(request, metadata=[("x-ojs-request-id", "r")]),
    ]
    assert replies[0] == replies[1]
    assert replies[0].settled == 1 and replies[0].results[0].job_id == JOB_ID


async def test_channel_stream_cancelled(channel: grpc.aio.Channel) -> None:
    call = ChannelClient(channel).StreamJobs(worker_pb2.StreamJobsRequest())
    async for job in call:
        assert job.id == JOB_ID
        break
    assert call.cancel() is True
    assert call.cancelled()
