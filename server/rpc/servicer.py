"""`ojs.v1.OJSService`: translate messages, call the service layer, map errors."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import orjson
from google.protobuf import struct_pb2
from ojs.v1 import (
    events_pb2,
    job_pb2,
    progress_pb2,
    queue_pb2,
    service_pb2,
    service_pb2_grpc,
    worker_pb2,
    workflow_pb2,
)

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.job import StoredJob
from server.model.records import QueueRow, WorkerRow
from server.observability import tracing
from server.observability.logs import settled_record
from server.observability.metrics import ProcessMetrics
from server.rpc import convert, spans
from server.rpc.calls import CallFrame, Context, log_job_records, rpc
from server.rpc.manifest import manifest_response
from server.rpc.progress import ProgressRpcs
from server.rpc.streams import StreamRpcs, fetch_reply, too_large_to_deliver
from server.service.admission import Admission
from server.service.cron import CronService
from server.service.dead_letter import DeadLetterService
from server.service.events import EventFilter, EventService
from server.service.jobs import JobService
from server.service.progress import ProgressService
from server.service.queues import QueueService
from server.service.system import IMPLEMENTATION_VERSION, SystemService
from server.service.workers import HeartbeatRequest, WorkerService
from server.service.workflows import WorkflowService

_WORKER_STATE_NAMES = {
    worker_pb2.WORKER_STATE_RUNNING: "running",
    worker_pb2.WORKER_STATE_QUIET: "quiet",
    worker_pb2.WORKER_STATE_TERMINATE: "terminate",
}
_WORKER_STATES = {name: value for value, name in _WORKER_STATE_NAMES.items()}


def _worker_info(row: WorkerRow) -> worker_pb2.WorkerInfo:
    info = worker_pb2.WorkerInfo(
        worker_id=row.worker_id,
        state=_WORKER_STATES.get(row.state, worker_pb2.WORKER_STATE_UNSPECIFIED),
        directive=_WORKER_STATES.get(row.directive, worker_pb2.WORKER_STATE_RUNNING),
        active_jobs=row.active_jobs,
    )
    if row.last_heartbeat_ms:
        info.last_heartbeat_at.CopyFrom(convert.timestamp(row.last_heartbeat_ms))
    return info


def _queue_info(row: QueueRow) -> queue_pb2.QueueInfo:
    info = queue_pb2.QueueInfo(
        name=row.name, paused=row.paused, available_count=row.available, created_at=convert.timestamp(row.created_at_ms)
    )
    if row.paused_at_ms is not None:
        info.paused_at.CopyFrom(convert.timestamp(row.paused_at_ms))
    return info


class OJSServicer(service_pb2_grpc.OJSServiceServicer):
    def __init__(
        self,
        jobs: JobService,
        events: EventService,
        system: SystemService,
        workers: WorkerService,
        dead_letter: DeadLetterService,
        cron: CronService,
        workflows: WorkflowService,
        queues: QueueService,
        progress: ProgressService,
        *,
        admission: Admission | None = None,
        metrics: ProcessMetrics | None = None,
    ) -> None:
        self._jobs = jobs
        self._events = events
        self._system = system
        self._workers = workers
        self._dead_letter = dead_letter
        self._cron = cron
        self._workflows = workflows
        self._queues = queues
        self._progress = ProgressRpcs(progress)
        self._streams = StreamRpcs(jobs, events)
        # Shared with the admin servicer: one gate, one set of metrics, one drain for every call of the process.
        self.frame = CallFrame(admission, metrics)

    @property
    def admission(self) -> Admission | None:
        """The gate its calls pass; other services of the process share it."""
        return self.frame.admission

    def stop_waiting(self) -> None:
        """Shutdown: end long polls and job streams promptly."""
        self._jobs.stop_waiting()

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new calls, end long polls and streams, and wait for the calls running; False on timeout."""
        self.frame.start_draining()
        self.stop_waiting()
        try:
            async with asyncio.timeout(timeout_s):
                await self.frame.idle.wait()
                await self._jobs.flush()
        except TimeoutError:
            return False
        return True

    # ---- System ----

    @rpc
    async def Manifest(self, request: service_pb2.ManifestRequest, context: Context) -> service_pb2.ManifestResponse:
        return manifest_response(self._system.manifest())

    @rpc
    async def Health(self, request: service_pb2.HealthRequest, context: Context) -> service_pb2.HealthResponse:
        report = await self._system.health()
        backend: dict[str, Any] = {"type": "redis", "status": "connected" if report.healthy else "disconnected"}
        if report.latency_ms is not None:
            backend["latency_ms"] = round(report.latency_ms, 3)
        if report.error:
            backend["error"] = report.error
        details = struct_pb2.Struct()
        details.update({"backend": backend})
        if report.overview is not None:
            overview = report.overview
            details.update(
                {
                    "queues": {"active": overview.queues_active, "paused": overview.queues_paused},
                    "workers": {"connected": overview.workers_connected, "stale": overview.workers_stale},
                }
            )
        if self.frame.draining:
            details.update({"lifecycle": "draining"})
        return service_pb2.HealthResponse(
            status=service_pb2.HEALTH_STATUS_OK if report.healthy else service_pb2.HEALTH_STATUS_UNHEALTHY,
            timestamp=convert.timestamp(now_ms()),
            details=details,
            version=IMPLEMENTATION_VERSION,
            uptime_seconds=report.uptime_seconds,
        )

    # ---- Jobs ----

    @rpc
    async def Enqueue(self, request: job_pb2.EnqueueRequest, context: Context) -> job_pb2.EnqueueResponse:
        envelope = convert.enqueue_envelope(request)
        tracer = tracing.TRACER
        if tracer is None:
            stored, deduplicated = await self._jobs.enqueue(envelope)
        else:
            metadata = context.invocation_metadata()
            stored, deduplicated = await spans.enqueue(tracer, envelope, metadata, self._jobs.enqueue)
        log_job_records(logging.DEBUG, "Job enqueued", [stored], context)
        return job_pb2.EnqueueResponse(job=convert.job(stored, json_only=request.json_only), deduplicated=deduplicated)

    @rpc
    async def EnqueueBatch(
        self, request: job_pb2.EnqueueBatchRequest, context: Context
    ) -> job_pb2.EnqueueBatchResponse:
        body = convert.batch_envelope(request)
        tracer = tracing.TRACER
        if tracer is None:
            results = await self._jobs.enqueue_batch(body)
        else:
            metadata = context.invocation_metadata()
            results = await spans.enqueue_batch(tracer, body, metadata, self._jobs.enqueue_batch)
        log_job_records(logging.DEBUG, "Job enqueued", [stored for stored, _ in results], context)
        if request.ids_only:
            jobs = [convert.job_id_and_state(stored) for stored, _ in results]
        else:
            jobs = [convert.job(stored, json_only=request.json_only) for stored, _ in results]
        return job_pb2.EnqueueBatchResponse(jobs=jobs, count=len(results))

    @rpc
    async def GetJob(self, request: job_pb2.GetJobRequest, context: Context) -> job_pb2.GetJobResponse:
        return job_pb2.GetJobResponse(job=convert.job(await self._jobs.get(request.job_id)))

    @rpc
    async def CancelJob(self, request: job_pb2.CancelJobRequest, context: Context) -> job_pb2.CancelJobResponse:
        previous, stored = await self._jobs.cancel(request.job_id, reason=request.reason)
        return job_pb2.CancelJobResponse(job=convert.job(stored), previous_state=convert.STATE_TO_PROTO[previous])

    @rpc
    async def ActivateJob(self, request: job_pb2.ActivateJobRequest, context: Context) -> job_pb2.ActivateJobResponse:
        return job_pb2.ActivateJobResponse(job=convert.job(await self._jobs.activate(request.job_id)))

    # ---- Workers ----

    @rpc
    async def Fetch(self, request: worker_pb2.FetchRequest, context: Context) -> worker_pb2.FetchResponse:
        started_ns = time.time_ns()
        jobs = await self._jobs.fetch(
            list(request.queues),
            count=request.count,
            worker_id=request.worker_id,
            visibility_timeout_ms=(
                request.visibility_timeout_ms if request.HasField("visibility_timeout_ms") else None
            ),
            wait_ms=request.wait_ms,
        )
        response, rest, broken = fetch_reply(jobs, json_only=request.json_only)
        if broken:
            await self._jobs.fail_undeliverable(broken, request.worker_id)
        if rest:
            # Claimed but left out of the reply: back to their queues now, not when their leases run out.
            await self._jobs.give_back(rest, request.worker_id)
            if not response.jobs:
                raise too_large_to_deliver(rest[0])
        if broken or rest:
            left_out = {stored.id for stored in [*broken, *rest]}
            jobs = [stored for stored in jobs if stored.id not in left_out]
        tracer = tracing.TRACER
        if tracer is not None:
            metadata = context.invocation_metadata()
            spans.fetched(tracer, request.queues, request.worker_id, jobs, started_ns, metadata)
        log_job_records(logging.DEBUG, "Job fetched by worker", jobs, context)
        return response

    @rpc
    async def Ack(self, request: worker_pb2.AckRequest, context: Context) -> worker_pb2.AckResponse:
        if request.result_json:
            convert.decode_json(request.result_json, field="result_json")
            result: bytes | None = request.result_json
        elif request.HasField("result"):
            result = orjson.dumps(convert.struct_to_dict(request.result, field="result"))
        else:
            result = None
        stored = await self._settle(
            "ack",
            request.job_id,
            context,
            functools.partial(
                self._jobs.ack,
                request.job_id,
                result_json=result,
                worker_id=request.worker_id,
                lease_token=request.lease_token if request.HasField("lease_token") else None,
            ),
        )
        return worker_pb2.AckResponse(acknowledged=True, job=convert.job(stored, json_only=request.json_only))

    @rpc
    async def AckBatch(self, request: worker_pb2.AckBatchRequest, context: Context) -> worker_pb2.AckBatchResponse:
        entries = [convert.settlement(entry, index, request.worker_id) for index, entry in enumerate(request.entries)]
        replies = await self._jobs.settle_batch(entries, return_jobs=request.return_jobs)
        results = [convert.settle_result(reply, json_only=request.json_only) for reply in replies]
        return worker_pb2.AckBatchResponse(results=results, settled=sum(result.ok for result in results))

    @rpc
    async def Nack(self, request: worker_pb2.NackRequest, context: Context) -> worker_pb2.NackResponse:
        stored = await self._settle(
            "nack",
            request.job_id,
            context,
            functools.partial(
                self._jobs.nack,
                request.job_id,
                convert.failure(
                    request.error,
                    retryable=request.retryable if request.HasField("retryable") else None,
                    requeue=request.requeue,
                ),
                worker_id=request.worker_id,
                lease_token=request.lease_token if request.HasField("lease_token") else None,
            ),
        )
        message = convert.job(stored, json_only=request.json_only)
        response = worker_pb2.NackResponse(state=message.state, job=message)
        if message.HasField("next_attempt_at"):
            response.next_attempt_at.CopyFrom(message.next_attempt_at)
        return response

    async def _settle(
        self, action: str, job_id: str, context: Context, call: Callable[[], Awaitable[StoredJob]]
    ) -> StoredJob:
        tracer = tracing.TRACER
        if tracer is None:
            stored = await call()
        else:
            stored = await spans.settle(tracer, action, job_id, context.invocation_metadata(), call)
        level, text, attributes = settled_record(stored)
        log_job_records(level, text, [stored], context, **attributes)
        return stored

    @rpc
    async def Heartbeat(self, request: worker_pb2.HeartbeatRequest, context: Context) -> worker_pb2.HeartbeatResponse:
        outcome = await self._workers.handle(
            HeartbeatRequest(
                id=request.id,
                worker_id=request.worker_id,
                active_job_ids=tuple(request.active_job_ids),
                extend_ms=convert.duration_ms(request.extend_by) if request.HasField("extend_by") else None,
                reported_state=_WORKER_STATE_NAMES.get(request.current_state, ""),
                lease_token=request.lease_token if request.HasField("lease_token") else None,
            )
        )
        response = worker_pb2.HeartbeatResponse(
            directed_state=_WORKER_STATES[outcome.directive],
            jobs_extended=outcome.extended,
            jobs_cancelled=outcome.cancelled,
            jobs_not_held=outcome.not_held,
            server_time=convert.timestamp(now_ms()),
        )
        if outcome.new_deadline_ms is not None:
            response.new_deadline.CopyFrom(convert.timestamp(outcome.new_deadline_ms))
        return response

    @rpc
    async def SetWorkerDirective(
        self, request: worker_pb2.SetWorkerDirectiveRequest, context: Context
    ) -> worker_pb2.SetWorkerDirectiveResponse:
        directive = _WORKER_STATE_NAMES.get(request.directive)
        if directive is None:
            raise OJSError(
                ErrorCode.INVALID_REQUEST,
                "directive must be RUNNING, QUIET or TERMINATE",
                details={"field": "directive"},
            )
        row = await self._workers.set_directive(request.worker_id, directive)
        return worker_pb2.SetWorkerDirectiveResponse(worker=_worker_info(row))

    @rpc
    async def ListWorkers(
        self, request: worker_pb2.ListWorkersRequest, context: Context
    ) -> worker_pb2.ListWorkersResponse:
        page = await self._workers.page(limit=request.limit, cursor=request.cursor)
        return worker_pb2.ListWorkersResponse(
            workers=[_worker_info(row) for row in page.items], next_cursor=page.next_cursor, total=page.total
        )

    # ---- Dead letter ----

    @rpc
    async def ListDeadLetter(
        self, request: queue_pb2.ListDeadLetterRequest, context: Context
    ) -> queue_pb2.ListDeadLetterResponse:
        page = await self._dead_letter.page(
            queue=request.queue, job_type=request.type, limit=request.limit, cursor=request.cursor
        )
        return queue_pb2.ListDeadLetterResponse(
            jobs=[convert.job(j) for j in page.items], total_count=page.total, next_cursor=page.next_cursor
        )

    @rpc
    async def RetryDeadLetter(
        self, request: queue_pb2.RetryDeadLetterRequest, context: Context
    ) -> queue_pb2.RetryDeadLetterResponse:
        return queue_pb2.RetryDeadLetterResponse(job=convert.job(await self._dead_letter.retry(request.job_id)))

    @rpc
    async def DeleteDeadLetter(
        self, request: queue_pb2.DeleteDeadLetterRequest, context: Context
    ) -> queue_pb2.DeleteDeadLetterResponse:
        await self._dead_letter.delete(request.job_id)
        return queue_pb2.DeleteDeadLetterResponse(job_id=request.job_id, deleted=True)

    # ---- Workflows ----

    @rpc
    async def CreateWorkflow(
        self, request: workflow_pb2.CreateWorkflowRequest, context: Context
    ) -> workflow_pb2.CreateWorkflowResponse:
        view = await self._workflows.create(convert.workflow_request(request))
        return workflow_pb2.CreateWorkflowResponse(workflow=convert.workflow(view))

    @rpc
    async def GetWorkflow(
        self, request: workflow_pb2.GetWorkflowRequest, context: Context
    ) -> workflow_pb2.GetWorkflowResponse:
        return workflow_pb2.GetWorkflowResponse(
            workflow=convert.workflow(await self._workflows.get(request.workflow_id))
        )

    @rpc
    async def CancelWorkflow(
        self, request: workflow_pb2.CancelWorkflowRequest, context: Context
    ) -> workflow_pb2.CancelWorkflowResponse:
        view, cancelled, completed = await self._workflows.cancel(request.workflow_id)
        return workflow_pb2.CancelWorkflowResponse(
            workflow=convert.workflow(view), steps_cancelled=cancelled, steps_already_completed=completed
        )

    # ---- Cron ----

    @rpc
    async def RegisterCron(
        self, request: service_pb2.RegisterCronRequest, context: Context
    ) -> service_pb2.RegisterCronResponse:
        body = convert.cron_registration(request)
        created, entry = await self._cron.register(body)
        message = convert.cron_entry(entry)
        response = service_pb2.RegisterCronResponse(name=entry.name, entry=message, created=created)
        if message.HasField("next_run_at"):
            response.next_run_at.CopyFrom(message.next_run_at)
        return response

    @rpc
    async def UnregisterCron(
        self, request: service_pb2.UnregisterCronRequest, context: Context
    ) -> service_pb2.UnregisterCronResponse:
        await self._cron.unregister(request.name)
        return service_pb2.UnregisterCronResponse(name=request.name)

    @rpc
    async def GetCron(self, request: service_pb2.GetCronRequest, context: Context) -> service_pb2.GetCronResponse:
        return service_pb2.GetCronResponse(entry=convert.cron_entry(await self._cron.get(request.name)))

    @rpc
    async def ListCron(self, request: service_pb2.ListCronRequest, context: Context) -> service_pb2.ListCronResponse:
        return service_pb2.ListCronResponse(entries=[convert.cron_entry(e) for e in await self._cron.entries()])

    # ---- Queues ----

    @rpc
    async def ListQueues(self, request: queue_pb2.ListQueuesRequest, context: Context) -> queue_pb2.ListQueuesResponse:
        page = await self._queues.page(limit=request.limit, cursor=request.cursor)
        return queue_pb2.ListQueuesResponse(
            queues=[_queue_info(row) for row in page.items], next_cursor=page.next_cursor, total=page.total
        )

    @rpc
    async def PauseQueue(self, request: queue_pb2.PauseQueueRequest, context: Context) -> queue_pb2.PauseQueueResponse:
        row = await self._queues.set_paused(request.queue, paused=True)
        return queue_pb2.PauseQueueResponse(queue=_queue_info(row))

    @rpc
    async def ResumeQueue(
        self, request: queue_pb2.ResumeQueueRequest, context: Context
    ) -> queue_pb2.ResumeQueueResponse:
        row = await self._queues.set_paused(request.queue, paused=False)
        return queue_pb2.ResumeQueueResponse(queue=_queue_info(row))

    @rpc
    async def QueueStats(self, request: queue_pb2.QueueStatsRequest, context: Context) -> queue_pb2.QueueStatsResponse:
        stats = await self._queues.stats(request.queue)
        return queue_pb2.QueueStatsResponse(
            queue=stats.name,
            stats=queue_pb2.QueueStatistics(
                available=stats.available,
                active=stats.active,
                scheduled=stats.scheduled,
                retryable=stats.retryable,
                dead=stats.dead,
                completed_last_hour=stats.completed_last_hour,
                failed_last_hour=stats.failed_last_hour,
                avg_duration_ms=stats.avg_duration_ms,
                avg_wait_ms=stats.avg_wait_ms,
                throughput_per_second=stats.throughput_per_second,
                paused=stats.paused,
                completed=stats.completed,
                discarded=stats.discarded,
                cancelled=stats.cancelled,
                pending=stats.pending,
            ),
        )

    # ---- Progress (urn:ojs:ext:progress) ----

    @rpc
    async def ReportProgress(
        self, request: progress_pb2.ReportProgressRequest, context: Any
    ) -> progress_pb2.ReportProgressResponse:
        return await self._progress.report(request)

    @rpc
    async def GetJobProgress(
        self, request: progress_pb2.GetJobProgressRequest, context: Any
    ) -> progress_pb2.GetJobProgressResponse:
        return await self._progress.job(request)

    @rpc
    async def GetWorkflowProgress(
        self, request: progress_pb2.GetWorkflowProgressRequest, context: Any
    ) -> progress_pb2.GetWorkflowProgressResponse:
        return await self._progress.workflow(request)

    # ---- Events ----

    @rpc
    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, context: Context
    ) -> events_pb2.ListEventsResponse:
        page = await self._events.list(
            EventFilter(
                types=list(request.types),
                queues=list(request.queues),
                job_types=list(request.job_types),
                job_id=request.job_id,
            ),
            after=request.after,
            limit=request.limit,
        )
        return events_pb2.ListEventsResponse(
            events=[convert.event(e) for e in page.events], cursor=page.cursor, has_more=page.has_more
        )

    # ---- Not yet implemented, by the level they belong to ----

    # ---- Streaming ----

    async def StreamJobs(
        self, request: worker_pb2.StreamJobsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[job_pb2.Job]:
        async for message in self._streams.jobs(request, context):
            yield message

    async def StreamJobBatches(
        self, request: worker_pb2.StreamJobBatchesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[worker_pb2.JobBatch]:
        async for batch in self._streams.job_batches(request, context):
            yield batch

    async def StreamEvents(
        self, request: events_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[events_pb2.Event]:
        async for event in self._streams.events(request, context):
            yield event
