"""A workflow as the store writes and reads it: nodes with their jobs, dependencies and progress."""

from __future__ import annotations

import dataclasses

from server.domain.job import NewJob
from server.domain.states import JobState


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of a workflow to create; indices refer to the node list."""

    id: str
    kind: str
    depends_on: tuple[int, ...]
    dependents: tuple[int, ...]
    job: NewJob
    # Pending while dependencies are unfinished, else the job's own initial state.
    state: JobState


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    index: int
    id: str
    kind: str
    job_id: str
    depends_on: tuple[int, ...]
    # waiting | ready | completed | failed | cancelled | skipped
    node_state: str
    # Of the member job, read at the same time; "" / None for a job that is gone.
    job_state: str
    job_type: str
    result_json: bytes | None


@dataclasses.dataclass(frozen=True)
class WorkflowHeader:
    """A workflow's own fields, without its nodes."""

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


@dataclasses.dataclass(frozen=True)
class WorkflowRecord(WorkflowHeader):
    nodes: tuple[NodeRecord, ...]
