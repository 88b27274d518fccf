"""The progress RPCs (urn:ojs:ext:progress): messages to the progress service and back, for the servicer."""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf import struct_pb2
from ojs.v1 import progress_pb2

from server.domain.progress import ProgressReport, parse_report
from server.domain.states import JobState
from server.model.progress import ProgressRow
from server.rpc.convert import STATE_TO_PROTO, decode_json, struct_to_dict, timestamp
from server.service.progress import ProgressService


def report(request: progress_pb2.ReportProgressRequest) -> ProgressReport:
    if request.data_json:
        data: Any = decode_json(request.data_json, field="data_json")
    elif request.HasField("data"):
        data = struct_to_dict(request.data, field="data")
    else:
        data = None
    if request.checkpoint_json:
        checkpoint: Any = decode_json(request.checkpoint_json, field="checkpoint_json")
    elif request.HasField("checkpoint"):
        checkpoint = struct_to_dict(request.checkpoint, field="checkpoint")
    else:
        checkpoint = None
    return parse_report(
        job_id=request.job_id,
        progress=request.progress if request.HasField("progress") else None,
        percentage=request.percentage if request.HasField("percentage") else None,
        message=request.message or None,
        data=data,
        worker_id=request.worker_id,
        lease_token=request.lease_token if request.HasField("lease_token") else None,
        checkpoint=checkpoint,
    )


def job_progress(row: ProgressRow) -> progress_pb2.JobProgress:
    message = progress_pb2.JobProgress(
        job_id=row.job_id, state=STATE_TO_PROTO[row.state], attempt=row.attempt, type=row.type
    )
    progress = row.progress
    if progress is not None:
        if progress.value is not None:
            message.progress = progress.value
        message.message = progress.message
        message.updated_at.FromMilliseconds(progress.updated_at_ms)
        if progress.data_json:
            message.data_json = progress.data_json
            data = orjson.loads(progress.data_json)
            if isinstance(data, dict):
                struct = struct_pb2.Struct()
                struct.update(data)
                message.data.CopyFrom(struct)
    return message


class ProgressRpcs:
    """ReportProgress, GetJobProgress, GetWorkflowProgress; the servicer maps their errors."""

    def __init__(self, service: ProgressService) -> None:
        self._service = service

    async def report(self, request: progress_pb2.ReportProgressRequest) -> progress_pb2.ReportProgressResponse:
        outcome = await self._service.report(report(request))
        response = progress_pb2.ReportProgressResponse(accepted=outcome.accepted, progress=job_progress(outcome.row))
        if outcome.lease_expires_at_ms is not None:
            response.lease_expires_at.CopyFrom(timestamp(outcome.lease_expires_at_ms))
        return response

    async def job(self, request: progress_pb2.GetJobProgressRequest) -> progress_pb2.GetJobProgressResponse:
        row = await self._service.job(request.job_id)
        return progress_pb2.GetJobProgressResponse(progress=job_progress(row))

    async def workflow(
        self, request: progress_pb2.GetWorkflowProgressRequest
    ) -> progress_pb2.GetWorkflowProgressResponse:
        view = await self._service.workflow(request.workflow_id)
        response = progress_pb2.GetWorkflowProgressResponse(
            workflow_id=view.workflow_id, type=view.type, progress=view.progress
        )
        for step, row in view.steps:
            item = response.steps.add(step_id=step.step_id, kind=step.kind)
            if row is not None:
                item.job.CopyFrom(job_progress(row))
            else:
                item.job.job_id = step.job_id
                if step.state is not None:
                    item.job.state = STATE_TO_PROTO[step.state]
            if step.state is JobState.COMPLETED:
                # A finished step is all done, whether or not its worker reported along the way (§9.2).
                item.job.progress = 1.0
        return response
