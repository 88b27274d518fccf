"""Progress values the store returns and the service and rpc layers read (urn:ojs:ext:progress)."""

from __future__ import annotations

import dataclasses

from server.domain.progress import Progress
from server.domain.states import JobState


@dataclasses.dataclass(frozen=True)
class ProgressRow:
    """A job's progress as stored: its state and attempt, and what that attempt reported."""

    job_id: str
    type: str
    state: JobState
    attempt: int
    progress: Progress | None


@dataclasses.dataclass(frozen=True)
class ReportOutcome:
    # False: the job was not active, and the report was ignored.
    accepted: bool
    row: ProgressRow
    lease_expires_at_ms: int | None
