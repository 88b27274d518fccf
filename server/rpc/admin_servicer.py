"""gRPC adapter of `ojs.v1.OJSAdminService`: translate, call the admin service, translate back."""

from __future__ import annotations

from typing import Any

from ojs.v1 import admin_pb2, admin_pb2_grpc, job_pb2

from server.domain.errors import invalid
from server.domain.retry import RetryPolicy
from server.domain.states import JobState
from server.model.admin import MinuteBucket, QueueSnapshot
from server.rpc import convert
from server.rpc.calls import CallFrame, rpc
from server.service.admin import AdminService, BulkAction, JobFilter, Stats

_PROTO_STATE = {v: k for k, v in convert.STATE_TO_PROTO.items()}
_BULK_ACTIONS = {
    admin_pb2.BULK_ACTION_RETRY: BulkAction.RETRY,
    admin_pb2.BULK_ACTION_CANCEL: BulkAction.CANCEL,
    admin_pb2.BULK_ACTION_DELETE: BulkAction.DELETE,
}
_BULK_PROTO = {v: k for k, v in _BULK_ACTIONS.items()}
_DEFAULT_MAX_ATTEMPTS = RetryPolicy().max_attempts


def _ms(value: Any, present: bool) -> int | None:
    return value.seconds * 1000 + value.nanos // 1_000_000 if present else None


def _state(value: job_pb2.JobState.ValueType, *, field: str) -> JobState:
    state = _PROTO_STATE.get(value)
    if state is None:
        raise invalid("a job state is required", field=field)
    return state


def job_filter(message: admin_pb2.JobFilter) -> JobFilter:
    return JobFilter(
        state=_state(message.state, field="filter.state"),
        queue=message.queue or None,
        type=message.type or None,
        since_ms=_ms(message.since, message.HasField("since")),
        until_ms=_ms(message.until, message.HasField("until")),
    )


def _throughput(minutes: list[MinuteBucket]) -> admin_pb2.Throughput:
    """From per-minute buckets, newest first; the newest (current) minute is still filling."""
    last = minutes[1].fields if len(minutes) > 1 else {}
    hour = minutes[1:61]
    completed = sum(b.fields.get("completed", 0) for b in hour)
    started = sum(b.fields.get("started", 0) for b in hour)
    return admin_pb2.Throughput(
        processed_per_minute=float(last.get("completed", 0)),
        failed_per_minute=float(last.get("failed", 0)),
        completed_last_hour=completed,
        failed_last_hour=sum(b.fields.get("failed", 0) for b in hour),
        avg_duration_ms=sum(b.fields.get("duration_ms", 0) for b in hour) / completed if completed else 0.0,
        avg_wait_ms=sum(b.fields.get("wait_ms", 0) for b in hour) / started if started else 0.0,
    )


def _counts(counts: dict[str, int]) -> admin_pb2.StateCounts:
    fields = admin_pb2.StateCounts.DESCRIPTOR.fields_by_name
    return admin_pb2.StateCounts(**{state: counts.get(state, 0) for state in fields})


def queue_summary(snapshot: QueueSnapshot) -> admin_pb2.QueueSummary:
    summary = admin_pb2.QueueSummary(
        name=snapshot.name,
        state="paused" if snapshot.paused_at_ms is not None else "active",
        paused=snapshot.paused_at_ms is not None,
        counts=_counts(snapshot.counts),
        throughput=_throughput(snapshot.minutes),
        config=admin_pb2.QueueConfig(concurrency=snapshot.concurrency, max_per_second=snapshot.max_per_second),
        created_at=convert.timestamp(snapshot.created_at_ms),
        total_completed=snapshot.totals["completed"],
        total_discarded=snapshot.totals["discarded"],
        total_cancelled=snapshot.totals["cancelled"],
    )
    if snapshot.paused_at_ms is not None:
        summary.paused_at.CopyFrom(convert.timestamp(snapshot.paused_at_ms))
    return summary


def _int(text: str) -> int:
    return int(text) if text.lstrip("-").isdigit() else 0


def _state_at(score: int, fields: dict[str, str]) -> int:
    """When the job entered its state: the score of a state index; read from the job for the sets scored otherwise."""
    if fields["state"] == "available" and fields["enqueued_at"]:
        return _int(fields["enqueued_at"])
    if fields["state"] == "active" and fields["started_at"]:
        return _int(fields["started_at"])
    return score


