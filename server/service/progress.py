"""Progress extension: workers report, anyone reads, workflows aggregate."""

from __future__ import annotations

import dataclasses

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import invalid, not_found
from server.domain.progress import ProgressReport, StepProgress, aggregate
from server.domain.states import JobState
from server.model.progress import ProgressRow, ReportOutcome
from server.service.workflows import WorkflowService
from server.store.progress import ProgressStore


@dataclasses.dataclass(frozen=True)
class WorkflowProgressView:
    workflow_id: str
    type: str
    progress: float
    # (step, the step's job as read now; None when the job is gone)
    steps: tuple[tuple[StepProgress, ProgressRow | None], ...]


class ProgressService:
    def __init__(
        self,
        store: ProgressStore,
        workflows: WorkflowService,
        *,
        default_visibility_timeout_ms: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._clock = clock
        self._workflows = workflows
        self._default_lease_ms = default_visibility_timeout_ms

    async def report(self, report: ProgressReport) -> ReportOutcome:
        return await self._store.report(report, default_lease_ms=self._default_lease_ms, now_ms=self._clock.now_ms())

    async def job(self, job_id: str) -> ProgressRow:
        if not job_id:
            raise invalid("job_id is required", field="job_id")
        (row,) = await self._store.read([job_id])
        if row is None:
            raise not_found("job", job_id)
        return row

    async def workflow(self, workflow_id: str) -> WorkflowProgressView:
        view = await self._workflows.get(workflow_id)
        rows = await self._store.read([step.job_id for step in view.steps])
        steps = []
        for step, row in zip(view.steps, rows, strict=True):
            state = row.state if row is not None else _GONE_STEP_STATES.get(step.state)
            steps.append(
                (
                    StepProgress(
                        step_id=step.id,
                        job_id=step.job_id,
                        kind=step.kind,
                        state=state,
                        progress=row.progress if row is not None else None,
                    ),
                    row,
                )
            )
        return WorkflowProgressView(
            workflow_id=view.id,
            type=view.type,
            progress=aggregate(view.type, [step for step, _ in steps]),
            steps=tuple(steps),
        )


# A step whose job has left the store (retention) keeps the outcome the workflow recorded.
_GONE_STEP_STATES = {
    "completed": JobState.COMPLETED,
    "failed": JobState.DISCARDED,
    "cancelled": JobState.CANCELLED,
}
