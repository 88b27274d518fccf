"""Protobuf messages <-> service-layer values. No business rules here."""

from __future__ import annotations

import functools
import math
from typing import Any

import orjson
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from ojs.v1 import events_pb2, job_pb2, service_pb2, worker_pb2, workflow_pb2

from ojs_json.options import enqueue_options_to_json
from ojs_json.policies import CONFLICT_ACTIONS, JOB_STATE_NAMES
from server.domain.clock import now_ms
from server.domain.cron_entry import CronEntry
from server.domain.errors import ErrorCode, OJSError, invalid
from server.domain.job import JobErrorRecord, StoredJob
from server.domain.limits import check_time_ms
from server.domain.progress import Progress
from server.domain.retry import RetryPolicy
from server.domain.states import JobState
from server.domain.unique import parse_unique_policy
from server.model.records import EventRecord, FailureReport, Settlement, SettleReply
from server.service.events import StreamSignal
from server.service.jobs import failure_report
from server.service.workflows import WorkflowView

STATE_TO_PROTO: dict[JobState, job_pb2.JobState.ValueType] = {
    JobState.SCHEDULED: job_pb2.JOB_STATE_SCHEDULED,
    JobState.AVAILABLE: job_pb2.JOB_STATE_AVAILABLE,
    JobState.PENDING: job_pb2.JOB_STATE_PENDING,
    JobState.ACTIVE: job_pb2.JOB_STATE_ACTIVE,
    JobState.COMPLETED: job_pb2.JOB_STATE_COMPLETED,
    JobState.RETRYABLE: job_pb2.JOB_STATE_RETRYABLE,
    JobState.CANCELLED: job_pb2.JOB_STATE_CANCELLED,
    JobState.DISCARDED: job_pb2.JOB_STATE_DISCARDED,
}
# Conflict action name -> proto value, for the policies shown on jobs.
_CONFLICT_ACTION_VALUES = {
    name: job_pb2.UniqueConflictAction.Value(f"UNIQUE_CONFLICT_ACTION_{name.upper()}")
    for name in CONFLICT_ACTIONS.values()
}


def timestamp(epoch_ms: int) -> timestamp_pb2.Timestamp:
    seconds, millis = divmod(epoch_ms, 1000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=millis * 1_000_000)


def duration(ms: int) -> duration_pb2.Duration:
    seconds, millis = divmod(ms, 1000)
    return duration_pb2.Duration(seconds=seconds, nanos=millis * 1_000_000)


def duration_ms(value: duration_pb2.Duration) -> int:
    return value.seconds * 1000 + value.nanos // 1_000_000