def job_row(score: int, job_id: str, fields: dict[str, str]) -> admin_pb2.JobRow:
    error = fields["error"]
    message = ""
    if error:
        decoded = convert.decode_json(error.encode(), field="error")
        if isinstance(decoded, dict):
            message = str(decoded.get("message", ""))
    state = JobState(fields["state"]) if fields["state"] in JobState.__members__.values() else None
    return admin_pb2.JobRow(
        id=job_id,
        type=fields["type"],
        queue=fields["queue"],
        state=convert.STATE_TO_PROTO[state] if state else job_pb2.JOB_STATE_UNSPECIFIED,
        priority=_int(fields["priority"]),
        attempt=_int(fields["attempt"]),
        # Without its own retry policy a job has the default one, which the hash does not store.
        max_attempts=_int(fields["r_max"]) if fields["r_max"] else _DEFAULT_MAX_ATTEMPTS,
        created_at=convert.timestamp(_int(fields["created_at"])),
        state_at=convert.timestamp(_state_at(score, fields)),
        error_message=message,
        workflow_id=fields["workflow_id"],
        worker_id=fields["worker_id"],
        args_json=fields["args"].encode(),
    )


def _stats(stats: Stats) -> admin_pb2.GetStatsResponse:
    return admin_pb2.GetStatsResponse(
        queues=stats.queues,
        workers=stats.workers,
        jobs=_counts(stats.counts),
        throughput=_throughput(list(reversed(stats.minutes))),
        dead_letter=stats.dead_letter,
        uptime_seconds=stats.uptime_s,
    )


