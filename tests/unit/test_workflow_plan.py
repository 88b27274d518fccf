"""Workflow plans: every shape becomes nodes and dependency edges; malformed graphs are refused."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from server.domain.errors import ErrorCode, OJSError
from server.domain.workflow import NodeKind, WorkflowPlan, WorkflowType, check_graph, parse_workflow


def job(job_type: str = "wf.step", *args: Any, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": job_type, "args": list(args)}
    if options:
        body["options"] = options
    return body


def rejected(body: Any) -> OJSError:
    with pytest.raises(OJSError) as caught:
        parse_workflow(body)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    return caught.value


def graph_rejected(ids: list[str], depends_on: list[list[str]]) -> OJSError:
    with pytest.raises(OJSError) as caught:
        check_graph(ids, depends_on)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    return caught.value


def edges(plan: WorkflowPlan) -> list[tuple[int, ...]]:
    return [node.depends_on for node in plan.nodes]


# --------------------------------------------------------------------------- shapes


def test_chain_is_a_path() -> None:
    plan = parse_workflow(
        {"type": "chain", "name": "etl", "steps": [job("etl.extract", 1), job("etl.transform"), job("etl.load")]}
    )
    assert plan.type is WorkflowType.CHAIN
    assert plan.name == "etl"
    assert [n.index for n in plan.nodes] == [0, 1, 2]
    assert [n.id for n in plan.nodes] == ["0", "1", "2"]
    assert {n.kind for n in plan.nodes} == {NodeKind.STEP}
    assert edges(plan) == [(), (0,), (1,)]
    assert plan.dependents() == [[1], [2], []]
    assert plan.nodes[0].envelope == {"type": "etl.extract", "args": [1]}


def test_chain_envelope_keeps_only_job_fields() -> None:
    step = {"type": "a.b", "args": [], "meta": {"k": 1}, "options": {"queue": "q"}, "x_other": True, "id": "z"}
    plan = parse_workflow({"type": "chain", "steps": [step]})
    assert plan.nodes[0].envelope == {"type": "a.b", "args": [], "meta": {"k": 1}, "options": {"queue": "q"}}
    assert plan.name == ""


def test_group_has_no_edges() -> None:
    plan = parse_workflow({"type": "group", "name": "fan", "jobs": [job(), job(), job(), job()]})
    assert plan.type is WorkflowType.GROUP
    assert len(plan.nodes) == 4
    assert edges(plan) == [(), (), (), ()]
    assert {n.kind for n in plan.nodes} == {NodeKind.STEP}
    assert plan.dependents() == [[], [], [], []]


def test_batch_callbacks_depend_on_every_job() -> None:
    plan = parse_workflow(
        {
            "type": "batch",
            "jobs": [job("b.one"), job("b.two"), job("b.three")],
            "callbacks": {
                "on_complete": job("b.done"),
                "on_success": job("b.ok"),
                "on_failure": job("b.bad"),
            },
        }
    )
    assert plan.type is WorkflowType.BATCH
    assert len(plan.nodes) == 6
    steps, callbacks = plan.nodes[:3], plan.nodes[3:]
    assert all(n.kind is NodeKind.STEP and n.depends_on == () for n in steps)
    # Callbacks follow the jobs in a fixed order: on_success, on_failure, on_complete.
    assert [(n.kind, n.id, n.envelope["type"]) for n in callbacks] == [
        (NodeKind.ON_SUCCESS, "on_success", "b.ok"),
        (NodeKind.ON_FAILURE, "on_failure", "b.bad"),
        (NodeKind.ON_COMPLETE, "on_complete", "b.done"),
    ]
    assert all(n.depends_on == (0, 1, 2) for n in callbacks)
    assert plan.dependents()[:3] == [[3, 4, 5]] * 3


def test_batch_with_a_single_callback() -> None:
    plan = parse_workflow({"type": "batch", "jobs": [job(), job()], "callbacks": {"on_failure": job("cb.x")}})
    assert [n.kind for n in plan.nodes] == [NodeKind.STEP, NodeKind.STEP, NodeKind.ON_FAILURE]
    assert plan.nodes[2].depends_on == (0, 1)
    assert plan.nodes[2].index == 2


def test_graph_with_ids_and_dependencies() -> None:
    body = {
        "name": "diamond",
        "steps": [
            {"id": "a", **job("g.a")},
            {"id": "b", "depends_on": ["a"], **job("g.b")},
            {"id": "c", "depends_on": ["a"], **job("g.c")},
            {"id": "d", "depends_on": ["b", "c"], **job("g.d")},
        ],
    }
    for variant in (body, {**body, "type": "graph"}):
        plan = parse_workflow(variant)
        assert plan.type is WorkflowType.GRAPH
        assert [n.id for n in plan.nodes] == ["a", "b", "c", "d"]
        assert edges(plan) == [(), (0,), (0,), (1, 2)]
        assert plan.dependents() == [[1, 2], [3], [3], []]
        assert plan.nodes[3].envelope == {"type": "g.d", "args": []}
        assert "id" not in plan.nodes[0].envelope and "depends_on" not in plan.nodes[3].envelope


def test_graph_dependencies_keep_their_order_and_drop_repeats() -> None:
    plan = parse_workflow(
        {
            "steps": [
                {"id": "x", **job()},
                {"id": "y", **job()},
                {"id": "z", "depends_on": ["y", "x", "y"], **job()},
            ]
        }
    )
    assert plan.nodes[2].depends_on == (1, 0)


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"type": "chain"}, "steps", "steps must be a non-empty list"),
        ({"type": "chain", "steps": []}, "steps", "steps must be a non-empty list"),
        ({"type": "chain", "steps": {"type": "a"}}, "steps", "steps must be a non-empty list"),
        ({"type": "group"}, "jobs", "jobs must be a non-empty list"),
        ({"type": "batch", "jobs": [], "callbacks": {"on_complete": job()}}, "jobs", "jobs must be a non-empty list"),
        ({"type": "chain", "steps": [job(), 7]}, "steps[1]", "steps[1] must be a JSON object"),
        ({"type": "group", "jobs": ["x"]}, "jobs[0]", "jobs[0] must be a JSON object"),
        (
            {"type": "chain", "steps": [job(), {"type": "chain", "steps": [job()]}]},
            "steps[1]",
            "nested workflows are not supported",
        ),
        (
            {"type": "group", "jobs": [{"type": "group", "jobs": [job()]}]},
            "jobs[0]",
            "nested workflows are not supported",
        ),
        ({"type": "batch", "jobs": [job()]}, "callbacks", "a batch needs callbacks"),
        ({"type": "batch", "jobs": [job()], "callbacks": {}}, "callbacks", "a batch needs callbacks"),
        ({"type": "batch", "jobs": [job()], "callbacks": {"on_success": None}}, "callbacks", "a batch needs"),
        (
            {"type": "batch", "jobs": [job()], "callbacks": {"on_success": job(), "on_finally": job()}},
            "callbacks",
            "unknown callbacks: on_finally",
        ),
        (
            {"type": "batch", "jobs": [job()], "callbacks": {"on_success": "cb.job"}},
            "callbacks.on_success",
            "callbacks.on_success must be a job object",
        ),
        (
            {"type": "group", "jobs": [job()], "callbacks": {"on_complete": job()}},
            "callbacks",
            "use type 'batch'",
        ),
        ({"type": "pipeline", "steps": [job()]}, "type", "type must be one of chain, group, batch"),
        ({"jobs": [job()]}, "type", "type must be one of"),
        ({"name": 5, "type": "chain", "steps": [job()]}, "name", "name must be a string"),
        ({"name": "n" * 256, "type": "chain", "steps": [job()]}, "name", "at most 255"),
        ({"steps": [job()]}, "steps[0].id", "steps[0].id must be a non-empty string"),
        ({"steps": [{"id": "", **job()}]}, "steps[0].id", "non-empty string"),
        (
            {"steps": [{"id": "a", **job()}, {"id": "b", "depends_on": "a", **job()}]},
            "steps[1].depends_on",
            "must be a list of step ids",
        ),
        (
            {"steps": [{"id": "a", **job()}, {"id": "b", "depends_on": [1], **job()}]},
            "steps[1].depends_on",
            "must be a list of step ids",
        ),
    ],
)
def test_malformed_workflows_are_rejected(body: dict[str, Any], field: str, fragment: str) -> None:
    error = rejected(body)
    assert error.details["field"] == field
    assert fragment in error.message


@pytest.mark.parametrize("body", [None, [], "chain", 3])
def test_a_workflow_must_be_an_object(body: Any) -> None:
    error = rejected(body)
    assert error.details["field"] == "body"
    assert "JSON object" in error.message


def test_too_many_nodes_are_rejected() -> None:
    error = rejected({"type": "group", "jobs": [job()] * 10_001})
    assert error.details["field"] == "jobs"
    assert "10000" in error.message


def test_graph_errors_surface_through_parse_workflow() -> None:
    error = rejected({"steps": [{"id": "a", "depends_on": ["b"], **job()}, {"id": "b", "depends_on": ["a"], **job()}]})
    assert error.details["field"] == "steps"
    assert "cycle" in error.message


# --------------------------------------------------------------------------- check_graph


def test_check_graph_returns_indices() -> None:
    assert check_graph(["a", "b", "c"], [[], ["a"], ["a", "b"]]) == [(), (0,), (0, 1)]


def test_duplicate_ids_are_rejected() -> None:
    error = graph_rejected(["a", "b", "a"], [[], [], []])
    assert error.details["field"] == "steps[2].id"
    assert "duplicate step id 'a'" in error.message


def test_unknown_dependency_is_rejected() -> None:
    error = graph_rejected(["a", "b"], [[], ["a", "ghost"]])
    assert error.details["field"] == "steps[1].depends_on"
    assert "'b'" in error.message and "unknown step 'ghost'" in error.message


def test_self_dependency_is_rejected() -> None:
    error = graph_rejected(["a", "b"], [[], ["b"]])
    assert error.details["field"] == "steps[1].depends_on"
    assert "step 'b' depends on itself" in error.message


def test_two_cycle_is_rejected() -> None:
    error = graph_rejected(["root", "a", "b"], [[], ["b"], ["a"]])
    assert error.details["field"] == "steps"
    assert "cycle" in error.message
    assert "a -> b -> a" in error.message or "b -> a -> b" in error.message


def test_longer_cycle_names_its_path() -> None:
    # a waits on d, d on c, c on b, b on a; e hangs off the cycle and is not part of it.
    error = graph_rejected(["a", "b", "c", "d", "e"], [["d"], ["a"], ["b"], ["c"], ["a"]])
    assert error.details["field"] == "steps"
    path = error.message.split("cycle: ", 1)[1]
    names = path.split(" -> ")
    assert names[0] == names[-1]
    assert sorted(names[:-1]) == ["a", "b", "c", "d"]
    # Every hop follows a real dependency edge.
    depends = {"a": "d", "b": "a", "c": "b", "d": "c"}
    assert all(depends[x] == y for x, y in itertools.pairwise(names))


def test_cycle_behind_an_acyclic_prefix_is_found() -> None:
    ids = ["s", "t", "u", "v"]
    error = graph_rejected(ids, [[], ["s", "v"], ["t"], ["u"]])
    path = error.message.split("cycle: ", 1)[1].split(" -> ")
    assert sorted(path[:-1]) == ["t", "u", "v"]
    assert "s" not in path


def test_diamond_is_accepted() -> None:
    assert check_graph(["a", "b", "c", "d"], [[], ["a"], ["a"], ["b", "c"]]) == [(), (0,), (0,), (1, 2)]


def test_shared_dependencies_without_a_cycle_are_accepted() -> None:
    # Many paths into the same node (a lattice) revisit finished nodes but are acyclic.
    ids = [f"n{i}" for i in range(30)]
    depends = [[f"n{j}" for j in range(max(0, i - 3), i)] for i in range(30)]
    result = check_graph(ids, depends)
    assert result[29] == (26, 27, 28)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_a_five_thousand_node_chain_is_accepted_quickly(direction: str) -> None:
    count = 5_000
    ids = [f"s{i}" for i in range(count)]
    if direction == "forward":
        depends = [[f"s{i - 1}"] if i else [] for i in range(count)]
    else:
        # Each node depends on the next one: a depth-first walk from the first node goes 5,000 deep.
        depends = [[f"s{i + 1}"] if i + 1 < count else [] for i in range(count)]
    started = time.perf_counter()
    result = check_graph(ids, depends)
    elapsed = time.perf_counter() - started
    assert len(result) == count
    assert result[1] == ((0,) if direction == "forward" else (2,))
    assert elapsed < 2.0


def test_a_five_thousand_node_cycle_is_reported_without_recursion_errors() -> None:
    count = 5_000
    ids = [f"s{i}" for i in range(count)]
    depends = [[f"s{(i + 1) % count}"] for i in range(count)]
    started = time.perf_counter()
    error = graph_rejected(ids, depends)
    assert time.perf_counter() - started < 2.0
    path = error.message.split("cycle: ", 1)[1].split(" -> ")
    assert len(path) == count + 1
    assert path[0] == path[-1]


def test_a_five_thousand_step_chain_workflow_parses_quickly() -> None:
    started = time.perf_counter()
    plan = parse_workflow({"type": "chain", "steps": [job()] * 5_000})
    graph = parse_workflow(
        {"steps": [{"id": f"s{i}", "depends_on": [f"s{i + 1}"] if i < 4_999 else [], **job()} for i in range(5_000)]}
    )
    assert time.perf_counter() - started < 3.0
    assert plan.nodes[-1].depends_on == (4_998,)
    assert graph.nodes[0].depends_on == (1,)
    assert graph.dependents()[4_999] == [4_998]
