"""Job data as the service layer sees it: a validated new job and a stored job."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.domain.limits import INT32_MAX, MAX_DURATION_MS, MAX_TIME_MS, MIN_TIME_MS
from server.domain.progress import Progress
from server.domain.retry import RetryPolicy
from server.domain.states import JobState
from server.domain.unique import UniquePolicy

SPEC_VERSION = "1.0"
DEFAULT_QUEUE = "default"
MIN_PRIORITY = -100
MAX_PRIORITY = 100


@dataclasses.dataclass(frozen=True)
class NewJob:
    """A job that passed validation and is ready to be stored."""

    id: str
    type: str
    queue: str
    args: list[Any]
    meta: dict[str, Any]
    priority: int
    retry: RetryPolicy
    created_at_ms: int
    scheduled_at_ms: int | None = None
    expires_at_ms: int | None = None
    timeout_ms: int | None = None
    visibility_timeout_ms: int | None = None
    tags: tuple[str, ...] = ()
    # Unknown top-level envelope fields, echoed back verbatim.
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    pending: bool = False
    schema: str | None = None
    trace_id: str | None = None
    unique: dict[str, Any] | None = None
    # Limits of the job's queue carried by the job (options.rate_limit); the latest wins.
    rate_per_second: int | None = None
    concurrency: int | None = None
    # Set with `unique`: the policy and this job's fingerprint under it.
    unique_policy: UniquePolicy | None = None
    unique_fingerprint: str | None = None

    @property
    def initial_state(self) -> JobState:
        if self.pending:
            return JobState.PENDING
        if self.scheduled_at_ms is not None and self.scheduled_at_ms > self.created_at_ms:
            return JobState.SCHEDULED
        return JobState.AVAILABLE


@dataclasses.dataclass(frozen=True)
class JobErrorRecord:
    code: str
    message: str
    type: str
    retryable: bool
    attempt: int
    occurred_at_ms: int
    details: dict[str, Any] | None = None
    backtrace: str | None = None


# Not frozen: a frozen dataclass sets each of these fields through object.__setattr__,
# which made building one cost several times more, and every fetched job builds one.
@dataclasses.dataclass(slots=True)
class StoredJob:
    """A job read back from the store. Treat it as read-only.

    JSON-valued fields (args, meta, result, extra, parent_results) stay as raw
    JSON bytes: they travel to clients without being decoded.
    """

    id: str
    type: str
    queue: str
    state: JobState
    priority: int
    attempt: int
    max_attempts: int
    args_json: bytes
    meta_json: bytes
    retry: RetryPolicy
    created_at_ms: int
    enqueued_at_ms: int | None = None
    scheduled_at_ms: int | None = None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None
    cancelled_at_ms: int | None = None
    discarded_at_ms: int | None = None
    expires_at_ms: int | None = None
    next_attempt_at_ms: int | None = None
    lease_expires_at_ms: int | None = None
    retry_delay_ms: int | None = None
    timeout_ms: int | None = None
    visibility_timeout_ms: int | None = None
    tags: tuple[str, ...] = ()
    extra_json: bytes | None = None
    result_json: bytes | None = None
    error: JobErrorRecord | None = None
    errors: tuple[JobErrorRecord, ...] = ()
    worker_id: str | None = None
    schema: str | None = None
    trace_id: str | None = None
    workflow_id: str | None = None
    parent_results_json: bytes | None = None
    unique: dict[str, Any] | None = None
    lease_token: int = 0
    # What the current attempt reported (urn:ojs:ext:progress); None when nothing.
    progress: Progress | None = None
    # The latest checkpoint a progress report carried, from any attempt.
    checkpoint_json: bytes | None = None


_TIME_FIELDS = (
    "created_at_ms",
    "enqueued_at_ms",
    "scheduled_at_ms",
    "started_at_ms",
    "completed_at_ms",
    "cancelled_at_ms",
    "discarded_at_ms",
    "expires_at_ms",
    "next_attempt_at_ms",
    "lease_expires_at_ms",
)
# Job options that may sit at the top level of an envelope instead of under "options" (the reference
# server's dialect, for workflow steps and cron registrations alike).
TOP_LEVEL_OPTION_FIELDS = (
    "queue",
    "priority",
    "timeout_ms",
    "timeout",
    "visibility_timeout_ms",
    "visibility_timeout",
    "retry",
    "retry_policy",
    "tags",
)
_DURATION_FIELDS = ("timeout_ms", "visibility_timeout_ms", "retry_delay_ms")


def out_of_bounds(job: StoredJob) -> str | None:
    """The first field of a stored job no client could be sent (data from before the checks), or None."""
    for name in _TIME_FIELDS:
        value = getattr(job, name)
        if value is not None and not MIN_TIME_MS <= value <= MAX_TIME_MS:
            return name
    for name in _DURATION_FIELDS:
        value = getattr(job, name)
        if value is not None and not 0 <= value <= MAX_DURATION_MS:
            return name
    if not (
        0 <= job.attempt <= INT32_MAX and 0 <= job.max_attempts <= INT32_MAX and -INT32_MAX <= job.priority <= INT32_MAX
    ):
        return "attempt"
    return None
