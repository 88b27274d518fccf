"""The progress RPCs and gRPC reflection (v1 and v1alpha) of the running application."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import struct_pb2
from grpc_reflection.v1alpha import reflection_pb2
from ojs.v1 import job_pb2, progress_pb2, worker_pb2, workflow_pb2

from tests.rpc.rich_status import error_info
from tests.support import new_queue

P = progress_pb2


async def active_job(stub: Any, queue: str, worker: str = "w-prog") -> job_pb2.Job:
    await stub.Enqueue(job_pb2.EnqueueRequest(type="p.job", options=job_pb2.EnqueueOptions(queue=queue)))
    response: worker_pb2.FetchResponse = await stub.Fetch(worker_pb2.FetchRequest(queues=[queue], worker_id=worker))
    (job,) = response.jobs
    return job


async def test_report_and_read_over_grpc(stub: Any) -> None:
    job = await active_job(stub, new_queue("prog"))
    data = struct_pb2.Struct()
    data.update({"phase": "copy", "files": 3})

    reported = await stub.ReportProgress(
        P.ReportProgressRequest(
            job_id=job.id,
            percentage=62.5,
            message="copying",
            data=data,
            worker_id="w-prog",
            lease_token=job.lease_token,
        )
    )

    assert reported.accepted and reported.HasField("lease_expires_at")
    assert reported.progress.progress == 0.625 and reported.progress.message == "copying"
    assert dict(reported.progress.data) == {"phase": "copy", "files": 3}
    assert orjson.loads(reported.progress.data_json) == {"phase": "copy", "files": 3}
    read = (await stub.GetJobProgress(P.GetJobProgressRequest(job_id=job.id))).progress
    assert read.state == job_pb2.JOB_STATE_ACTIVE and read.progress == 0.625 and read.attempt == 1
    got = (await stub.GetJob(job_pb2.GetJobRequest(job_id=job.id))).job
    assert got.progress == 0.625 and got.progress_message == "copying" and got.HasField("progress_updated_at")


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [({}, "invalid_request"), ({"data_json": b"[1]"}, "invalid_request"), ({"data_json": b"{"}, "invalid_payload")],
)
async def test_bad_reports_are_invalid_argument(stub: Any, request_fields: dict[str, Any], reason: str) -> None:
    job = await active_job(stub, new_queue("prog"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ReportProgress(P.ReportProgressRequest(job_id=job.id, **request_fields))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == reason


async def test_another_workers_report_is_failed_precondition(stub: Any) -> None:
    job = await active_job(stub, new_queue("prog"), worker="w-a")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ReportProgress(P.ReportProgressRequest(job_id=job.id, progress=0.5, worker_id="w-b"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.value).reason == "conflict"


async def test_workflow_progress_of_a_group_and_a_batch(stub: Any) -> None:
    queue = new_queue("prog")
    jobs = [{"type": "g.job", "args": [i], "options": {"queue": queue}} for i in range(4)]
    group = (
        await stub.CreateWorkflow(
            workflow_pb2.CreateWorkflowRequest(workflow_json=orjson.dumps({"type": "group", "jobs": jobs}))
        )
    ).workflow
    fetched = (await stub.Fetch(worker_pb2.FetchRequest(queues=[queue], count=2))).jobs
    await stub.Ack(worker_pb2.AckRequest(job_id=fetched[0].id))
    await stub.ReportProgress(P.ReportProgressRequest(job_id=fetched[1].id, progress=0.5))

    progress = await stub.GetWorkflowProgress(P.GetWorkflowProgressRequest(workflow_id=group.id))

    assert progress.type == "group" and progress.progress == pytest.approx((1.0 + 0.5) / 4)
    assert [s.job.progress if s.job.HasField("progress") else None for s in progress.steps] == [1.0, 0.5, None, None]

    batch_queue = new_queue("prog")
    batch = {
        "type": "batch",
        "jobs": [{"type": "b.job", "args": [i], "options": {"queue": batch_queue}} for i in range(2)],
        "callbacks": {"on_complete": {"type": "b.done", "args": [], "options": {"queue": new_queue("prog")}}},
    }
    created = (
        await stub.CreateWorkflow(workflow_pb2.CreateWorkflowRequest(workflow_json=orjson.dumps(batch)))
    ).workflow
    (first,) = (await stub.Fetch(worker_pb2.FetchRequest(queues=[batch_queue]))).jobs
    await stub.ReportProgress(P.ReportProgressRequest(job_id=first.id, progress=0.9))
    assert (await stub.GetWorkflowProgress(P.GetWorkflowProgressRequest(workflow_id=created.id))).progress == 0.0
    await stub.Ack(worker_pb2.AckRequest(job_id=first.id))
    read = await stub.GetWorkflowProgress(P.GetWorkflowProgressRequest(workflow_id=created.id))
    assert read.progress == 0.5
    assert [s.kind for s in read.steps] == ["step", "step", "on_complete"]


@pytest.mark.parametrize("service", ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"])
async def test_reflection_is_served_in_both_versions(grpc_target: str, service: str) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        call = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="ojs.v1.OJSService"),
        ]
        replies = [reply async for reply in call(iter(requests))]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"ojs.v1.OJSService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto
