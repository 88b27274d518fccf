"""Workflow routes: the request message each builds and the workflow object W it renders."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from ojs.v1 import workflow_pb2

from tests.gateway.conftest import JOB_ID, MEDIA_TYPE, FakeClient, MakeClient, rpc_error, ts

WORKFLOW_ID = "019539a4-b68c-7def-8000-0000000f1000"
SECOND_JOB_ID = "019539a4-b68c-7def-8000-1a2b3c4d5e70"

CHAIN = (
    b'{"type": "chain", "name": "etl", "steps": ['
    b'{"type": "etl.extract", "args": [18446744073709551617, 1.50], "options": {"queue": "etl"}},'
    b'{"type": "etl.load", "args": [], "x_unknown": true}]}'
)


def step(**fields: Any) -> workflow_pb2.WorkflowStepStatus:
    defaults: dict[str, Any] = {
        "type": "etl.extract",
        "kind": "step",
        "state": workflow_pb2.WORKFLOW_STEP_STATE_WAITING,
    }
    return workflow_pb2.WorkflowStepStatus(**{**defaults, **fields})


def running_chain(**fields: Any) -> workflow_pb2.Workflow:
    defaults: dict[str, Any] = {
        "id": WORKFLOW_ID,
        "name": "etl",
        "type": "chain",
        "state": workflow_pb2.WORKFLOW_STATE_RUNNING,
        "steps": [
            step(id="0", state=workflow_pb2.WORKFLOW_STEP_STATE_PENDING, job_id=JOB_ID),
            step(id="1", type="etl.load", depends_on=["0"]),
        ],
        "steps_total": 2,
        "created_at": ts("2026-02-12T10:30:00.123Z"),
        "started_at": ts("2026-02-12T10:30:00.123Z"),
    }
    return workflow_pb2.Workflow(**{**defaults, **fields})


RUNNING_CHAIN: dict[str, Any] = {
    "id": WORKFLOW_ID,
    "name": "etl",
    "type": "chain",
    "state": "running",
    "steps_total": 2,
    "steps_completed": 0,
    "steps_failed": 0,
    "jobs_total": 2,
    "jobs_completed": 0,
    "created_at": "2026-02-12T10:30:00.123Z",
    "started_at": "2026-02-12T10:30:00.123Z",
    "steps": [
        {
            "index": 0,
            "id": "0",
            "type": "etl.extract",
            "kind": "step",
            "state": "pending",
            "job_id": JOB_ID,
            "depends_on": [],
        },
        {
            "index": 1,
            "id": "1",
            "type": "etl.load",
            "kind": "step",
            "state": "waiting",
            "job_id": None,
            "depends_on": ["0"],
        },
    ],
    "metadata": {
        "created_at": "2026-02-12T10:30:00.123Z",
        "started_at": "2026-02-12T10:30:00.123Z",
        "job_count": 2,
        "completed_count": 0,
        "failed_count": 0,
    },
}


class TestCreate:
    async def test_raw_body_goes_to_the_server(self, make_client: MakeClient) -> None:
        fake = FakeClient(CreateWorkflow=workflow_pb2.CreateWorkflowResponse(workflow=running_chain()))
        client = await make_client(fake)

        await client.post("/ojs/v1/workflows", data=CHAIN, headers={"Content-Type": MEDIA_TYPE})

        request, metadata = fake.last("CreateWorkflow")
        assert request.workflow_json == CHAIN
        assert not request.name and not request.steps
        assert metadata["x-ojs-request-id"]

    async def test_created(self, make_client: MakeClient) -> None:
        client = await make_client(
            FakeClient(CreateWorkflow=workflow_pb2.CreateWorkflowResponse(workflow=running_chain()))
        )

        resp = await client.post("/ojs/v1/workflows", data=CHAIN, headers={"Content-Type": MEDIA_TYPE})

        assert resp.status == 201
        assert resp.headers["Content-Type"] == MEDIA_TYPE
        assert resp.headers["Location"] == f"/ojs/v1/workflows/{WORKFLOW_ID}"
        assert await resp.json(content_type=None) == {"workflow": RUNNING_CHAIN}

    @pytest.mark.parametrize(
        "body",
        [b"", b"  ", b"{ invalid json }", b'[{"type": "chain"}]', b'"chain"', b"null"],
        ids=["empty", "blank", "invalid", "array", "string", "null"],
    )
    async def test_body_must_be_a_json_object(self, make_client: MakeClient, body: bytes) -> None:
        fake = FakeClient()
        client = await make_client(fake)

        resp = await client.post("/ojs/v1/workflows", data=body, headers={"Content-Type": MEDIA_TYPE})

        assert resp.status == 400
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "invalid_payload" and error["message"]
        assert fake.calls == []

    async def test_invalid_workflow(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "a chain needs at least one step")
        client = await make_client(FakeClient(CreateWorkflow=failure))

        resp = await client.post("/ojs/v1/workflows", json={"type": "chain", "name": "empty", "steps": []})

        assert resp.status == 400
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "invalid_request" and error["message"] == "a chain needs at least one step"


class TestRendering:
    async def render(self, make_client: MakeClient, workflow: workflow_pb2.Workflow) -> tuple[bytes, dict[str, Any]]:
        client = await make_client(FakeClient(GetWorkflow=workflow_pb2.GetWorkflowResponse(workflow=workflow)))
        resp = await client.get(f"/ojs/v1/workflows/{workflow.id}")
        assert resp.status == 200
        raw = await resp.read()
        body = orjson.loads(raw)
        assert list(body) == ["workflow"]
        return raw, body["workflow"]

    async def test_running_chain(self, make_client: MakeClient) -> None:
        _, workflow = await self.render(make_client, running_chain())
        assert workflow == RUNNING_CHAIN

    async def test_unset_timestamps_are_omitted(self, make_client: MakeClient) -> None:
        bare = running_chain()
        bare.ClearField("started_at")

        _, workflow = await self.render(make_client, bare)

        for name in ("started_at", "completed_at", "cancelled_at"):
            assert name not in workflow
            assert name not in workflow["metadata"]
        assert workflow["created_at"] == workflow["metadata"]["created_at"] == "2026-02-12T10:30:00.123Z"

    async def test_finished_group(self, make_client: MakeClient) -> None:
        finished = workflow_pb2.Workflow(
            id=WORKFLOW_ID,
            name="fan-out",
            type="group",
            state=workflow_pb2.WORKFLOW_STATE_FAILED,
            steps=[
                step(
                    id="0",
                    state=workflow_pb2.WORKFLOW_STEP_STATE_COMPLETED,
                    job_id=JOB_ID,
                    result_json=b'{"rows":18446744073709551617,"ratio":1.50}',
                ),
                step(id="1", state=workflow_pb2.WORKFLOW_STEP_STATE_FAILED, job_id=SECOND_JOB_ID),
            ],
            steps_total=2,
            steps_completed=1,
            steps_failed=1,
            created_at=ts("2026-02-12T10:30:00Z"),
            started_at=ts("2026-02-12T10:30:00Z"),
            completed_at=ts("2026-02-12T10:31:02.500Z"),
        )

        raw, workflow = await self.render(make_client, finished)

        assert workflow["state"] == "failed" and workflow["type"] == "group"
        assert (workflow["jobs_total"], workflow["jobs_completed"]) == (2, 1)
        assert (workflow["steps_total"], workflow["steps_completed"], workflow["steps_failed"]) == (2, 1, 1)
        assert workflow["completed_at"] == "2026-02-12T10:31:02.500Z"
        assert "cancelled_at" not in workflow
        assert workflow["metadata"] == {
            "created_at": "2026-02-12T10:30:00Z",
            "started_at": "2026-02-12T10:30:00Z",
            "completed_at": "2026-02-12T10:31:02.500Z",
            "job_count": 2,
            "completed_count": 1,
            "failed_count": 1,
        }
        assert [s["state"] for s in workflow["steps"]] == ["completed", "failed"]
        assert [s["job_id"] for s in workflow["steps"]] == [JOB_ID, SECOND_JOB_ID]
        # The result reaches the client as the server stored it, numbers untouched.
        assert b'"result":{"rows":18446744073709551617,"ratio":1.50}' in raw
        assert "result" not in workflow["steps"][1]

    async def test_batch_callbacks(self, make_client: MakeClient) -> None:
        batch = running_chain(
            type="batch",
            steps=[
                step(id="0", state=workflow_pb2.WORKFLOW_STEP_STATE_ACTIVE, job_id=JOB_ID),
                step(id="on_complete", type="batch.notify", kind="on_complete", depends_on=["0"]),
            ],
            steps_total=1,
        )

        _, workflow = await self.render(make_client, batch)

        assert [(s["index"], s["kind"], s["state"]) for s in workflow["steps"]] == [
            (0, "step", "active"),
            (1, "on_complete", "waiting"),
        ]
        assert workflow["jobs_total"] == 1 and workflow["metadata"]["job_count"] == 1

    @pytest.mark.parametrize(
        ("state", "word"),
        [
            (workflow_pb2.WORKFLOW_STATE_RUNNING, "running"),
            (workflow_pb2.WORKFLOW_STATE_COMPLETED, "completed"),
            (workflow_pb2.WORKFLOW_STATE_FAILED, "failed"),
            (workflow_pb2.WORKFLOW_STATE_CANCELLED, "cancelled"),
        ],
    )
    async def test_workflow_states(
        self, make_client: MakeClient, state: workflow_pb2.WorkflowState.ValueType, word: str
    ) -> None:
        _, workflow = await self.render(make_client, running_chain(state=state))
        assert workflow["state"] == word

    @pytest.mark.parametrize(
        ("state", "word"),
        [
            (workflow_pb2.WORKFLOW_STEP_STATE_WAITING, "waiting"),
            (workflow_pb2.WORKFLOW_STEP_STATE_PENDING, "pending"),
            (workflow_pb2.WORKFLOW_STEP_STATE_ACTIVE, "active"),
            (workflow_pb2.WORKFLOW_STEP_STATE_COMPLETED, "completed"),
            (workflow_pb2.WORKFLOW_STEP_STATE_FAILED, "failed"),
            (workflow_pb2.WORKFLOW_STEP_STATE_CANCELLED, "cancelled"),
        ],
    )
    async def test_step_states(
        self, make_client: MakeClient, state: workflow_pb2.WorkflowStepState.ValueType, word: str
    ) -> None:
        _, workflow = await self.render(make_client, running_chain(steps=[step(id="0", state=state)]))
        assert workflow["steps"][0]["state"] == word


class TestGet:
    async def test_request(self, make_client: MakeClient) -> None:
        fake = FakeClient(GetWorkflow=workflow_pb2.GetWorkflowResponse(workflow=running_chain()))
        client = await make_client(fake)

        resp = await client.get(f"/ojs/v1/workflows/{WORKFLOW_ID}")

        assert resp.status == 200
        request, metadata = fake.last("GetWorkflow")
        assert request == workflow_pb2.GetWorkflowRequest(workflow_id=WORKFLOW_ID)
        assert metadata["x-ojs-request-id"] == resp.headers["X-Request-Id"]

    async def test_not_found(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", "workflow 'missing' not found")
        client = await make_client(FakeClient(GetWorkflow=failure))

        resp = await client.get("/ojs/v1/workflows/missing")

        assert resp.status == 404
        error = (await resp.json(content_type=None))["error"]
        assert error["code"] == "not_found" and error["message"] == "workflow 'missing' not found"


class TestCancel:
    async def test_cancelled(self, make_client: MakeClient) -> None:
        cancelled = running_chain(
            state=workflow_pb2.WORKFLOW_STATE_CANCELLED,
            steps=[
                step(id="0", state=workflow_pb2.WORKFLOW_STEP_STATE_COMPLETED, job_id=JOB_ID, result_json=b'{"n":1}'),
                step(id="1", type="etl.load", state=workflow_pb2.WORKFLOW_STEP_STATE_CANCELLED, depends_on=["0"]),
            ],
            steps_completed=1,
            steps_failed=1,
            cancelled_at=ts("2026-02-12T10:31:00Z"),
        )
        response = workflow_pb2.CancelWorkflowResponse(workflow=cancelled, steps_cancelled=1, steps_already_completed=1)
        fake = FakeClient(CancelWorkflow=response)
        client = await make_client(fake)

        resp = await client.delete(f"/ojs/v1/workflows/{WORKFLOW_ID}")

        assert resp.status == 200
        request, _ = fake.last("CancelWorkflow")
        assert request == workflow_pb2.CancelWorkflowRequest(workflow_id=WORKFLOW_ID)
        assert await resp.json(content_type=None) == {
            "workflow": {
                **RUNNING_CHAIN,
                "state": "cancelled",
                "steps_completed": 1,
                "steps_failed": 1,
                "jobs_completed": 1,
                "cancelled_at": "2026-02-12T10:31:00Z",
                "steps": [
                    {**RUNNING_CHAIN["steps"][0], "state": "completed", "result": {"n": 1}},
                    {**RUNNING_CHAIN["steps"][1], "state": "cancelled"},
                ],
                "metadata": {**RUNNING_CHAIN["metadata"], "completed_count": 1, "failed_count": 1},
                "steps_cancelled": 1,
                "steps_already_completed": 1,
            }
        }

    async def test_counters_are_always_present(self, make_client: MakeClient) -> None:
        response = workflow_pb2.CancelWorkflowResponse(
            workflow=running_chain(state=workflow_pb2.WORKFLOW_STATE_CANCELLED)
        )
        client = await make_client(FakeClient(CancelWorkflow=response))

        resp = await client.delete(f"/ojs/v1/workflows/{WORKFLOW_ID}")

        workflow = (await resp.json(content_type=None))["workflow"]
        assert workflow["steps_cancelled"] == 0 and workflow["steps_already_completed"] == 0

    async def test_not_found(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", "workflow 'missing' not found")
        client = await make_client(FakeClient(CancelWorkflow=failure))

        resp = await client.delete("/ojs/v1/workflows/missing")

        assert resp.status == 404
        assert (await resp.json(content_type=None))["error"]["code"] == "not_found"

    async def test_already_finished(self, make_client: MakeClient) -> None:
        failure = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "conflict", "workflow is already completed")
        client = await make_client(FakeClient(CancelWorkflow=failure))

        resp = await client.delete(f"/ojs/v1/workflows/{WORKFLOW_ID}")

        assert resp.status == 409
        assert (await resp.json(content_type=None))["error"]["code"] == "conflict"
