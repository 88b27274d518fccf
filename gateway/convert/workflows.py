"""The workflow object W."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from ojs.v1 import workflow_pb2

from gateway.convert.common import enum_names
from ojs_json.scalars import timestamp

_WORKFLOW_STATES = enum_names(workflow_pb2.WorkflowState.items(), "WORKFLOW_STATE_")
_WORKFLOW_STEP_STATES = enum_names(workflow_pb2.WorkflowStepState.items(), "WORKFLOW_STEP_STATE_")


def workflow_state(state: int) -> str:
    return _WORKFLOW_STATES.get(state, "unspecified")


def workflow_step_state(state: int) -> str:
    return _WORKFLOW_STEP_STATES.get(state, "unspecified")


def workflow_step_to_json(index: int, step: workflow_pb2.WorkflowStepStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": index,
        "id": step.id,
        "type": step.type,
        "kind": step.kind,
        "state": workflow_step_state(step.state),
        # A step not enqueued yet has no job: null, so readers can test for it.
        "job_id": step.job_id or None,
        "depends_on": list(step.depends_on),
    }
    if step.result_json:
        out["result"] = orjson.Fragment(step.result_json)
    return out


_WorkflowTimestamp = Literal["started_at", "completed_at", "cancelled_at"]
_WORKFLOW_TIMESTAMPS: tuple[_WorkflowTimestamp, ...] = ("started_at", "completed_at", "cancelled_at")


def workflow_to_json(workflow: workflow_pb2.Workflow) -> dict[str, Any]:
    """The workflow object W: counters under both the chain (`steps_*`) and group/batch (`jobs_*`) names."""
    created_at = timestamp(workflow.created_at) if workflow.HasField("created_at") else None
    out: dict[str, Any] = {
        "id": workflow.id,
        "name": workflow.name,
        "type": workflow.type,
        "state": workflow_state(workflow.state),
        "steps_total": workflow.steps_total,
        "steps_completed": workflow.steps_completed,
        "steps_failed": workflow.steps_failed,
        "jobs_total": workflow.steps_total,
        "jobs_completed": workflow.steps_completed,
        "created_at": created_at,
    }
    for name in _WORKFLOW_TIMESTAMPS:
        if workflow.HasField(name):
            out[name] = timestamp(getattr(workflow, name))
    out["steps"] = [workflow_step_to_json(index, step) for index, step in enumerate(workflow.steps)]
    metadata: dict[str, Any] = {"created_at": created_at}
    for name in ("started_at", "completed_at"):
        if name in out:
            metadata[name] = out[name]
    metadata["job_count"] = workflow.steps_total
    metadata["completed_count"] = workflow.steps_completed
    metadata["failed_count"] = workflow.steps_failed
    out["metadata"] = metadata
    return out


def render_cancelled_workflow(response: workflow_pb2.CancelWorkflowResponse) -> dict[str, Any]:
    workflow = workflow_to_json(response.workflow)
    workflow["steps_cancelled"] = response.steps_cancelled
    workflow["steps_already_completed"] = response.steps_already_completed
    return {"workflow": workflow}
