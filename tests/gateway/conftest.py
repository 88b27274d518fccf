"""A canned `OJSClient` and errors built the way the servicer builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import any_pb2, duration_pb2, message, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from ojs.v1 import job_pb2

from gateway.app import create_app
from gateway.client import OJSClient, RpcStatusError

MEDIA_TYPE = "application/openjobspec+json"
JOB_ID = "019539a4-b68c-7def-8000-1a2b3c4d5e6f"

Client = TestClient[web.Request, web.Application]


def pack(msg: message.Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


def rich_status(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    *,
    retryable: bool = False,
    extra: list[message.Message] | None = None,
    **metadata: str,
) -> grpc.Status:
    """The status the servicer aborts with: ErrorInfo (+ optional details) in grpc-status-details-bin."""
    info = error_details_pb2.ErrorInfo(
        reason=reason,
        domain="openjobspec.org",
        metadata={"retryable": "true" if retryable else "false", **metadata},
    )
    status = status_pb2.Status(
        code=code.value[0],
        message=message,
        details=[pack(info), *(pack(m) for m in extra or ())],
    )
    return rpc_status.to_status(status)


def rpc_error(code: grpc.StatusCode, reason: str, message: str, **kwargs: Any) -> RpcStatusError:
    status = rich_status(code, reason, message, **kwargs)
    return RpcStatusError(status.code, status.details, status.trailing_metadata)


def ts(text: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text)
    return stamp


def ms(value: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(value)
    return duration


def fresh_job(**fields: Any) -> job_pb2.Job:
    job = job_pb2.Job(
        id=JOB_ID,
        type="email.send",
        queue="default",
        args_json=b'["user@example.com","welcome"]',
        state=job_pb2.JOB_STATE_AVAILABLE,
        attempt=0,
        max_attempts=3,
        created_at=ts("2026-02-12T10:30:00.123Z"),
        enqueued_at=ts("2026-02-12T10:30:00.123Z"),
        specversion="1.0",
    )
    for name, value in fields.items():
        if isinstance(value, message.Message):
            getattr(job, name).CopyFrom(value)
        elif isinstance(value, list):
            getattr(job, name).extend(value)
        else:
            setattr(job, name, value)
    return job


Outcome = message.Message | BaseException | Callable[[Any], message.Message]


class FakeClient:
    """Answers each RPC with a canned response (or raises a canned error) and records the call."""

    def __init__(self, **outcomes: Outcome) -> None:
        self.outcomes: dict[str, Outcome] = dict(outcomes)
        self.calls: list[tuple[str, Any, dict[str, str]]] = []

    def last(self, name: str) -> tuple[Any, dict[str, str]]:
        for called, request, metadata in reversed(self.calls):
            if called == name:
                return request, metadata
        raise AssertionError(f"{name} was not called")

    async def _call(self, name: str, request: Any, metadata: Any) -> Any:
        self.calls.append((name, request, dict(metadata)))
        outcome = self.outcomes.get(name)
        if outcome is None:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "unimplemented", f"{name} is not faked")
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, message.Message):
            return outcome
        return outcome(request)

    async def Manifest(self, request, *, metadata=()):
        return await self._call("Manifest", request, metadata)

    async def Health(self, request, *, metadata=()):
        return await self._call("Health", request, metadata)

    async def Enqueue(self, request, *, metadata=()):
        return await self._call("Enqueue", request, metadata)

    async def EnqueueBatch(self, request, *, metadata=()):
        return await self._call("EnqueueBatch", request, metadata)

    async def GetJob(self, request, *, metadata=()):
        return await self._call("GetJob", request, metadata)

    async def CancelJob(self, request, *, metadata=()):
        return await self._call("CancelJob", request, metadata)

    async def ActivateJob(self, request, *, metadata=()):
        return await self._call("ActivateJob", request, metadata)

    async def Fetch(self, request, *, metadata=()):
        return await self._call("Fetch", request, metadata)

    async def Ack(self, request, *, metadata=()):
        return await self._call("Ack", request, metadata)

    async def Nack(self, request, *, metadata=()):
        return await self._call("Nack", request, metadata)

    async def Heartbeat(self, request, *, metadata=()):
        return await self._call("Heartbeat", request, metadata)

    async def StreamJobs(self, request, *, metadata=()):
        raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "unimplemented", "StreamJobs is not faked")
        yield

    async def StreamEvents(self, request, *, metadata=()):
        raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "unimplemented", "StreamEvents is not faked")
        yield

    async def ListQueues(self, request, *, metadata=()):
        return await self._call("ListQueues", request, metadata)

    async def QueueStats(self, request, *, metadata=()):
        return await self._call("QueueStats", request, metadata)

    async def PauseQueue(self, request, *, metadata=()):
        return await self._call("PauseQueue", request, metadata)

    async def ResumeQueue(self, request, *, metadata=()):
        return await self._call("ResumeQueue", request, metadata)

    async def ListDeadLetter(self, request, *, metadata=()):
        return await self._call("ListDeadLetter", request, metadata)

    async def RetryDeadLetter(self, request, *, metadata=()):
        return await self._call("RetryDeadLetter", request, metadata)

    async def DeleteDeadLetter(self, request, *, metadata=()):
        return await self._call("DeleteDeadLetter", request, metadata)

    async def RegisterCron(self, request, *, metadata=()):
        return await self._call("RegisterCron", request, metadata)

    async def UnregisterCron(self, request, *, metadata=()):
        return await self._call("UnregisterCron", request, metadata)

    async def ListCron(self, request, *, metadata=()):
        return await self._call("ListCron", request, metadata)

    async def GetCron(self, request, *, metadata=()):
        return await self._call("GetCron", request, metadata)

    async def CreateWorkflow(self, request, *, metadata=()):
        return await self._call("CreateWorkflow", request, metadata)

    async def GetWorkflow(self, request, *, metadata=()):
        return await self._call("GetWorkflow", request, metadata)

    async def CancelWorkflow(self, request, *, metadata=()):
        return await self._call("CancelWorkflow", request, metadata)

    async def ListEvents(self, request, *, metadata=()):
        return await self._call("ListEvents", request, metadata)

    async def SetWorkerDirective(self, request, *, metadata=()):
        return await self._call("SetWorkerDirective", request, metadata)

    async def ListWorkers(self, request, *, metadata=()):
        return await self._call("ListWorkers", request, metadata)


def _conforms(client: FakeClient) -> OJSClient:
    # Checked by mypy: the fake stays in step with the protocol.
    return client


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    started: list[Client] = []

    async def make(client: OJSClient, **options: Any) -> Client:
        test_client: Client = TestClient(TestServer(create_app(client, **options)))
        await test_client.start_server()
        started.append(test_client)
        return test_client

    yield make
    for test_client in started:
        await test_client.close()