def decode_json(raw: bytes, *, field: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OJSError(ErrorCode.INVALID_PAYLOAD, f"{field} is not valid JSON: {exc}") from None


# ---- requests -> service inputs ----

# Integral numbers below this are shown as JSON integers: protobuf Values are
# doubles, and 42 must not become 42.0 on its way to a JSON worker.
_EXACT_INTEGER_LIMIT = 2**53


def value_to_json(value: struct_pb2.Value, *, field: str) -> Any:
    """A protobuf Value as plain JSON data; NaN and infinities are rejected (JSON has neither)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise invalid(f"{field} must be a finite number", field=field)
        if number.is_integer() and abs(number) < _EXACT_INTEGER_LIMIT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value, field=field)
    if kind == "list_value":
        return [value_to_json(item, field=f"{field}[{i}]") for i, item in enumerate(value.list_value.values)]
    return None


def struct_to_dict(value: struct_pb2.Struct, *, field: str) -> dict[str, Any]:
    return {key: value_to_json(item, field=f"{field}.{key}") for key, item in value.fields.items()}


def enqueue_envelope(request: job_pb2.EnqueueRequest | job_pb2.BatchJobEntry) -> Any:
    """The job in the OJS JSON form: `job_json` as sent, or built from the official fields."""
    if request.job_json:
        return decode_json(request.job_json, field="job_json")
    envelope: dict[str, Any] = {
        "type": request.type or None,
        "args": [value_to_json(value, field=f"args[{i}]") for i, value in enumerate(request.args)],
    }
    if request.HasField("options"):
        options, meta = _options(request.options)
        envelope["options"] = options
        if meta is not None:
            envelope["meta"] = meta
    return envelope


_WORKFLOW_STATES = {
    "running": workflow_pb2.WORKFLOW_STATE_RUNNING,
    "completed": workflow_pb2.WORKFLOW_STATE_COMPLETED,
    "failed": workflow_pb2.WORKFLOW_STATE_FAILED,
    "cancelled": workflow_pb2.WORKFLOW_STATE_CANCELLED,
}
_STEP_STATES = {
    "waiting": workflow_pb2.WORKFLOW_STEP_STATE_WAITING,
    "pending": workflow_pb2.WORKFLOW_STEP_STATE_PENDING,
    "active": workflow_pb2.WORKFLOW_STEP_STATE_ACTIVE,
    "completed": workflow_pb2.WORKFLOW_STEP_STATE_COMPLETED,
    "failed": workflow_pb2.WORKFLOW_STEP_STATE_FAILED,
    "cancelled": workflow_pb2.WORKFLOW_STEP_STATE_CANCELLED,
}


def workflow_request(request: workflow_pb2.CreateWorkflowRequest) -> Any:
    """The workflow in the OJS JSON form: `workflow_json` as sent, or the graph of the official fields."""
    if request.workflow_json:
        return decode_json(request.workflow_json, field="workflow_json")
    steps = []
    for index, step in enumerate(request.steps):
        item: dict[str, Any] = {
            "id": step.id,
            "type": step.type or None,
            "args": [value_to_json(v, field=f"steps[{index}].args[{i}]") for i, v in enumerate(step.args)],
            "depends_on": list(step.depends_on),
        }
        if step.HasField("options"):
            options, meta = _options(step.options)
            item["options"] = options
            if meta is not None:
                item["meta"] = meta
        steps.append(item)
    return {"name": request.name, "steps": steps}


def workflow(view: WorkflowView) -> workflow_pb2.Workflow:
    message = workflow_pb2.Workflow(
        id=view.id,
        name=view.name,
        state=_WORKFLOW_STATES.get(view.state, workflow_pb2.WORKFLOW_STATE_UNSPECIFIED),
        created_at=timestamp(view.created_at_ms),
        type=view.type,
        steps_total=view.steps_total,
        steps_completed=view.steps_completed,
        steps_failed=view.steps_failed,
    )
    for attr, field in (
        ("completed_at_ms", "completed_at"),
        ("started_at_ms", "started_at"),
        ("cancelled_at_ms", "cancelled_at"),
    ):
        value = getattr(view, attr)
        if value is not None:
            getattr(message, field).CopyFrom(timestamp(value))
    for step in view.steps:
        status = message.steps.add(
            id=step.id,
            type=step.type,
            state=_STEP_STATES.get(step.state, workflow_pb2.WORKFLOW_STEP_STATE_UNSPECIFIED),
            job_id=step.job_id,
            depends_on=list(step.depends_on),
            kind=step.kind,
        )
        if step.result_json is not None:
            status.result_json = step.result_json
    return message


def cron_registration(request: service_pb2.RegisterCronRequest) -> Any:
    """The registration in the OJS JSON form: `cron_json` as sent, or built from the official fields."""
    if request.cron_json:
        return decode_json(request.cron_json, field="cron_json")
    body: dict[str, Any] = {
        "name": request.name,
        "cron": request.cron,
        "timezone": request.timezone or "UTC",
        "type": request.type or None,
        "args": [value_to_json(value, field=f"args[{i}]") for i, value in enumerate(request.args)],
    }
    if request.HasField("options"):
        options, meta = _options(request.options)
        body["options"] = options
        if meta is not None:
            body["meta"] = meta
    if request.overlap_policy:
        body["overlap_policy"] = request.overlap_policy
    if request.HasField("enabled"):
        body["enabled"] = request.enabled
    return body


def cron_entry(entry: CronEntry) -> service_pb2.CronEntry:
    template = orjson.loads(entry.template_json)
    options = template.get("options") or {}
    message = service_pb2.CronEntry(
        name=entry.name,
        cron=entry.expression,
        timezone=entry.timezone,
        type=template.get("type", ""),
        options=job_pb2.EnqueueOptions(
            queue=options.get("queue") or "default",
            priority=options.get("priority") or 0,
            tags=options.get("tags") or [],
        ),
        overlap_policy=entry.overlap_policy,
        enabled=entry.enabled,
        created_at=timestamp(entry.created_at_ms),
        updated_at=timestamp(entry.updated_at_ms),
        run_count=entry.run_count,
        job_template_json=entry.template_json,
        last_job_id=entry.last_job_id,
        description=entry.description,
    )
    args = struct_pb2.ListValue()
    args.extend(template.get("args") or [])
    message.args.extend(args.values)
    if entry.next_run_at_ms is not None:
        message.next_run_at.CopyFrom(timestamp(entry.next_run_at_ms))
    if entry.last_run_at_ms is not None:
        message.last_run_at.CopyFrom(timestamp(entry.last_run_at_ms))
    return message


def batch_envelope(request: job_pb2.EnqueueBatchRequest) -> Any:
    """The batch in the OJS JSON form: `batch_json` as sent, or built from the official fields."""
    if request.batch_json:
        return decode_json(request.batch_json, field="batch_json")
    body: dict[str, Any] = {"jobs": [enqueue_envelope(entry) for entry in request.jobs]}
    if request.HasField("default_options"):
        options, meta = _options(request.default_options)
        if meta is not None:
            options["metadata"] = meta
        body["default_options"] = options
    return body


def _options(options: job_pb2.EnqueueOptions) -> tuple[dict[str, Any], dict[str, Any] | None]:
    _check_options(options)
    return enqueue_options_to_json(options, meta_to_json=_options_meta)


def _check_options(options: job_pb2.EnqueueOptions) -> None:
    """What the JSON form could not carry faithfully: a time past year 9999, an enum number outside its enum."""
    if options.HasField("delay_until"):
        delay_until = options.delay_until
        check_time_ms(delay_until.seconds * 1000 + delay_until.nanos // 1_000_000, field="options.delay_until")
    if not options.HasField("unique"):
        return
    unique = options.unique
    if unique.on_conflict not in CONFLICT_ACTIONS and unique.on_conflict != job_pb2.UNIQUE_CONFLICT_ACTION_UNSPECIFIED:
        raise invalid(
            f"options.unique.on_conflict {unique.on_conflict} is not a UniqueConflictAction",
            field="options.unique.on_conflict",
        )
    unknown = [state for state in unique.states if state not in JOB_STATE_NAMES]
    if unknown:
        raise invalid(f"options.unique.states {unknown[0]} is not a job state", field="options.unique.states")


def _options_meta(meta: struct_pb2.Struct) -> dict[str, Any]:
    return struct_to_dict(meta, field="options.meta")


# ---- service values -> responses ----


def _json_struct(raw: bytes) -> struct_pb2.Struct | None:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        return None
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


@functools.lru_cache(maxsize=1024)
def _retry_policy_bytes(policy: RetryPolicy) -> bytes:
    return retry_policy(policy).SerializeToString()


def retry_policy(policy: RetryPolicy) -> job_pb2.RetryPolicy:
    return job_pb2.RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_interval=duration(policy.initial_interval_ms),
        backoff_coefficient=policy.backoff_coefficient,
        max_interval=duration(policy.max_interval_ms),
        jitter=policy.jitter,
        non_retryable_errors=list(policy.non_retryable_errors),
        on_exhaustion=policy.on_exhaustion.value,
        backoff_strategy=policy.strategy.value,
    )


def job_error(record: JobErrorRecord) -> job_pb2.JobError:
    message = job_pb2.JobError(
        code=record.code,
        message=record.message,
        retryable=record.retryable,
        attempt=record.attempt,
        type=record.type,
    )
    if record.occurred_at_ms:
        message.occurred_at.CopyFrom(timestamp(record.occurred_at_ms))
    if record.backtrace:
        message.backtrace = record.backtrace
    if record.details:
        message.details.update(record.details)
    return message


_OPTIONAL_TIMES = (
    ("enqueued_at_ms", "enqueued_at"),
    ("scheduled_at_ms", "scheduled_at"),
    ("started_at_ms", "started_at"),
    ("completed_at_ms", "completed_at"),
    ("expires_at_ms", "expires_at"),
    ("cancelled_at_ms", "cancelled_at"),
    ("discarded_at_ms", "discarded_at"),
    ("next_attempt_at_ms", "next_attempt_at"),
    ("lease_expires_at_ms", "lease_expires_at"),
)


def job_id_and_state(stored: StoredJob) -> job_pb2.Job:
    return job_pb2.Job(id=stored.id, state=STATE_TO_PROTO[stored.state])


def job(stored: StoredJob, *, json_only: bool = False) -> job_pb2.Job:
    """The job as a message; `json_only` leaves out the Value copies of the JSON byte fields."""
    message = job_pb2.Job(
        id=stored.id,
        type=stored.type,
        queue=stored.queue,
        state=STATE_TO_PROTO[stored.state],
        priority=stored.priority,
        attempt=stored.attempt,
        max_attempts=stored.max_attempts,
        tags=stored.tags,
        specversion="1.0",
        args_json=stored.args_json,
        meta_json=stored.meta_json,
    )
    # Policies repeat across jobs: each is built and serialized once, then merged in.
    message.retry_policy.MergeFromString(_retry_policy_bytes(stored.retry))
    message.created_at.FromMilliseconds(stored.created_at_ms)
    if stored.errors:
        message.errors.extend(job_error(e) for e in stored.errors)
    if not json_only:
        # Official clients read args/meta/result as protobuf values.
        args = struct_pb2.ListValue()
        args.extend(orjson.loads(stored.args_json))
        message.args.extend(args.values)
        meta = _json_struct(stored.meta_json)
        if meta is not None:
            message.meta.CopyFrom(meta)
    for attr, field in _OPTIONAL_TIMES:
        value = getattr(stored, attr)
        if value is not None:
            getattr(message, field).FromMilliseconds(value)
    if stored.timeout_ms is not None:
        message.timeout.FromMilliseconds(stored.timeout_ms)
    if stored.visibility_timeout_ms is not None:
        message.visibility_timeout.FromMilliseconds(stored.visibility_timeout_ms)
    if stored.result_json is not None:
        message.result_json = stored.result_json
        result = None if json_only else _json_struct(stored.result_json)
        if result is not None:
            message.result.CopyFrom(result)
    if stored.error is not None:
        message.error.CopyFrom(job_error(stored.error))
    if stored.extra_json:
        message.extra_json = stored.extra_json
    if stored.retry_delay_ms is not None:
        message.retry_delay_ms = stored.retry_delay_ms
    if stored.worker_id:
        message.worker_id = stored.worker_id
    if stored.schema:
        message.schema = stored.schema
    if stored.trace_id:
        message.trace_id = stored.trace_id
    if stored.workflow_id:
        message.workflow_id = stored.workflow_id
    if stored.parent_results_json:
        message.parent_results_json = stored.parent_results_json
    if stored.lease_token:
        message.lease_token = stored.lease_token
    if stored.unique is not None:
        _unique_policy(message.unique_policy, stored.unique)
    if stored.progress is not None:
        _progress_fields(message, stored.progress)
    if stored.checkpoint_json:
        message.last_checkpoint_json = stored.checkpoint_json
    return message


def _unique_policy(message: job_pb2.UniquePolicy, raw: dict[str, Any]) -> None:
    """The job's policy as the published binding has it: `key` lists the dimensions."""
    try:
        policy = parse_unique_policy(raw)
    except OJSError:
        # Stored before validation got stricter: shown as stored is all there is.
        return
    message.key.extend(policy.keys)
    message.args_keys.extend(policy.args_keys or ())
    message.meta_keys.extend(policy.meta_keys)
    message.on_conflict = _CONFLICT_ACTION_VALUES[policy.on_conflict]
    message.states.extend(STATE_TO_PROTO[state] for state in policy.states)
    if policy.period_ms:
        message.period.FromMilliseconds(policy.period_ms)


def _progress_fields(message: job_pb2.Job, progress: Progress) -> None:
    if progress.value is not None:
        message.progress = progress.value
    if progress.message:
        message.progress_message = progress.message
    if progress.data_json:
        message.progress_data_json = progress.data_json
    message.progress_updated_at.FromMilliseconds(progress.updated_at_ms)


def stream_signal(signal: StreamSignal) -> events_pb2.Event:
    """Keepalives and drop reports travel as events of their own types."""
    now = timestamp(now_ms())
    if signal.kind == "dropped":
        data = struct_pb2.Struct()
        data.update({"dropped": signal.dropped})
        return events_pb2.Event(
            type="system.events_dropped", timestamp=now, data=data, data_json=orjson.dumps({"dropped": signal.dropped})
        )
    return events_pb2.Event(type="stream.keepalive", timestamp=now, data_json=b"{}")


def event(record: EventRecord) -> events_pb2.Event:
    message = events_pb2.Event(
        id=f"evt_{record.cursor}",
        type=record.type,
        job_id=record.job_id,
        job_type=record.job_type,
        queue=record.queue,
        timestamp=timestamp(record.time_ms),
        data_json=record.data_json,
        state=record.state,
        cursor=record.cursor,
    )
    data = _json_struct(record.data_json)
    if data is not None:
        message.data.CopyFrom(data)
    return message


def failure(error: job_pb2.JobError, *, retryable: bool | None, requeue: bool) -> FailureReport:
    details = struct_to_dict(error.details, field="error.details") if error.HasField("details") else None
    return failure_report(
        code=error.code,
        message=error.message,
        error_type=error.type,
        details=details,
        backtrace=error.backtrace or None,
        retryable=retryable,
        requeue=requeue,
    )


def settlement(entry: worker_pb2.SettleEntry, index: int, worker_id: str) -> Settlement:
    """One AckBatch entry; a nack when its error is set."""
    token = entry.lease_token if entry.HasField("lease_token") else None
    if entry.HasField("error"):
        retryable = entry.retryable if entry.HasField("retryable") else None
        report = failure(entry.error, retryable=retryable, requeue=entry.requeue)
        return Settlement(entry.job_id, worker_id=worker_id, lease_token=token, failure=report)
    result = None
    if entry.result_json:
        decode_json(entry.result_json, field=f"entries[{index}].result_json")
        result = entry.result_json
    return Settlement(entry.job_id, worker_id=worker_id, lease_token=token, result_json=result)


def settle_result(reply: SettleReply, *, json_only: bool) -> worker_pb2.SettleResult:
    result = worker_pb2.SettleResult(job_id=reply.job_id, ok=reply.error is None)
    if reply.state:
        result.state = STATE_TO_PROTO[JobState(reply.state)]
    if reply.error is not None:
        result.error_code = reply.error.code.value
        result.error_message = reply.error.message
    if reply.job is not None:
        result.job.CopyFrom(job(reply.job, json_only=json_only))
    return result
