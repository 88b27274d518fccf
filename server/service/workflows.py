"""Workflows: validate a plan, create it in one script, read and cancel it."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.domain.clock import now_ms
from server.domain.errors import OJSError, invalid, not_found
from server.domain.ids import is_uuid7, new_uuid7
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.domain.workflow import NodeKind, WorkflowPlan, WorkflowType, parse_workflow
from server.store import codec
from server.store.job_store import JobStore


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
class WorkflowView:
    id: str
    name: str
    type: str
    state: str
    steps_total: int
    steps_completed: int
    steps_failed: int
    created_at_ms: int
    started_at_ms: int | None
    completed_at_ms: int | None
    cancelled_at_ms: int | None
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
    def __init__(self, store: JobStore) -> None:
        self._store = store

    async def create(self, body: Any) -> WorkflowView:
        plan = parse_workflow(body)
        now = now_ms()
        workflow_id = new_uuid7()
        dependents = plan.dependents()
        nodes: list[dict[str, Any]] = []
        for node in plan.nodes:
            try:
                job = parse_enqueue(node.envelope, now_ms=now)
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
            fields = codec.new_job_fields(job)
            fields += ["workflow_id", workflow_id, "wf_node", str(node.index)]
            nodes.append(
                {
                    "id": node.id,
                    "kind": node.kind.value,
                    "deps": list(node.depends_on),
                    "dependents": dependents[node.index],
                    "job": {
                        "id": job.id,
                        "type": job.type,
                        "queue": job.queue,
                        "priority": str(job.priority),
                        "state": state.value,
                        "due": str(job.scheduled_at_ms) if state is JobState.SCHEDULED else "",
                        "expires": "" if job.expires_at_ms is None else str(job.expires_at_ms),
                        "rate": "" if job.rate_per_second is None else str(job.rate_per_second),
                        "concurrency": "" if job.concurrency is None else str(job.concurrency),
                        "fields": fields,
                    },
                }
            )
        await self._store.create_workflow(workflow_id, name=plan.name, kind=plan.type.value, nodes=nodes, now_ms=now)
        return await self.get(workflow_id)

    async def get(self, workflow_id: str) -> WorkflowView:
        if not workflow_id:
            raise invalid("workflow_id is required", field="workflow_id")
        workflow, nodes = await self._store.workflow_hashes(workflow_id) if is_uuid7(workflow_id) else ({}, {})
        if not workflow:
            raise not_found("workflow", workflow_id)

        def text(raw: dict[bytes, bytes], key: str) -> str:
            return raw.get(key.encode(), b"").decode()

        def number(raw: dict[bytes, bytes], key: str) -> int | None:
            value = raw.get(key.encode())
            return int(value) if value else None

        count = number(workflow, "node_count") or 0
        job_ids = [text(nodes, f"j:{i}") for i in range(count)]
        live = await self._store.job_states(job_ids)
        steps = []
        for i in range(count):
            node_state = text(nodes, f"s:{i}")
            job_state, job_type, result = live[i]
            if node_state == "ready":
                state = _STEP_STATE_OF_JOB.get(job_state, "pending")
            else:
                state = _STEP_STATE_OF_NODE.get(node_state, "cancelled")
            kind = text(nodes, f"k:{i}")
            steps.append(
                StepView(
                    index=i,
                    id=text(nodes, f"i:{i}") or str(i),
                    kind=kind,
                    type=job_type,
                    state=state,
                    job_id=job_ids[i],
                    depends_on=tuple(text(nodes, f"i:{d}") or d for d in text(nodes, f"p:{i}").split(",") if d),
                    result_json=result if job_state == JobState.COMPLETED.value else None,
                )
            )
        return WorkflowView(
            id=text(workflow, "id"),
            name=text(workflow, "name"),
            type=text(workflow, "type"),
            state=text(workflow, "state"),
            steps_total=number(workflow, "step_count") or 0,
            steps_completed=number(workflow, "completed") or 0,
            steps_failed=number(workflow, "failed") or 0,
            created_at_ms=number(workflow, "created_at") or 0,
            started_at_ms=number(workflow, "started_at"),
            completed_at_ms=number(workflow, "completed_at"),
            cancelled_at_ms=number(workflow, "cancelled_at"),
            steps=tuple(steps),
        )

    async def cancel(self, workflow_id: str) -> tuple[WorkflowView, int, int]:
        if not is_uuid7(workflow_id):
            raise not_found("workflow", workflow_id)
        cancelled, completed = await self._store.cancel_workflow(workflow_id, now_ms=now_ms())
        return await self.get(workflow_id), cancelled, completed
