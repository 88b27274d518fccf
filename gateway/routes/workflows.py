"""Create, read and cancel workflows."""

from __future__ import annotations

from aiohttp import web
from ojs.v1 import workflow_pb2

from gateway.convert.common import json_object
from gateway.convert.workflows import render_cancelled_workflow, workflow_to_json
from gateway.routes.base import RouteGroup, json_response, rpc_metadata


class WorkflowRoutes(RouteGroup):
    """Create, read and cancel workflows."""

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/ojs/v1/workflows", self.create_workflow)
        router.add_get("/ojs/v1/workflows/{id}", self.get_workflow)
        router.add_delete("/ojs/v1/workflows/{id}", self.cancel_workflow)

    async def create_workflow(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # Only checked for shape; the server reads every workflow form and validates it.
        json_object(raw)
        rpc = workflow_pb2.CreateWorkflowRequest(workflow_json=raw)
        response = await self._client.CreateWorkflow(rpc, metadata=rpc_metadata(request))
        workflow = workflow_to_json(response.workflow)
        return json_response(
            {"workflow": workflow}, status=201, headers={"Location": f"/ojs/v1/workflows/{response.workflow.id}"}
        )

    async def get_workflow(self, request: web.Request) -> web.Response:
        rpc = workflow_pb2.GetWorkflowRequest(workflow_id=request.match_info["id"])
        response = await self._client.GetWorkflow(rpc, metadata=rpc_metadata(request))
        return json_response({"workflow": workflow_to_json(response.workflow)})

    async def cancel_workflow(self, request: web.Request) -> web.Response:
        rpc = workflow_pb2.CancelWorkflowRequest(workflow_id=request.match_info["id"])
        response = await self._client.CancelWorkflow(rpc, metadata=rpc_metadata(request))
        return json_response(render_cancelled_workflow(response))
