"""Workflows: validate a plan, create it in one script, read and cancel it."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import OJSError, invalid, not_found
from server.domain.ids import is_uuid7, new_uuid7
from server.domain.limits import DEFAULT_MAX_JOB_BYTES
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.domain.workflow import NodeKind, WorkflowPlan, WorkflowType, parse_workflow
from server.model.workflows import NodeRecord, NodeSpec, WorkflowHeader, WorkflowRecord
from server.service.intake import check_job_size
from server.store.facade import Store


@dataclasses.dataclass(frozen=True)
class StepView:
    index: int
    id: str
    kind: str
    type: str
    # waiting | pending | active | completed | failed | cancelled
    state: str
    job_id: str
    depends_on: tuple[str, ...]
    result_json: bytes | None


@dataclasses.dataclass(frozen=True)
class WorkflowView(WorkflowHeader):
    steps: tuple[StepView, ...]


# Live job state of a released node -> step state.
_STEP_STATE_OF_JOB = {
    JobState.AVAILABLE.value: "pending",
    JobState.SCHEDULED.value: "pending",
    JobState.PENDING.value: "pending",
    JobState.ACTIVE.value: "active",
    JobState.RETRYABLE.value: "active",
    JobState.COMPLETED.value: "completed",
    JobState.DISCARDED.value: "failed",
    JobState.CANCELLED.value: "cancelled",
}
_STEP_STATE_OF_NODE = {"waiting": "waiting", "completed": "completed", "failed": "failed", "cancelled": "cancelled"}


def _section(plan: WorkflowPlan, kind: NodeKind, index: int) -> str:
    if kind is not NodeKind.STEP:
        return f"callbacks.{kind.value}"
    return f"jobs[{index}]" if plan.type in (WorkflowType.GROUP, WorkflowType.BATCH) else f"steps[{index}]"


class WorkflowService:
    def __init__(
        self, store: Store, *, clock: Clock = SYSTEM_CLOCK, max_job_bytes: int = DEFAULT_MAX_JOB_BYTES
    ) -> None:
        self._clock = clock
        self._store = store
        self._max_job_bytes = max_job_bytes

    async def create(self, body: Any) -> WorkflowView:
        plan = parse_workflow(body)
        now = self._clock.now_ms()
        workflow_id = new_uuid7()
        dependents = plan.dependents()
        nodes: list[NodeSpec] = []
        for node in plan.nodes:
            try:
                job = parse_enqueue(node.envelope, now_ms=now)
                check_job_size(job, self._max_job_bytes)
            except OJSError as exc:
                section = _section(plan, node.kind, node.index)
                exc.message = f"{section}: {exc.message}"
                field = exc.details.get("field")
                exc.details["field"] = f"{section}.{field}" if isinstance(field, str) else section
                raise
            # Steps with dependencies wait in `pending` until the engine releases them.
            state = job.initial_state if not node.depends_on else JobState.PENDING
            if state is JobState.PENDING and not node.depends_on:
                state = JobState.AVAILABLE
            nodes.append(
                NodeSpec(
                    id=node.id,
                    kind=node.kind.value,
                    depends_on=tuple(node.depends_on),
                    dependents=tuple(dependents[node.index]),
                    job=job,
                    state=state,
                )
            )
        await self._store.workflows.create_workflow(
            workflow_id, name=plan.name, kind=plan.type.value, nodes=nodes, now_ms=now
        )
        return await self.get(workflow_id)

    async def get(self, workflow_id: str) -> WorkflowView:
        if not workflow_id:
            raise invalid("workflow_id is required", field="workflow_id")
        record = await self._store.workflows.get_workflow(workflow_id) if is_uuid7(workflow_id) else None
        if record is None:
            raise not_found("workflow", workflow_id)
        return _view(record)

    async def cancel(self, workflow_id: str) -> tuple[WorkflowView, int, int]:
        if not is_uuid7(workflow_id):
            raise not_found("workflow", workflow_id)
        cancelled, completed = await self._store.workflows.cancel_workflow(workflow_id, now_ms=self._clock.now_ms())
        return await self.get(workflow_id), cancelled, completed


def _step_state(node: NodeRecord) -> str:
    if node.node_state == "ready":
        return _STEP_STATE_OF_JOB.get(node.job_state, "pending")
    return _STEP_STATE_OF_NODE.get(node.node_state, "cancelled")


def _view(record: WorkflowRecord) -> WorkflowView:
    steps = tuple(
        StepView(
            index=node.index,
            id=node.id,
            kind=node.kind,
            type=node.job_type,
            state=_step_state(node),
            job_id=node.job_id,
            depends_on=tuple(record.nodes[d].id for d in node.depends_on),
            result_json=node.result_json if node.job_state == JobState.COMPLETED.value else None,
        )
        for node in record.nodes
    )
    return WorkflowView(
        id=record.id,
        name=record.name,
        type=record.type,
        state=record.state,
        steps_total=record.steps_total,
        steps_completed=record.steps_completed,
        steps_failed=record.steps_failed,
        created_at_ms=record.created_at_ms,
        started_at_ms=record.started_at_ms,
        completed_at_ms=record.completed_at_ms,
        cancelled_at_ms=record.cancelled_at_ms,
        steps=steps,
    )
