"""Admission control: bounded slots, lanes served in turn, shedding with a retry delay, never a hang."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.domain.errors import ErrorCode, OJSError
from server.rpc.errors import to_status
from server.service.admission import Admission


def _admission(limit: int, **kwargs: object) -> Admission:
    options: dict[str, object] = {"max_waiting": 100, "wait_timeout_s": 5.0, "retry_after_s": 2, **kwargs}
    return Admission(limit, **options)  # type: ignore[arg-type]


async def test_slots_are_bounded_and_freed() -> None:
    admission = _admission(2)
    async with admission.slot("http"), admission.slot("grpc"):
        assert admission.in_use == 2
        third = asyncio.create_task(_enter(admission, "http"))
        await asyncio.sleep(0.01)
        assert not third.done() and admission.waiting == 1
    await asyncio.wait_for(third, 1)
    assert admission.in_use == 0 and admission.waiting == 0


async def _enter(admission: Admission, lane: str, log: list[str] | None = None, hold_s: float = 0.0) -> None:
    async with admission.slot(lane):
        if log is not None:
            log.append(lane)
        await asyncio.sleep(hold_s)


async def test_freed_slots_go_to_the_lanes_in_turn() -> None:
    admission = _admission(1)
    order: list[str] = []
    async with admission.slot("http"):
        # Many HTTP requests queued before a few gRPC ones: the gRPC ones are not served last.
        tasks = [asyncio.create_task(_enter(admission, "http", order)) for _ in range(6)]
        await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(_enter(admission, "grpc", order)) for _ in range(2)]
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order[:4] == ["grpc", "http", "grpc", "http"] or order[:4] == ["http", "grpc", "http", "grpc"]
    assert order.count("grpc") == 2 and order.count("http") == 6


async def test_a_full_waiting_line_is_shed_at_once_with_a_retry_delay() -> None:
    admission = _admission(1, max_waiting=1)
    async with admission.slot("http"):
        waiter = asyncio.create_task(_enter(admission, "http"))
        await asyncio.sleep(0.01)
        with pytest.raises(OJSError) as refused:
            async with admission.slot("grpc"):
                pass
    await waiter
    assert refused.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert refused.value.details == {"retry_after_s": 2}
    assert admission.shed == 1


async def test_a_waiter_is_shed_after_the_wait_timeout_and_leaves_no_slot_behind() -> None:
    admission = _admission(1, wait_timeout_s=0.05)
    async with admission.slot("http"):
        with pytest.raises(OJSError):
            async with admission.slot("grpc"):
                pass
        assert admission.waiting == 0
    assert admission.in_use == 0
    async with admission.slot("grpc"):
        assert admission.in_use == 1


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    admission = _admission(1)
    async with admission.slot("http"):
        waiter = asyncio.create_task(_enter(admission, "grpc"))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert admission.waiting == 0
    assert admission.in_use == 0


async def test_everything_is_refused_at_once_while_the_backend_is_down() -> None:
    down: list[str] = ["Redis does not answer"]
    admission = _admission(0, backend_down=lambda: down[0] if down else None)
    with pytest.raises(OJSError) as refused:
        async with admission.slot("http"):
            pass
    assert "Redis does not answer" in refused.value.message
    down.clear()
    async with admission.slot("http"):
        pass


def test_a_shed_status_carries_the_delay_three_ways() -> None:
    error = OJSError(ErrorCode.BACKEND_UNAVAILABLE, "overloaded", details={"retry_after_s": 3})
    status = to_status(error)
    assert status.code == grpc.StatusCode.UNAVAILABLE
    metadata = dict(status.trailing_metadata)
    assert metadata["retry-after"] == "3"

    class _Call(grpc.RpcError):  # type: ignore[misc]
        def code(self) -> grpc.StatusCode:
            return status.code

        def details(self) -> str:
            return str(status.details)

        def trailing_metadata(self) -> object:
            return status.trailing_metadata

    rich = rpc_status.from_call(_Call())
    assert rich is not None
    infos, delays = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert rich.details[0].Unpack(infos) and infos.metadata["retry_after_s"] == "3"
    assert any(detail.Unpack(delays) for detail in rich.details) and delays.retry_delay.seconds == 3