class AdminServicer(admin_pb2_grpc.OJSAdminServiceServicer):
    def __init__(self, admin: AdminService, *, frame: CallFrame | None = None) -> None:
        self._admin = admin
        # Read by `rpc`: admin calls take a place like any other call that does work, are counted in the
        # metrics and refused while the server drains (the frame of the main servicer, shared).
        self.frame = frame or CallFrame()

    @rpc
    async def ListQueueSummaries(
        self, request: admin_pb2.ListQueueSummariesRequest, context: Any
    ) -> admin_pb2.ListQueueSummariesResponse:
        snapshots, cursor, total = await self._admin.list_queues(
            limit=request.limit, cursor=request.cursor, prefix=request.prefix
        )
        return admin_pb2.ListQueueSummariesResponse(
            queues=[queue_summary(s) for s in snapshots], next_cursor=cursor, total=total
        )

    @rpc
    async def GetQueueSummary(
        self, request: admin_pb2.GetQueueSummaryRequest, context: Any
    ) -> admin_pb2.GetQueueSummaryResponse:
        return admin_pb2.GetQueueSummaryResponse(queue=queue_summary(await self._admin.queue(request.queue)))

    @rpc
    async def PurgeQueue(self, request: admin_pb2.PurgeQueueRequest, context: Any) -> admin_pb2.PurgeQueueResponse:
        states = [_state(s, field="states") for s in request.states]
        purged = await self._admin.purge_queue(
            request.queue,
            states=states,
            older_than_ms=_ms(request.older_than, request.HasField("older_than")),
            confirm=request.confirm,
        )
        return admin_pb2.PurgeQueueResponse(purged_count=purged, states=request.states)

    @rpc
    async def SetQueueConfig(
        self, request: admin_pb2.SetQueueConfigRequest, context: Any
    ) -> admin_pb2.SetQueueConfigResponse:
        snapshot = await self._admin.set_queue_config(
            request.queue, concurrency=request.config.concurrency, max_per_second=request.config.max_per_second
        )
        return admin_pb2.SetQueueConfigResponse(queue=queue_summary(snapshot))

    @rpc
    async def ListJobs(self, request: admin_pb2.ListJobsRequest, context: Any) -> admin_pb2.ListJobsResponse:
        result = await self._admin.list_jobs(
            job_filter(request.filter), limit=request.limit, cursor=request.cursor, ascending=request.ascending
        )
        page = result.page
        return admin_pb2.ListJobsResponse(
            jobs=[job_row(score, job_id, fields) for score, job_id, fields in page.rows],
            next_cursor=result.next_cursor,
            total=page.total,
            scanned=page.scanned,
        )

    @rpc
    async def RetryJob(self, request: admin_pb2.RetryJobRequest, context: Any) -> admin_pb2.RetryJobResponse:
        return admin_pb2.RetryJobResponse(job=convert.job(await self._admin.retry_job(request.job_id)))

    @rpc
    async def BulkJobs(self, request: admin_pb2.BulkJobsRequest, context: Any) -> admin_pb2.BulkJobsResponse:
        action = _BULK_ACTIONS.get(request.action)
        if action is None:
            raise invalid("action must be retry, cancel or delete", field="action")
        outcome = await self._admin.bulk(
            action, job_filter(request.filter), limit=request.limit, dry_run=request.dry_run, confirm=request.confirm
        )
        return admin_pb2.BulkJobsResponse(
            action=_BULK_PROTO[outcome.action],
            matched=outcome.matched,
            succeeded=outcome.succeeded,
            failed=len(outcome.errors),
            errors=[admin_pb2.BulkError(job_id=j, error=e) for j, e in outcome.errors],
            dry_run=outcome.dry_run,
            truncated=outcome.truncated,
        )

    @rpc
    async def GetWorkerDetail(
        self, request: admin_pb2.GetWorkerDetailRequest, context: Any
    ) -> admin_pb2.GetWorkerDetailResponse:
        snapshot, stale = await self._admin.worker(request.worker_id)
        return admin_pb2.GetWorkerDetailResponse(
            worker=admin_pb2.WorkerDetail(
                worker_id=snapshot.worker_id,
                state=snapshot.state,
                directive=snapshot.directive,
                last_heartbeat_at=convert.timestamp(snapshot.last_heartbeat_ms),
                active_jobs=snapshot.active_jobs,
                stale=stale,
                jobs=[job_row(score, job_id, fields) for score, job_id, fields in snapshot.jobs],
            )
        )

    @rpc
    async def DeregisterWorker(
        self, request: admin_pb2.DeregisterWorkerRequest, context: Any
    ) -> admin_pb2.DeregisterWorkerResponse:
        await self._admin.deregister_worker(request.worker_id, force=request.force)
        return admin_pb2.DeregisterWorkerResponse(removed=True)

    @rpc
    async def GetStats(self, request: admin_pb2.GetStatsRequest, context: Any) -> admin_pb2.GetStatsResponse:
        return _stats(await self._admin.stats())

    @rpc
    async def GetStatsHistory(
        self, request: admin_pb2.GetStatsHistoryRequest, context: Any
    ) -> admin_pb2.GetStatsHistoryResponse:
        points = await self._admin.history(
            period_minutes=request.period_minutes,
            since_ms=_ms(request.since, request.HasField("since")),
            until_ms=_ms(request.until, request.HasField("until")),
            queue=request.queue or None,
        )
        return admin_pb2.GetStatsHistoryResponse(
            period_minutes=request.period_minutes or 1,
            points=[
                admin_pb2.StatsPoint(
                    timestamp=convert.timestamp(p.minute * 60_000),
                    processed=p.processed,
                    failed=p.failed,
                    enqueued=p.enqueued,
                    avg_duration_ms=p.avg_duration_ms,
                )
                for p in points
            ],
        )

    @rpc
    async def PurgeDeadLetter(
        self, request: admin_pb2.PurgeDeadLetterRequest, context: Any
    ) -> admin_pb2.PurgeDeadLetterResponse:
        purged = await self._admin.purge_dead_letter(
            older_than_ms=_ms(request.older_than, request.HasField("older_than")), confirm=request.confirm
        )
        return admin_pb2.PurgeDeadLetterResponse(purged_count=purged)

    @rpc
    async def ListWorkflows(
        self, request: admin_pb2.ListWorkflowsRequest, context: Any
    ) -> admin_pb2.ListWorkflowsResponse:
        result = await self._admin.list_workflows(limit=request.limit, cursor=request.cursor)
        return admin_pb2.ListWorkflowsResponse(
            workflows=[
                admin_pb2.WorkflowRow(
                    id=wf_id,
                    name=f["name"],
                    state=f["state"],
                    steps_total=_int(f["step_count"]),
                    steps_completed=_int(f["completed"]),
                    steps_failed=_int(f["failed"]),
                    created_at=convert.timestamp(score),
                )
                for score, wf_id, f in result.page.rows
            ],
            next_cursor=result.next_cursor,
            total=result.page.total,
        )
