"""Job progress (ojs-progress.md): what a report may carry, what a reader sees, workflow aggregates.

Progress belongs to one attempt: a stored report names the attempt it was made
in, and a later attempt shows none until it reports itself (§5.3), without the
fetch having to clear anything. A completed job that reported progress shows
1.0 (§8.1); a failed one keeps its last value (§8.2).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from server.domain.errors import ErrorCode, OJSError, invalid
from server.domain.states import JobState

EXTENSION_URI = "urn:ojs:ext:progress"
# Structured progress is meant to stay small (the spec recommends 4 KB); this is the hard limit.
MAX_DATA_BYTES = 64 * 1024
MAX_MESSAGE_LENGTH = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    """What the current attempt reported; `value` is None when it reported only data or a message."""

    value: float | None
    message: str
    data_json: bytes | None
    updated_at_ms: int


@dataclasses.dataclass(frozen=True)
class ProgressReport:
    """A validated report: a value in [0, 1] and/or a message and data (a JSON object)."""

    job_id: str
    value: float | None
    message: str | None
    data_json: bytes | None
    worker_id: str
    lease_token: int | None
    # State to resume from, kept across attempts (§6.4).
    checkpoint_json: bytes | None = None


def _number(raw: Any, field: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise invalid(f"{field} must be a finite number", field=field)
    return float(raw)


def clamp(value: float) -> float:
    """Out-of-range values are clamped, not refused (§5.1: a report must not disrupt the job)."""
    return min(1.0, max(0.0, value))


def parse_report(
    *,
    job_id: str,
    progress: Any = None,
    percentage: Any = None,
    message: Any = None,
    data: Any = None,
    worker_id: str = "",
    lease_token: int | None = None,
    checkpoint: Any = None,
) -> ProgressReport:
    """`progress` is a fraction (0..1), `percentage` a percent (0..100, as the SDKs send); progress wins."""
    if not job_id:
        raise invalid("job_id is required", field="job_id")
    value = None
    if progress is not None:
        value = clamp(_number(progress, "progress"))
    elif percentage is not None:
        value = clamp(_number(percentage, "percentage") / 100.0)
    if message is not None and not isinstance(message, str):
        raise invalid("message must be a string", field="message")
    if message is not None and len(message) > MAX_MESSAGE_LENGTH:
        raise invalid(f"message must be at most {MAX_MESSAGE_LENGTH} characters", field="message")
    data_json = _json_object(data, "data")
    checkpoint_json = _json_object(checkpoint, "checkpoint")
    if value is None and data_json is None and message is None and checkpoint_json is None:
        raise invalid("a progress report needs progress (or percentage), data or a message", field="progress")
    return ProgressReport(
        job_id=job_id,
        value=value,
        message=message,
        data_json=data_json,
        worker_id=worker_id,
        lease_token=lease_token,
        checkpoint_json=checkpoint_json,
    )


def _json_object(value: Any, field: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"{field} must be a JSON object", field=field)
    try:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError:
        raise invalid(f"{field} must be valid JSON (no NaN or infinities)", field=field) from None
    if len(encoded) > MAX_DATA_BYTES:
        raise OJSError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"{field} must be at most {MAX_DATA_BYTES} bytes of JSON",
            details={"field": field, "max_bytes": MAX_DATA_BYTES},
        )
    return encoded


def visible(
    state: JobState,
    attempt: int,
    *,
    reported_attempt: int | None,
    value: float | None,
    message: str,
    data_json: bytes | None,
    updated_at_ms: int | None,
) -> Progress | None:
    """The progress a reader sees from what is stored, or None when this attempt reported nothing."""
    if reported_attempt != attempt or updated_at_ms is None:
        return None
    if state is JobState.COMPLETED:
        value = 1.0
    return Progress(value=value, message=message, data_json=data_json, updated_at_ms=updated_at_ms)


@dataclasses.dataclass(frozen=True)
class StepProgress:
    step_id: str
    job_id: str
    kind: str
    state: JobState | None
    progress: Progress | None

    @property
    def fraction(self) -> float:
        """This step's share of done work: 1 once completed, else its last reported value."""
        if self.state is JobState.COMPLETED:
            return 1.0
        if self.progress is None or self.progress.value is None:
            return 0.0
        return self.progress.value


def aggregate(workflow_type: str, steps: Sequence[StepProgress]) -> float:
    """Workflow progress (§9.1): a batch counts completed jobs, chains, groups and graphs average the steps."""
    jobs = [step for step in steps if step.kind == "step"]
    if not jobs:
        return 0.0
    if workflow_type == "batch":
        return sum(1 for step in jobs if step.state is JobState.COMPLETED) / len(jobs)
    return sum(step.fraction for step in jobs) / len(jobs)
