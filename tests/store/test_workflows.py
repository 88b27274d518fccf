"""The workflow engine on a real redis-server: dependency release, failure cascades, callbacks, cancellation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.ids import new_uuid7
from server.domain.job import StoredJob
from server.domain.states import TERMINAL, JobState
from server.model.records import FailureReport, Retention
from server.service.workflows import WorkflowService, WorkflowView
from server.store.facade import Store
from server.store.keys import KeySchema

WORKER = "wf-worker"
LEASE_MS = 60_000
DAY_MS = 86_400_000

FAIL_NOW = {"retry": {"max_attempts": 1}}


def step(job_type: str, *args: Any, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": job_type, "args": list(args)}
    if options:
        body["options"] = options
    return body


def node(step_id: str, job_type: str, *depends_on: str, **options: Any) -> dict[str, Any]:
    return {"id": step_id, "depends_on": list(depends_on), **step(job_type, **options)}


DIAMOND = {
    "name": "diamond",
    "steps": [
        node("a", "wf.a", queue="wf"),
        node("b", "wf.b", "a", queue="wf"),
        node("c", "wf.c", "a", queue="wf"),
        node("d", "wf.d", "b", "c", queue="wf"),
    ],
}


@pytest.fixture
def service(store: Store) -> WorkflowService:
    return WorkflowService(store)


async def fetch(store: Store, *queues: str, at: int | None = None, count: int = 50) -> list[StoredJob]:
    return await store.leases.fetch(
        list(queues) or ["wf"],
        count=count,
        worker_id=WORKER,
        lease_ms=None,
        default_lease_ms=LEASE_MS,
        now_ms=now_ms() if at is None else at,
    )


async def ack(store: Store, job_id: str, result: Any = None, *, at: int | None = None) -> StoredJob:
    return await store.leases.ack(
        job_id,
        result_json=None if result is None else orjson.dumps(result),
        worker_id=WORKER,
        now_ms=now_ms() if at is None else at,
    )


async def fail(store: Store, job_id: str, *, at: int | None = None) -> StoredJob:
    report = FailureReport(
        code="boom",
        message="step failed",
        error_type="boom",
        details=None,
        backtrace=None,
        retryable=None,
        requeue=False,
    )
    return await store.leases.nack(job_id, report, worker_id=WORKER, now_ms=now_ms() if at is None else at)


async def job(store: Store, job_id: str) -> StoredJob:
    stored = await store.jobs.get(job_id)
    assert stored is not None, f"job {job_id} is gone"
    return stored


def states(view: WorkflowView) -> dict[str, str]:
    return {s.id: s.state for s in view.steps}


def job_ids(view: WorkflowView) -> dict[str, str]:
    return {s.id: s.job_id for s in view.steps}


async def workflow_events(store: Store, workflow_id: str, event_type: str) -> list[dict[str, Any]]:
    found = []
    for event in await store.events.read_events(after=None, count=1_000_000):
        data = orjson.loads(event.data_json)
        if event.type == event_type and data.get("workflow_id") == workflow_id:
            found.append(data)
    return found


async def expect_error(code: ErrorCode, call: Any) -> OJSError:
    with pytest.raises(OJSError) as caught:
        await call
    assert caught.value.code is code, caught.value
    return caught.value


# --------------------------------------------------------------------------- dependency graphs


async def test_diamond_releases_steps_as_their_dependencies_complete(store: Store, service: WorkflowService) -> None:
    view = await service.create(DIAMOND)
    assert view.state == "running"
    assert view.type == "graph"
    assert view.name == "diamond"
    assert view.steps_total == 4
    assert states(view) == {"a": "pending", "b": "waiting", "c": "waiting", "d": "waiting"}
    assert [s.depends_on for s in view.steps] == [(), ("a",), ("a",), ("b", "c")]
    ids = job_ids(view)
    assert len(set(ids.values())) == 4
    for step_id in "bcd":
        pending = await job(store, ids[step_id])
        assert pending.state is JobState.PENDING
        assert pending.workflow_id == view.id

    first = await fetch(store)
    assert [j.id for j in first] == [ids["a"]]
    assert first[0].workflow_id == view.id
    assert first[0].parent_results_json is None
    assert states(await service.get(view.id))["a"] == "active"
    assert await fetch(store) == []

    await ack(store, ids["a"], {"from": "a"})
    view = await service.get(view.id)
    assert states(view) == {"a": "completed", "b": "pending", "c": "pending", "d": "waiting"}
    assert view.steps_completed == 1
    assert view.steps[0].result_json is not None and orjson.loads(view.steps[0].result_json) == {"from": "a"}

    middle = await fetch(store)
    assert sorted(j.id for j in middle) == sorted([ids["b"], ids["c"]])
    for fetched in middle:
        assert fetched.parent_results_json is not None
        assert orjson.loads(fetched.parent_results_json) == [{"from": "a"}]
    assert await fetch(store) == []

    # c finishes first; d still waits for b, and receives results in dependency order, not completion order.
    await ack(store, ids["c"], "result-c")
    assert await fetch(store) == []
    assert (await job(store, ids["d"])).state is JobState.PENDING
    assert states(await service.get(view.id))["d"] == "waiting"
    await ack(store, ids["b"], ["result", "b"])

    [last] = await fetch(store)
    assert last.id == ids["d"]
    assert last.parent_results_json is not None
    assert orjson.loads(last.parent_results_json) == [["result", "b"], "result-c"]
    assert (await service.get(view.id)).state == "running"
    await ack(store, ids["d"], {"done": True})

    final = await service.get(view.id)
    assert final.state == "completed"
    assert final.steps_completed == 4
    assert final.steps_failed == 0
    assert set(states(final).values()) == {"completed"}
    assert final.completed_at_ms is not None and final.completed_at_ms >= final.created_at_ms
    assert len(await workflow_events(store, view.id, "workflow.completed")) == 1
    assert len(await workflow_events(store, view.id, "workflow.started")) == 1
    assert len(await workflow_events(store, view.id, "workflow.step_completed")) == 4


async def test_parent_results_use_null_for_steps_acked_without_a_result(store: Store, service: WorkflowService) -> None:
    view = await service.create({"type": "chain", "steps": [step("c.one", queue="wf"), step("c.two", queue="wf")]})
    [first] = await fetch(store)
    await ack(store, first.id)
    [second] = await fetch(store)
    assert second.parent_results_json is not None
    assert orjson.loads(second.parent_results_json) == [None]
    await ack(store, second.id, 2)
    assert (await service.get(view.id)).state == "completed"


async def test_chain_failure_cancels_the_remaining_steps(store: Store, service: WorkflowService) -> None:
    view = await service.create(
        {
            "type": "chain",
            "name": "pipeline",
            "steps": [
                step("c.first", queue="wf"),
                step("c.second", queue="wf", **FAIL_NOW),
                step("c.third", queue="wf"),
                step("c.fourth", queue="wf"),
            ],
        }
    )
    ids = job_ids(view)
    assert states(view) == {"0": "pending", "1": "waiting", "2": "waiting", "3": "waiting"}

    [first] = await fetch(store)
    await ack(store, first.id, "one")
    [second] = await fetch(store)
    assert second.id == ids["1"]
    failed = await fail(store, second.id)
    assert failed.state is JobState.DISCARDED

    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 1
    assert final.steps_failed == 3
    assert states(final) == {"0": "completed", "1": "failed", "2": "cancelled", "3": "cancelled"}
    for step_id in ("2", "3"):
        assert (await job(store, ids[step_id])).state is JobState.CANCELLED
    assert await fetch(store, at=now_ms() + DAY_MS) == []
    assert len(await workflow_events(store, view.id, "workflow.failed")) == 1
    assert await workflow_events(store, view.id, "workflow.completed") == []


async def test_a_long_chain_failure_cascades_at_once(store: Store, service: WorkflowService) -> None:
    size = 2_000
    view = await service.create(
        {
            "type": "chain",
            "steps": [step("c.first", queue="wf", **FAIL_NOW)] + [step("c.rest", queue="wf")] * (size - 1),
        }
    )
    assert view.steps_total == size
    [first] = await fetch(store)
    await fail(store, first.id)
    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 0
    assert final.steps_failed == size
    assert set(states(final).values()) == {"failed", "cancelled"}
    assert [s.state for s in final.steps].count("cancelled") == size - 1
    assert (await job(store, final.steps[-1].job_id)).state is JobState.CANCELLED
    assert await fetch(store, at=now_ms() + DAY_MS) == []


async def test_a_retryable_failure_does_not_move_the_workflow(store: Store, service: WorkflowService) -> None:
    t0 = now_ms()
    view = await service.create(
        {
            "type": "chain",
            "steps": [
                step("c.flaky", queue="wf", retry={"max_attempts": 2, "initial_interval_ms": 1000, "jitter": False}),
                step("c.after", queue="wf"),
            ],
        }
    )
    ids = job_ids(view)
    await fetch(store, at=t0)
    retrying = await fail(store, ids["0"], at=t0)
    assert retrying.state is JobState.RETRYABLE
    current = await service.get(view.id)
    assert current.state == "running"
    assert states(current) == {"0": "active", "1": "waiting"}
    assert current.steps_failed == 0

    [again] = await fetch(store, at=t0 + 5_000)
    assert again.id == ids["0"] and again.attempt == 2
    await ack(store, again.id, "ok", at=t0 + 5_000)
    [after] = await fetch(store, at=t0 + 5_000)
    assert after.id == ids["1"]


async def test_cancelling_a_member_job_fails_the_workflow(store: Store, service: WorkflowService) -> None:
    view = await service.create(
        {"type": "chain", "steps": [step("c.one", queue="wf"), step("c.two", queue="wf"), step("c.three", queue="wf")]}
    )
    ids = job_ids(view)
    [first] = await fetch(store)
    await ack(store, first.id, 1)
    assert (await job(store, ids["1"])).state is JobState.AVAILABLE

    previous, cancelled = await store.jobs.cancel(ids["1"], reason="user", now_ms=now_ms())
    assert previous is JobState.AVAILABLE
    assert cancelled.state is JobState.CANCELLED

    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 1
    assert final.steps_failed == 2
    assert states(final)["2"] == "cancelled"
    assert (await job(store, ids["2"])).state is JobState.CANCELLED
    assert await fetch(store) == []


async def test_cancelling_a_waiting_member_cancels_its_dependents(store: Store, service: WorkflowService) -> None:
    view = await service.create(
        {"type": "chain", "steps": [step("c.one", queue="wf"), step("c.two", queue="wf"), step("c.three", queue="wf")]}
    )
    ids = job_ids(view)
    [first] = await fetch(store)
    await store.jobs.cancel(ids["1"], reason="", now_ms=now_ms())
    current = await service.get(view.id)
    # The first step is still running, so the workflow is too.
    assert current.state == "running"
    assert states(current) == {"0": "active", "1": "failed", "2": "cancelled"}
    assert (await job(store, ids["2"])).state is JobState.CANCELLED

    await ack(store, first.id, "late")
    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 1
    assert (await job(store, ids["1"])).state is JobState.CANCELLED
    assert await fetch(store) == []


async def test_a_waiting_member_that_expires_fails_its_branch(store: Store, service: WorkflowService) -> None:
    t0 = now_ms()
    view = await service.create(
        {
            "type": "chain",
            "steps": [
                step("c.one", queue="wf"),
                step("c.two", queue="wf", expires_at="+PT1H"),
                step("c.three", queue="wf"),
            ],
        }
    )
    ids = job_ids(view)
    assert await store.leases.expire(now_ms=t0 + 2 * 3_600_000, batch=100) == (1, 1)
    expired = await job(store, ids["1"])
    assert expired.state is JobState.DISCARDED
    assert expired.error is not None and expired.error.code == "expired"
    assert (await job(store, ids["2"])).state is JobState.CANCELLED
    current = await service.get(view.id)
    assert current.state == "running"
    assert states(current) == {"0": "pending", "1": "failed", "2": "cancelled"}

    [first] = await fetch(store)
    await ack(store, first.id, "x")
    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 1
    assert final.steps_failed == 2
    assert await fetch(store, at=t0 + 3 * 3_600_000) == []


async def test_a_released_member_that_expired_is_discarded_at_fetch(store: Store, service: WorkflowService) -> None:
    t0 = now_ms()
    view = await service.create(
        {"type": "chain", "steps": [step("c.one", queue="wf"), step("c.two", queue="wf", expires_at="+PT1M")]}
    )
    ids = job_ids(view)
    [first] = await fetch(store, at=t0)
    await ack(store, first.id, "x", at=t0)
    assert await fetch(store, at=t0 + 120_000) == []
    assert (await job(store, ids["1"])).state is JobState.DISCARDED
    final = await service.get(view.id)
    assert final.state == "failed"
    assert states(final) == {"0": "completed", "1": "failed"}


async def test_an_execution_timeout_on_the_last_attempt_fails_the_step(store: Store, service: WorkflowService) -> None:
    t0 = now_ms()
    view = await service.create(
        {
            "type": "chain",
            "steps": [step("c.slow", queue="wf", timeout_ms=1000, **FAIL_NOW), step("c.next", queue="wf")],
        }
    )
    ids = job_ids(view)
    await fetch(store, at=t0)
    outcome = await store.leases.reap(now_ms=t0 + 5_000, batch=100)
    assert outcome.timed_out == 1
    assert (await job(store, ids["0"])).state is JobState.DISCARDED
    final = await service.get(view.id)
    assert final.state == "failed"
    assert states(final) == {"0": "failed", "1": "cancelled"}
    assert (await job(store, ids["1"])).state is JobState.CANCELLED


# --------------------------------------------------------------------------- groups


async def test_group_partial_failure_fails_once_every_member_is_terminal(
    store: Store, service: WorkflowService
) -> None:
    view = await service.create(
        {
            "type": "group",
            "jobs": [step("g.one", queue="wf"), step("g.two", queue="wf", **FAIL_NOW), step("g.three", queue="wf")],
        }
    )
    ids = job_ids(view)
    assert states(view) == {"0": "pending", "1": "pending", "2": "pending"}
    fetched = await fetch(store)
    assert sorted(j.id for j in fetched) == sorted(ids.values())

    await fail(store, ids["1"])
    current = await service.get(view.id)
    assert current.state == "running"
    assert current.steps_failed == 1
    # A failed member does not cancel its siblings in a group.
    assert states(current) == {"0": "active", "1": "failed", "2": "active"}

    await ack(store, ids["0"], 0)
    assert (await service.get(view.id)).state == "running"
    await ack(store, ids["2"], 2)
    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 2
    assert final.steps_failed == 1
    assert len(await workflow_events(store, view.id, "workflow.failed")) == 1


@pytest.mark.parametrize("last", ["ack", "nack", "cancel", "cancel_active"])
async def test_a_group_never_stays_running_after_its_members_end(
    store: Store, service: WorkflowService, last: str
) -> None:
    view = await service.create(
        {"type": "group", "jobs": [step("g.a", queue="wf"), step("g.b", queue="wf", **FAIL_NOW)]}
    )
    ids = job_ids(view)
    [first] = await fetch(store, count=1)
    await ack(store, first.id, "first")
    other = ids["1"] if first.id == ids["0"] else ids["0"]
    if last == "cancel":
        await store.jobs.cancel(other, reason="", now_ms=now_ms())
    else:
        [second] = await fetch(store)
        assert second.id == other
        if last == "ack":
            await ack(store, other, "second")
        elif last == "nack":
            await fail(store, other)
        else:
            await store.jobs.cancel(other, reason="", now_ms=now_ms())

    members = [await job(store, job_id) for job_id in ids.values()]
    assert all(m.state in TERMINAL for m in members)
    final = await service.get(view.id)
    assert final.state != "running"
    expected = "completed" if all(m.state is JobState.COMPLETED for m in members) else "failed"
    assert final.state == expected
    assert final.completed_at_ms is not None


# --------------------------------------------------------------------------- batches


def batch(size: int, **callbacks: str) -> dict[str, Any]:
    return {
        "type": "batch",
        "name": "batch",
        "jobs": [step("b.work", i, queue="wf", **FAIL_NOW) for i in range(size)],
        "callbacks": {kind: step(job_type, queue="cb") for kind, job_type in callbacks.items()},
    }


ALL_CALLBACKS = {"on_success": "cb.success", "on_failure": "cb.failure", "on_complete": "cb.complete"}


async def test_batch_success_fires_on_success_and_on_complete(store: Store, service: WorkflowService) -> None:
    view = await service.create(batch(3, **ALL_CALLBACKS))
    assert view.steps_total == 3
    assert [s.kind for s in view.steps] == ["step", "step", "step", "on_success", "on_failure", "on_complete"]
    assert states(view)["on_complete"] == "waiting"
    ids = job_ids(view)
    fetched = await fetch(store)
    assert len(fetched) == 3

    # Acked out of order; callbacks still get results in job order.
    await ack(store, ids["2"], {"n": 2})
    await ack(store, ids["0"], {"n": 0})
    assert await fetch(store, "cb") == []
    await ack(store, ids["1"], {"n": 1})

    callbacks = await fetch(store, "cb")
    assert sorted(j.type for j in callbacks) == ["cb.complete", "cb.success"]
    for callback in callbacks:
        assert callback.workflow_id == view.id
        assert callback.parent_results_json is not None
        assert orjson.loads(callback.parent_results_json) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert (await job(store, ids["on_failure"])).state is JobState.CANCELLED
    current = await service.get(view.id)
    assert current.state == "running"
    assert states(current)["on_failure"] == "cancelled"

    for callback in callbacks:
        await ack(store, callback.id, "cb")
    final = await service.get(view.id)
    assert final.state == "completed"
    assert final.steps_completed == 3
    assert states(final) == {
        "0": "completed",
        "1": "completed",
        "2": "completed",
        "on_success": "completed",
        "on_failure": "cancelled",
        "on_complete": "completed",
    }
    assert await fetch(store, "cb") == []


async def test_batch_with_a_failure_fires_on_failure_and_on_complete(store: Store, service: WorkflowService) -> None:
    view = await service.create(batch(3, **ALL_CALLBACKS))
    ids = job_ids(view)
    await fetch(store)
    await ack(store, ids["0"], "zero")
    await fail(store, ids["1"])
    assert await fetch(store, "cb") == []
    await ack(store, ids["2"], "two")

    callbacks = await fetch(store, "cb")
    assert sorted(j.type for j in callbacks) == ["cb.complete", "cb.failure"]
    for callback in callbacks:
        assert callback.parent_results_json is not None
        assert orjson.loads(callback.parent_results_json) == ["zero", None, "two"]
    assert (await job(store, ids["on_success"])).state is JobState.CANCELLED

    for callback in callbacks:
        await ack(store, callback.id)
    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 2
    assert final.steps_failed == 1
    assert states(final)["on_success"] == "cancelled"
    assert states(final)["on_failure"] == "completed"


@pytest.mark.parametrize("outcome", ["succeed", "fail"])
async def test_batch_on_complete_always_fires(store: Store, service: WorkflowService, outcome: str) -> None:
    view = await service.create(batch(2, on_complete="cb.complete"))
    ids = job_ids(view)
    await fetch(store)
    await ack(store, ids["0"], "a")
    if outcome == "succeed":
        await ack(store, ids["1"], "b")
    else:
        await fail(store, ids["1"])
    [callback] = await fetch(store, "cb")
    assert callback.type == "cb.complete"
    assert callback.parent_results_json is not None
    assert orjson.loads(callback.parent_results_json) == ["a", "b" if outcome == "succeed" else None]
    await ack(store, callback.id)
    assert (await service.get(view.id)).state == ("completed" if outcome == "succeed" else "failed")


async def test_batch_only_on_success_is_skipped_after_a_failure(store: Store, service: WorkflowService) -> None:
    view = await service.create(batch(2, on_success="cb.success"))
    ids = job_ids(view)
    await fetch(store)
    await fail(store, ids["0"])
    assert (await service.get(view.id)).state == "running"
    await ack(store, ids["1"], "b")
    assert await fetch(store, "cb") == []
    final = await service.get(view.id)
    assert final.state == "failed"
    assert states(final)["on_success"] == "cancelled"
    assert (await job(store, ids["on_success"])).state is JobState.CANCELLED


async def test_batch_only_on_failure_is_skipped_when_all_succeed(store: Store, service: WorkflowService) -> None:
    view = await service.create(batch(2, on_failure="cb.failure"))
    ids = job_ids(view)
    await fetch(store)
    await ack(store, ids["0"], "a")
    await ack(store, ids["1"], "b")
    assert await fetch(store, "cb") == []
    final = await service.get(view.id)
    assert final.state == "completed"
    assert final.steps_completed == 2
    assert states(final)["on_failure"] == "cancelled"


async def test_a_failed_callback_fails_the_batch(store: Store, service: WorkflowService) -> None:
    body = batch(1, on_complete="cb.complete")
    body["callbacks"]["on_complete"]["options"]["retry"] = {"max_attempts": 1}
    view = await service.create(body)
    [member] = await fetch(store)
    await ack(store, member.id, "ok")
    [callback] = await fetch(store, "cb")
    await fail(store, callback.id)
    final = await service.get(view.id)
    assert final.state == "failed"
    assert final.steps_completed == 1
    assert final.steps_failed == 0
    assert states(final)["on_complete"] == "failed"


async def test_a_cancelled_callback_keeps_its_state_when_the_batch_ends(store: Store, service: WorkflowService) -> None:
    view = await service.create(batch(2, on_complete="cb.complete"))
    ids = job_ids(view)
    await store.jobs.cancel(ids["on_complete"], reason="", now_ms=now_ms())
    before = states(await service.get(view.id))["on_complete"]
    assert before == "failed"
    await fetch(store)
    await ack(store, ids["0"], "a")
    await ack(store, ids["1"], "b")
    assert await fetch(store, "cb") == []
    final = await service.get(view.id)
    assert final.state == "failed"
    # The callback ended when it was cancelled; the end of the batch must not release it again.
    assert states(final)["on_complete"] == before


async def test_a_cancelled_callback_is_not_counted_again_by_a_workflow_cancel(
    store: Store, service: WorkflowService
) -> None:
    view = await service.create(batch(2, on_success="cb.success", on_complete="cb.complete"))
    ids = job_ids(view)
    await store.jobs.cancel(ids["on_complete"], reason="", now_ms=now_ms())
    await fetch(store)
    await ack(store, ids["0"], "a")
    await ack(store, ids["1"], "b")
    [callback] = await fetch(store, "cb")
    assert callback.id == ids["on_success"]
    assert (await service.get(view.id)).state == "running"

    # Only on_success is unfinished; on_complete ended when its job was cancelled.
    _, cancelled, completed = await service.cancel(view.id)
    assert (cancelled, completed) == (1, 2)


# --------------------------------------------------------------------------- workflow cancel


async def test_cancel_stops_every_unfinished_member(store: Store, service: WorkflowService) -> None:
    view = await service.create(DIAMOND)
    ids = job_ids(view)
    [a] = await fetch(store)
    await ack(store, a.id, "a")
    [b] = await fetch(store, count=1)
    # One of b/c is active, the other available, d pending.
    active_id, available_id = b.id, (ids["c"] if b.id == ids["b"] else ids["b"])
    assert (await job(store, available_id)).state is JobState.AVAILABLE
    assert (await job(store, ids["d"])).state is JobState.PENDING

    cancelled_view, cancelled, completed = await service.cancel(view.id)
    assert (cancelled, completed) == (3, 1)
    assert cancelled_view.state == "cancelled"
    assert cancelled_view.cancelled_at_ms is not None
    assert states(cancelled_view) == {"a": "completed", "b": "cancelled", "c": "cancelled", "d": "cancelled"}
    assert (await job(store, ids["a"])).state is JobState.COMPLETED
    for job_id in (active_id, available_id, ids["d"]):
        assert (await job(store, job_id)).state is JobState.CANCELLED
    assert await fetch(store, at=now_ms() + DAY_MS) == []

    # The worker still holding the cancelled step cannot complete it.
    error = await expect_error(ErrorCode.CONFLICT, ack(store, active_id, "late"))
    assert error.details["current_state"] == "cancelled"
    assert (await service.get(view.id)).state == "cancelled"
    assert len(await workflow_events(store, view.id, "workflow.cancelled")) == 1

    again = await expect_error(ErrorCode.CONFLICT, service.cancel(view.id))
    assert again.details["current_state"] == "cancelled"


async def test_cancel_of_a_finished_workflow_is_a_conflict(store: Store, service: WorkflowService) -> None:
    view = await service.create({"type": "group", "jobs": [step("g.one", queue="wf")]})
    [member] = await fetch(store)
    await ack(store, member.id, 1)
    error = await expect_error(ErrorCode.CONFLICT, service.cancel(view.id))
    assert error.details["current_state"] == "completed"
    assert (await service.get(view.id)).state == "completed"


async def test_cancel_and_get_of_unknown_workflows(service: WorkflowService) -> None:
    await expect_error(ErrorCode.NOT_FOUND, service.cancel(new_uuid7()))
    await expect_error(ErrorCode.NOT_FOUND, service.cancel("not-a-workflow"))
    await expect_error(ErrorCode.NOT_FOUND, service.get(new_uuid7()))
    await expect_error(ErrorCode.NOT_FOUND, service.get("not-a-workflow"))
    await expect_error(ErrorCode.INVALID_REQUEST, service.get(""))


async def test_activating_a_workflow_pending_job_is_a_conflict(store: Store, service: WorkflowService) -> None:
    view = await service.create(
        {"type": "chain", "steps": [step("c.one", queue="wf"), step("c.two", queue="wf", pending=True)]}
    )
    ids = job_ids(view)
    assert (await job(store, ids["1"])).state is JobState.PENDING
    error = await expect_error(ErrorCode.CONFLICT, store.jobs.activate(ids["1"], now_ms=now_ms()))
    assert error.details["current_state"] == "pending"
    assert (await job(store, ids["1"])).state is JobState.PENDING
    [first] = await fetch(store)
    assert first.id == ids["0"]
    assert await fetch(store) == []


async def test_a_pending_root_step_starts_available(store: Store, service: WorkflowService) -> None:
    view = await service.create({"type": "group", "jobs": [step("g.one", queue="wf", pending=True)]})
    [member] = await fetch(store)
    assert member.id == view.steps[0].job_id


async def test_invalid_member_jobs_are_reported_with_their_position(service: WorkflowService) -> None:
    error = await expect_error(
        ErrorCode.INVALID_REQUEST,
        service.create({"type": "batch", "jobs": [step("b.ok")], "callbacks": {"on_complete": {"args": []}}}),
    )
    assert error.details["field"] == "callbacks.on_complete.type"
    assert error.message.startswith("callbacks.on_complete: ")
    error = await expect_error(
        ErrorCode.INVALID_REQUEST, service.create({"type": "chain", "steps": [step("c.ok"), step("Bad Type")]})
    )
    assert error.details["field"] == "steps[1].type"


# --------------------------------------------------------------------------- retention


async def test_finished_workflows_and_their_jobs_expire(
    store: Store, service: WorkflowService, store_redis: Redis
) -> None:
    keys = store.keys
    view = await service.create(
        {"type": "chain", "steps": [step("c.one", queue="wf"), step("c.two", queue="wf", **FAIL_NOW), step("c.x")]}
    )
    ids = job_ids(view)
    assert await store_redis.pttl(keys.workflow(view.id)) == -1
    assert await store_redis.pttl(keys.workflow_nodes(view.id)) == -1
    [first] = await fetch(store)
    await ack(store, first.id, 1)
    # Still running: the workflow is kept.
    assert await store_redis.pttl(keys.workflow(view.id)) == -1
    [second] = await fetch(store)
    await fail(store, second.id)
    assert (await service.get(view.id)).state == "failed"

    retention = store.retention
    for key in (keys.workflow(view.id), keys.workflow_nodes(view.id)):
        ttl = await store_redis.pttl(key)
        assert 0 < ttl <= retention.completed_ms
    assert 0 < await store_redis.pttl(keys.job(ids["0"])) <= retention.completed_ms
    assert 0 < await store_redis.pttl(keys.job(ids["1"])) <= retention.discarded_ms
    assert 0 < await store_redis.pttl(keys.job(ids["2"])) <= retention.cancelled_ms


async def test_cancelled_workflows_and_their_jobs_expire(
    store: Store, service: WorkflowService, store_redis: Redis
) -> None:
    keys = store.keys
    view = await service.create(DIAMOND)
    await service.cancel(view.id)
    for key in (keys.workflow(view.id), keys.workflow_nodes(view.id)):
        assert 0 < await store_redis.pttl(key) <= store.retention.completed_ms
    for job_id in job_ids(view).values():
        assert 0 < await store_redis.pttl(keys.job(job_id)) <= store.retention.cancelled_ms


async def test_short_retention_removes_a_finished_workflow(store_redis: Redis) -> None:
    short = Retention(completed_ms=300, cancelled_ms=300, discarded_ms=300)
    store = Store(store_redis, KeySchema(f"wfr-{uuid.uuid4().hex[:8]}"), events_maxlen=1000, retention=short)
    await store.load_scripts()
    service = WorkflowService(store)
    view = await service.create({"type": "group", "jobs": [step("g.one", queue="wf")]})
    [member] = await fetch(store)
    await ack(store, member.id, 1)
    assert (await service.get(view.id)).state == "completed"

    async def gone() -> bool:
        for _ in range(200):
            if not await store_redis.exists(store.keys.workflow(view.id), store.keys.workflow_nodes(view.id)):
                return True
            await asyncio.sleep(0.05)
        return False

    assert await gone()
    await expect_error(ErrorCode.NOT_FOUND, service.get(view.id))
    assert await store.jobs.get(member.id) is None


# --------------------------------------------------------------------------- concurrency


@pytest.fixture
async def roomy_store(store_redis: Redis) -> AsyncIterator[Store]:
    # An event log long enough to hold every event of a thousand-job batch.
    job_store = Store(store_redis, KeySchema(f"wfc-{uuid.uuid4().hex[:8]}"), events_maxlen=1_000_000)
    await job_store.load_scripts()
    yield job_store


async def test_a_thousand_concurrent_acks_fire_one_callback(roomy_store: Store) -> None:
    store = roomy_store
    service = WorkflowService(store)
    size = 1_000
    view = await service.create(
        {
            "type": "batch",
            "name": "thousand",
            "jobs": [step("b.work", i, queue="bulk") for i in range(size)],
            "callbacks": {"on_complete": step("b.callback", queue="bulk-cb")},
        }
    )
    assert view.steps_total == size
    member_ids = [s.job_id for s in view.steps if s.kind == "step"]
    callback_id = job_ids(view)["on_complete"]

    fetched: list[StoredJob] = []
    while True:
        page = await fetch(store, "bulk", count=300)
        if not page:
            break
        fetched.extend(page)
    assert sorted(j.id for j in fetched) == sorted(member_ids)

    by_id = {j.id: j for j in fetched}
    for start in range(0, size, 100):
        chunk = member_ids[start : start + 100]
        acked = await asyncio.gather(
            *(ack(store, job_id, {"i": orjson.loads(by_id[job_id].args_json)[0]}) for job_id in chunk)
        )
        assert all(j.state is JobState.COMPLETED for j in acked)

    callbacks = await fetch(store, "bulk-cb", count=10)
    assert [j.id for j in callbacks] == [callback_id]
    assert await fetch(store, "bulk-cb", count=10) == []
    assert callbacks[0].parent_results_json is not None
    assert orjson.loads(callbacks[0].parent_results_json) == [{"i": i} for i in range(size)]
    enqueued = [e for e in await store.events.read_events(after=None, count=1_000_000) if e.job_id == callback_id]
    assert [e.type for e in enqueued].count("job.enqueued") == 2  # created pending, then released once

    running = await service.get(view.id)
    assert running.state == "running"
    assert running.steps_completed == size
    await ack(store, callback_id, "all done")

    final = await service.get(view.id)
    assert final.state == "completed"
    assert final.steps_completed == size
    assert final.steps_failed == 0
    assert len(await workflow_events(store, view.id, "workflow.completed")) == 1
    assert await workflow_events(store, view.id, "workflow.failed") == []
    assert len(await workflow_events(store, view.id, "workflow.step_completed")) == size + 1
