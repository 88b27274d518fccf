"""Workflows: create one in a script, read it back, cancel it.

The node table (one hash per workflow; see wf_settle.lua) is this module's and the
scripts' alone: callers write and read `NodeSpec` and `WorkflowRecord` values.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.domain.errors import conflict, not_found
from server.model.workflows import NodeRecord, NodeSpec, WorkflowRecord
from server.store import codec
from server.store.context import StoreContext
from server.store.errors import translate_redis_errors, unexpected
from server.store.jobs import JobStore
from server.store.new_jobs import member_entry
from server.store.status import ScriptStatus, status_of


class WorkflowStore:
    def __init__(self, ctx: StoreContext, jobs: JobStore) -> None:
        self._ctx = ctx
        self._jobs = jobs

    @translate_redis_errors
    async def create_workflow(
        self, workflow_id: str, *, name: str, kind: str, nodes: Sequence[NodeSpec], now_ms: int
    ) -> None:
        c = self._ctx
        k = c.keys
        encoded = [_encode_node(workflow_id, index, node) for index, node in enumerate(nodes)]
        await c.scripts.call(
            "wf_create",
            [
                k.workflow(workflow_id),
                k.workflow_nodes(workflow_id),
                k.events,
                k.sequence,
                k.queues,
                k.expiring,
                k.workflows,
            ],
            [now_ms, c.events_maxlen, workflow_id, name, kind, c.script_context, codec.dumps(encoded)],
        )

    @translate_redis_errors
    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow with its nodes and their jobs' live state; None when unknown."""
        k = self._ctx.keys
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.workflow(workflow_id))
            pipe.hgetall(k.workflow_nodes(workflow_id))
            workflow, nodes = await pipe.execute()
        if not workflow:
            return None
        count = _number(workflow, "node_count") or 0
        job_ids = [_text(nodes, f"j:{i}") for i in range(count)]
        live = await self._jobs.job_states(job_ids)
        return WorkflowRecord(
            id=_text(workflow, "id"),
            name=_text(workflow, "name"),
            type=_text(workflow, "type"),
            state=_text(workflow, "state"),
            steps_total=_number(workflow, "step_count") or 0,
            steps_completed=_number(workflow, "completed") or 0,
            steps_failed=_number(workflow, "failed") or 0,
            created_at_ms=_number(workflow, "created_at") or 0,
            started_at_ms=_number(workflow, "started_at"),
            completed_at_ms=_number(workflow, "completed_at"),
            cancelled_at_ms=_number(workflow, "cancelled_at"),
            nodes=tuple(_decode_node(nodes, i, job_ids[i], *live[i]) for i in range(count)),
        )

    @translate_redis_errors
    async def cancel_workflow(self, workflow_id: str, *, now_ms: int) -> tuple[int, int]:
        """(nodes cancelled, nodes already completed)."""
        c = self._ctx
        k = c.keys
        reply = await c.scripts.call(
            "wf_cancel",
            [k.workflow(workflow_id), k.workflow_nodes(workflow_id), k.events, k.active, k.expiring],
            [now_ms, c.events_maxlen, workflow_id, c.script_context],
        )
        status = status_of(reply[0], "wf_cancel")
        if status is ScriptStatus.NOT_FOUND:
            raise not_found("workflow", workflow_id)
        if status is ScriptStatus.CONFLICT:
            state = reply[1].decode()
            raise conflict(
                f"cannot cancel workflow '{workflow_id}': it is {state}", workflow_id=workflow_id, current_state=state
            )
        if status is not ScriptStatus.OK:
            raise unexpected("wf_cancel", status)
        return int(reply[1]), int(reply[2])


def _encode_node(workflow_id: str, index: int, node: NodeSpec) -> dict[str, object]:
    """A node as wf_create.lua reads it; its job also learns its workflow and node index."""
    fields = [*codec.new_job_fields(node.job), "workflow_id", workflow_id, "wf_node", str(index)]
    return {
        "id": node.id,
        "kind": node.kind,
        "deps": list(node.depends_on),
        "dependents": list(node.dependents),
        "job": member_entry(node.job, node.state, fields),
    }


def _decode_node(
    nodes: dict[bytes, bytes], index: int, job_id: str, job_state: str, job_type: str, result: bytes | None
) -> NodeRecord:
    return NodeRecord(
        index=index,
        id=_text(nodes, f"i:{index}") or str(index),
        kind=_text(nodes, f"k:{index}"),
        job_id=job_id,
        depends_on=tuple(int(d) for d in _text(nodes, f"p:{index}").split(",") if d),
        node_state=_text(nodes, f"s:{index}"),
        job_state=job_state,
        job_type=job_type,
        result_json=result,
    )


def _text(raw: dict[bytes, bytes], key: str) -> str:
    return raw.get(key.encode(), b"").decode()


def _number(raw: dict[bytes, bytes], key: str) -> int | None:
    value = raw.get(key.encode())
    return int(value) if value else None
