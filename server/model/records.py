"""Values the store returns and the service and rpc layers read: no I/O, no store knowledge."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.domain.errors import OJSError
from server.domain.job import StoredJob
from server.domain.states import JobState


@dataclasses.dataclass(frozen=True)
class Retention:
    """How long terminal jobs are kept (ms; 0 keeps them until deleted)."""

    completed_ms: int = 7 * 86_400_000
    cancelled_ms: int = 7 * 86_400_000
    discarded_ms: int = 30 * 86_400_000
    dead_letter_ms: int = 180 * 86_400_000
    dead_letter_max_count: int = 10_000


@dataclasses.dataclass(frozen=True)
class HeartbeatOutcome:
    directive: str
    extended: list[str]
    cancelled: list[str]
    not_held: list[str]
    # Lease deadline of the last extended job, if any.
    new_deadline_ms: int | None


@dataclasses.dataclass(frozen=True)
class ReapOutcome:
    examined: int
    timed_out: int
    requeued: int


@dataclasses.dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    last_heartbeat_ms: int
    state: str
    directive: str
    active_jobs: int


@dataclasses.dataclass(frozen=True)
class EnqueueOutcome:
    state: JobState
    enqueued_at_ms: int | None
    # Set when a unique policy with on_conflict=ignore kept an existing job instead.
    existing: StoredJob | None = None
    # When scheduled: the due time (a replace_except_schedule keeps the replaced job's).
    scheduled_at_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class QueueRow:
    name: str
    created_at_ms: int
    available: int
    paused: bool
    paused_at_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class QueueStatsRow:
    name: str
    known: bool
    available: int
    active: int
    scheduled: int
    retryable: int
    pending: int
    dead: int
    completed: int
    discarded: int
    cancelled: int
    paused: bool
    completed_last_hour: int
    failed_last_hour: int
    avg_duration_ms: float
    avg_wait_ms: float
    throughput_per_second: float


@dataclasses.dataclass(frozen=True)
class EventRecord:
    cursor: str
    type: str
    job_id: str
    queue: str
    job_type: str
    state: str
    time_ms: int
    data_json: bytes


@dataclasses.dataclass(frozen=True)
class FailureReport:
    code: str
    message: str
    error_type: str
    details: dict[str, Any] | None
    backtrace: str | None
    # False: end the job now; None: the retry policy decides.
    retryable: bool | None
    requeue: bool
    # With requeue: the job never reached a worker, so its attempt is given back.
    undelivered: bool = False


@dataclasses.dataclass(frozen=True)
class Settlement:
    """One entry of a batch settle: an ack, or a nack when `failure` is set."""

    job_id: str
    worker_id: str = ""
    lease_token: int | None = None
    result_json: bytes | None = None
    failure: FailureReport | None = None


@dataclasses.dataclass(frozen=True)
class SettleReply:
    job_id: str
    # The state after the entry, or the job's current state when refused for its state.
    state: str | None
    # The whole job, when asked for.
    job: StoredJob | None
    error: OJSError | None

    def settled_job(self) -> StoredJob:
        """The job after the entry (asked for with return_jobs), or the refusal raised."""
        if self.error is not None:
            raise self.error
        assert self.job is not None
        return self.job
