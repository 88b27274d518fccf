"""Workflows over a real grpc.aio channel: the official graph fields, Fetch/Ack driving, Get and Cancel."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
from google.protobuf import struct_pb2
from ojs.v1 import job_pb2, worker_pb2, workflow_pb2

from server.domain.ids import new_uuid7
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue

WF = workflow_pb2
W = worker_pb2


def string(value: str) -> struct_pb2.Value:
    return struct_pb2.Value(string_value=value)


def number(value: float) -> struct_pb2.Value:
    return struct_pb2.Value(number_value=value)


def diamond(queue: str) -> Any:
    options = job_pb2.EnqueueOptions(queue=queue)
    return WF.CreateWorkflowRequest(
        name="diamond",
        steps=[
            WF.WorkflowStep(id="a", type="wf.extract", args=[string("src"), number(3)], options=options),
            WF.WorkflowStep(id="b", type="wf.left", depends_on=["a"], options=options),
            WF.WorkflowStep(id="c", type="wf.right", depends_on=["a"], options=options),
            WF.WorkflowStep(id="d", type="wf.join", depends_on=["b", "c"], options=options),
        ],
    )


async def fetch(stub: Any, queue: str, count: int = 10) -> list[Any]:
    response = await stub.Fetch(W.FetchRequest(queues=[queue], count=count, worker_id="wf-rpc"))
    return list(response.jobs)


async def ack(stub: Any, job_id: str, result: Any) -> Any:
    response = await stub.Ack(W.AckRequest(job_id=job_id, result_json=orjson.dumps(result), worker_id="wf-rpc"))
    assert response.acknowledged is True
    return response.job


async def get_workflow(stub: Any, workflow_id: str) -> Any:
    return (await stub.GetWorkflow(WF.GetWorkflowRequest(workflow_id=workflow_id))).workflow


def step_states(workflow: Any) -> dict[str, int]:
    return {s.id: s.state for s in workflow.steps}


async def test_diamond_from_the_official_fields_runs_to_completion(stub: Any) -> None:
    queue = new_queue("wf")
    created = (await stub.CreateWorkflow(diamond(queue))).workflow
    assert created.id
    assert created.name == "diamond"
    assert created.type == "graph"
    assert created.state == WF.WORKFLOW_STATE_RUNNING
    assert created.steps_total == 4
    assert created.HasField("created_at") and created.HasField("started_at")
    assert not created.HasField("completed_at")
    assert [(s.id, s.type, list(s.depends_on), s.kind) for s in created.steps] == [
        ("a", "wf.extract", [], "step"),
        ("b", "wf.left", ["a"], "step"),
        ("c", "wf.right", ["a"], "step"),
        ("d", "wf.join", ["b", "c"], "step"),
    ]
    assert step_states(created) == {
        "a": WF.WORKFLOW_STEP_STATE_PENDING,
        "b": WF.WORKFLOW_STEP_STATE_WAITING,
        "c": WF.WORKFLOW_STEP_STATE_WAITING,
        "d": WF.WORKFLOW_STEP_STATE_WAITING,
    }
    ids = {s.id: s.job_id for s in created.steps}
    assert all(ids.values()) and len(set(ids.values())) == 4

    [a] = await fetch(stub, queue)
    assert a.id == ids["a"]
    assert a.workflow_id == created.id
    assert a.type == "wf.extract"
    assert [v.string_value for v in a.args[:1]] == ["src"] and a.args[1].number_value == 3
    assert await fetch(stub, queue) == []
    assert step_states(await get_workflow(stub, created.id))["a"] == WF.WORKFLOW_STEP_STATE_ACTIVE

    await ack(stub, a.id, {"rows": 3})
    middle = await fetch(stub, queue)
    assert sorted(j.id for j in middle) == sorted([ids["b"], ids["c"]])
    for job in middle:
        assert orjson.loads(job.parent_results_json) == [{"rows": 3}]

    by_id = {j.id: j for j in middle}
    await ack(stub, by_id[ids["c"]].id, "right")
    assert await fetch(stub, queue) == []
    running = await get_workflow(stub, created.id)
    assert running.state == WF.WORKFLOW_STATE_RUNNING
    assert running.steps_completed == 2
    assert step_states(running) == {
        "a": WF.WORKFLOW_STEP_STATE_COMPLETED,
        "b": WF.WORKFLOW_STEP_STATE_ACTIVE,
        "c": WF.WORKFLOW_STEP_STATE_COMPLETED,
        "d": WF.WORKFLOW_STEP_STATE_WAITING,
    }
    await ack(stub, by_id[ids["b"]].id, "left")

    [d] = await fetch(stub, queue)
    assert d.id == ids["d"]
    assert orjson.loads(d.parent_results_json) == ["left", "right"]
    await ack(stub, d.id, {"joined": True})

    final = await get_workflow(stub, created.id)
    assert final.state == WF.WORKFLOW_STATE_COMPLETED
    assert final.steps_completed == 4
    assert final.steps_failed == 0
    assert final.HasField("completed_at")
    assert set(step_states(final).values()) == {WF.WORKFLOW_STEP_STATE_COMPLETED}
    assert {s.id: s.job_id for s in final.steps} == ids
    assert [list(s.depends_on) for s in final.steps] == [[], ["a"], ["a"], ["b", "c"]]
    results = {s.id: orjson.loads(s.result_json) for s in final.steps}
    assert results == {"a": {"rows": 3}, "b": "left", "c": "right", "d": {"joined": True}}


async def test_workflow_json_is_accepted_too(stub: Any) -> None:
    queue = new_queue("wf")
    body = {
        "type": "batch",
        "name": "json",
        "jobs": [{"type": "b.work", "args": [i], "options": {"queue": queue}} for i in range(2)],
        "callbacks": {"on_complete": {"type": "b.done", "args": [], "options": {"queue": queue}}},
    }
    created = (await stub.CreateWorkflow(WF.CreateWorkflowRequest(workflow_json=orjson.dumps(body)))).workflow
    assert created.type == "batch"
    assert created.steps_total == 2
    assert [s.kind for s in created.steps] == ["step", "step", "on_complete"]
    for job in await fetch(stub, queue):
        await ack(stub, job.id, job.args[0].number_value)
    [callback] = await fetch(stub, queue)
    assert callback.type == "b.done"
    assert orjson.loads(callback.parent_results_json) == [0, 1]
    await ack(stub, callback.id, None)
    assert (await get_workflow(stub, created.id)).state == WF.WORKFLOW_STATE_COMPLETED


async def test_a_cycle_in_the_official_fields_is_invalid(stub: Any) -> None:
    queue = new_queue("wf")
    options = job_pb2.EnqueueOptions(queue=queue)
    request = WF.CreateWorkflowRequest(
        name="loop",
        steps=[
            WF.WorkflowStep(id="start", type="wf.start", options=options),
            WF.WorkflowStep(id="ping", type="wf.ping", depends_on=["start", "pong"], options=options),
            WF.WorkflowStep(id="pong", type="wf.pong", depends_on=["ping"], options=options),
        ],
    )
    error = await failure(stub.CreateWorkflow(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(error)
    assert info.reason == "invalid_request"
    assert info.metadata["field"] == "steps"
    details = error.details() or ""
    assert "cycle" in details
    assert "ping -> pong -> ping" in details or "pong -> ping -> pong" in details
    # Nothing was created.
    assert await fetch(stub, queue) == []


async def test_invalid_official_steps_name_their_position(stub: Any) -> None:
    queue = new_queue("wf")
    options = job_pb2.EnqueueOptions(queue=queue)
    unknown = WF.CreateWorkflowRequest(
        steps=[WF.WorkflowStep(id="a", type="wf.a", depends_on=["ghost"], options=options)]
    )
    error = await failure(stub.CreateWorkflow(unknown))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "steps[0].depends_on"
    assert "ghost" in (error.details() or "")

    untyped = WF.CreateWorkflowRequest(
        steps=[
            WF.WorkflowStep(id="a", type="wf.a", options=options),
            WF.WorkflowStep(id="b", depends_on=["a"], options=options),
        ]
    )
    error = await failure(stub.CreateWorkflow(untyped))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "steps[1].type"

    error = await failure(stub.CreateWorkflow(WF.CreateWorkflowRequest(name="empty")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "steps"
    assert await fetch(stub, queue) == []


async def test_cancel_workflow_reports_the_steps_it_cancelled(stub: Any) -> None:
    queue = new_queue("wf")
    created = (await stub.CreateWorkflow(diamond(queue))).workflow
    ids = {s.id: s.job_id for s in created.steps}
    [a] = await fetch(stub, queue)
    await ack(stub, a.id, "a")
    [held] = await fetch(stub, queue, count=1)

    response = await stub.CancelWorkflow(WF.CancelWorkflowRequest(workflow_id=created.id, reason="stop"))
    assert response.steps_cancelled == 3
    assert response.steps_already_completed == 1
    workflow = response.workflow
    assert workflow.state == WF.WORKFLOW_STATE_CANCELLED
    assert workflow.HasField("cancelled_at")
    assert step_states(workflow) == {
        "a": WF.WORKFLOW_STEP_STATE_COMPLETED,
        "b": WF.WORKFLOW_STEP_STATE_CANCELLED,
        "c": WF.WORKFLOW_STEP_STATE_CANCELLED,
        "d": WF.WORKFLOW_STEP_STATE_CANCELLED,
    }
    for step_id in "bcd":
        job = (await stub.GetJob(job_pb2.GetJobRequest(job_id=ids[step_id]))).job
        assert job.state == job_pb2.JOB_STATE_CANCELLED
    assert await fetch(stub, queue) == []

    error = await failure(stub.Ack(W.AckRequest(job_id=held.id, worker_id="wf-rpc")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "conflict"

    again = await failure(stub.CancelWorkflow(WF.CancelWorkflowRequest(workflow_id=created.id)))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(again).reason == "conflict"
    assert (await get_workflow(stub, created.id)).state == WF.WORKFLOW_STATE_CANCELLED


async def test_unknown_workflows_are_not_found(stub: Any) -> None:
    for workflow_id in (new_uuid7(), "no-such-workflow"):
        error = await failure(stub.GetWorkflow(WF.GetWorkflowRequest(workflow_id=workflow_id)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(error).reason == "not_found"
        error = await failure(stub.CancelWorkflow(WF.CancelWorkflowRequest(workflow_id=workflow_id)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(error).reason == "not_found"
    error = await failure(stub.GetWorkflow(WF.GetWorkflowRequest(workflow_id="")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_failed_step_fails_the_workflow_over_grpc(stub: Any) -> None:
    queue = new_queue("wf")
    options = job_pb2.EnqueueOptions(queue=queue, max_attempts=1)
    created = (
        await stub.CreateWorkflow(
            WF.CreateWorkflowRequest(
                name="fails",
                steps=[
                    WF.WorkflowStep(id="first", type="wf.first", options=options),
                    WF.WorkflowStep(id="second", type="wf.second", depends_on=["first"], options=options),
                ],
            )
        )
    ).workflow
    [first] = await fetch(stub, queue)
    response = await stub.Nack(W.NackRequest(job_id=first.id, error=job_pb2.JobError(code="bad", message="no")))
    assert response.state == job_pb2.JOB_STATE_DISCARDED
    final = await get_workflow(stub, created.id)
    assert final.state == WF.WORKFLOW_STATE_FAILED
    assert final.steps_failed == 2
    assert step_states(final) == {
        "first": WF.WORKFLOW_STEP_STATE_FAILED,
        "second": WF.WORKFLOW_STEP_STATE_CANCELLED,
    }
    assert await fetch(stub, queue) == []
