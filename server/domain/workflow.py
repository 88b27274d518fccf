"""Workflows as dependency graphs: every shape (chain, group, batch, graph) becomes one plan.

A chain is a path, a group has no edges, a batch adds callback nodes that depend
on every job. The engine in the store only ever sees nodes and edges.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain.errors import invalid
from server.domain.job import TOP_LEVEL_OPTION_FIELDS
from server.domain.limits import check_name_bytes

MAX_NODES = 10_000
MAX_NAME_LENGTH = 255


class NodeKind(enum.StrEnum):
    STEP = "step"
    # Batch callbacks: fire once every job is finished, under their condition.
    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ON_COMPLETE = "on_complete"


CALLBACK_KINDS = (NodeKind.ON_SUCCESS, NodeKind.ON_FAILURE, NodeKind.ON_COMPLETE)


class WorkflowType(enum.StrEnum):
    CHAIN = "chain"
    GROUP = "group"
    BATCH = "batch"
    GRAPH = "graph"


@dataclasses.dataclass(frozen=True)
class WorkflowNode:
    index: int
    id: str
    kind: NodeKind
    # The job envelope in the OJS JSON form ({type, args, meta?, options?}); validated by the caller.
    envelope: Mapping[str, Any]
    depends_on: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class WorkflowPlan:
    name: str
    type: WorkflowType
    nodes: tuple[WorkflowNode, ...]

    def dependents(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for node in self.nodes:
            for dependency in node.depends_on:
                out[dependency].append(node.index)
        return out


def _job_list(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = body.get(key)
    if not isinstance(items, list) or not items:
        raise invalid(f"{key} must be a non-empty list of jobs", field=key)
    if len(items) > MAX_NODES:
        raise invalid(f"{key} may hold at most {MAX_NODES} jobs", field=key)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise invalid(f"{key}[{index}] must be a JSON object", field=f"{key}[{index}]")
        if "steps" in item or "jobs" in item:
            raise invalid(f"{key}[{index}]: nested workflows are not supported", field=f"{key}[{index}]")
    return items


# Fields of a step or job that make up its envelope; job options may also sit at this level
# (`{"type": "extract.data", "queue": "etl"}`), as the core envelope allows.
_ENVELOPE_FIELDS = ("type", "args", "meta", "options", "schema", *TOP_LEVEL_OPTION_FIELDS)


def _envelope(item: Mapping[str, Any]) -> dict[str, Any]:
    envelope = {key: item[key] for key in _ENVELOPE_FIELDS if key in item}
    # A step that takes no input may leave args out.
    envelope.setdefault("args", [])
    return envelope


def parse_workflow(body: Any) -> WorkflowPlan:
    """Validate the structure of a workflow request (job envelopes are validated by the caller)."""
    if not isinstance(body, Mapping):
        raise invalid("the workflow must be a JSON object", field="body")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise invalid(f"name must be a string of at most {MAX_NAME_LENGTH} characters", field="name")
    kind = body.get("type")
    if kind is None and "steps" in body:
        return _graph(name, _job_list(body, "steps"))
    if kind == WorkflowType.CHAIN:
        steps = _job_list(body, "steps")
        return WorkflowPlan(
            name=name,
            type=WorkflowType.CHAIN,
            nodes=tuple(
                WorkflowNode(i, str(i), NodeKind.STEP, _envelope(s), (i - 1,) if i else ()) for i, s in enumerate(steps)
            ),
        )
    if kind in (WorkflowType.GROUP, WorkflowType.BATCH):
        jobs = _job_list(body, "jobs")
        nodes = [WorkflowNode(i, str(i), NodeKind.STEP, _envelope(j), ()) for i, j in enumerate(jobs)]
        if kind == WorkflowType.GROUP:
            if body.get("callbacks"):
                raise invalid("callbacks belong to batch workflows; use type 'batch'", field="callbacks")
            return WorkflowPlan(name=name, type=WorkflowType.GROUP, nodes=tuple(nodes))
        callbacks = body.get("callbacks")
        if not isinstance(callbacks, Mapping) or not any(callbacks.get(k) for k in CALLBACK_KINDS):
            raise invalid(
                "a batch needs callbacks with at least one of on_success, on_failure, on_complete", field="callbacks"
            )
        unknown = set(callbacks) - {k.value for k in CALLBACK_KINDS}
        if unknown:
            raise invalid(f"unknown callbacks: {', '.join(sorted(unknown))}", field="callbacks")
        all_jobs = tuple(range(len(jobs)))
        for callback_kind in CALLBACK_KINDS:
            callback = callbacks.get(callback_kind.value)
            if callback is None:
                continue
            if not isinstance(callback, Mapping):
                raise invalid(
                    f"callbacks.{callback_kind.value} must be a job object", field=f"callbacks.{callback_kind}"
                )
            nodes.append(WorkflowNode(len(nodes), callback_kind.value, callback_kind, _envelope(callback), all_jobs))
        return WorkflowPlan(name=name, type=WorkflowType.BATCH, nodes=tuple(nodes))
    if kind == WorkflowType.GRAPH:
        return _graph(name, _job_list(body, "steps"))
    raise invalid("type must be one of chain, group, batch (or omit it and give steps with ids)", field="type")


def _graph(name: str, steps: Sequence[Mapping[str, Any]]) -> WorkflowPlan:
    ids: list[str] = []
    depends: list[list[str]] = []
    for index, step in enumerate(steps):
        step_id = step.get("id")
        if not isinstance(step_id, str) or not step_id:
            raise invalid(f"steps[{index}].id must be a non-empty string", field=f"steps[{index}].id")
        check_name_bytes(step_id, field=f"steps[{index}].id")
        raw = step.get("depends_on", [])
        if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
            raise invalid(f"steps[{index}].depends_on must be a list of step ids", field=f"steps[{index}].depends_on")
        ids.append(step_id)
        depends.append(raw)
    edges = check_graph(ids, depends)
    return WorkflowPlan(
        name=name,
        type=WorkflowType.GRAPH,
        nodes=tuple(WorkflowNode(i, ids[i], NodeKind.STEP, _envelope(step), edges[i]) for i, step in enumerate(steps)),
    )


def check_graph(ids: Sequence[str], depends_on: Sequence[Sequence[str]]) -> list[tuple[int, ...]]:
    """Dependencies as node indices; rejects duplicate ids, unknown ids, self-dependencies and cycles."""
    position: dict[str, int] = {}
    for index, step_id in enumerate(ids):
        if step_id in position:
            raise invalid(f"duplicate step id {step_id!r}", field=f"steps[{index}].id")
        position[step_id] = index
    edges: list[tuple[int, ...]] = []
    for index, names in enumerate(depends_on):
        resolved = []
        for name in names:
            if name not in position:
                raise invalid(
                    f"step {ids[index]!r} depends on unknown step {name!r}", field=f"steps[{index}].depends_on"
                )
            if name == ids[index]:
                raise invalid(f"step {name!r} depends on itself", field=f"steps[{index}].depends_on")
            resolved.append(position[name])
        edges.append(tuple(dict.fromkeys(resolved)))
    cycle = _find_cycle(edges)
    if cycle:
        path = " -> ".join(ids[i] for i in cycle)
        raise invalid(f"the steps form a cycle: {path}", field="steps")
    return edges


def _find_cycle(edges: Sequence[Sequence[int]]) -> list[int]:
    """A cycle as a list of node indices (first repeated at the end), or [] when the graph is acyclic."""
    white, grey, black = 0, 1, 2
    color = [white] * len(edges)
    for root in range(len(edges)):
        if color[root] != white:
            continue
        # Iterative DFS: (node, next dependency position); the stack is the current path.
        stack: list[tuple[int, int]] = [(root, 0)]
        color[root] = grey
        while stack:
            node, position = stack[-1]
            if position < len(edges[node]):
                stack[-1] = (node, position + 1)
                nxt = edges[node][position]
                if color[nxt] == grey:
                    path = [n for n, _ in stack]
                    return [*path[path.index(nxt) :], nxt]
                if color[nxt] == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
            else:
                color[node] = black
                stack.pop()
    return []
