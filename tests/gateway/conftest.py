"""A canned `OJSClient` and errors built the way the servicer builds them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import any_pb2, duration_pb2, message, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from ojs.v1 import job_pb2

from gateway.app import create_app
from gateway.client import SERVICE, InProcessStreamCall, OJSClient, RpcStatusError

if TYPE_CHECKING:
    from ojs.v1.service_pb2_grpc import OJSServiceAsyncStub as _StubShaped
else:
    _StubShaped = object

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
# A streaming RPC's outcome: the messages to send, with exceptions among them raised where they stand.
StreamOutcome = Iterable[message.Message | BaseException]


class FakeClient(_StubShaped):
    """Answers each RPC with a canned response (or raises a canned error) and records the call.

    The RPCs come from the service descriptor: a unary one answers its outcome
    (a message, an exception, or a function of the request), a streaming one
    sends its outcome's items; an RPC without an outcome fails UNIMPLEMENTED.
    A subclass may answer an RPC itself by defining the method.
    """

    def __init__(self, **outcomes: Outcome | StreamOutcome) -> None:
        unknown = set(outcomes) - set(SERVICE.methods_by_name)
        if unknown:
            raise TypeError(f"not RPCs of {SERVICE.full_name}: {sorted(unknown)}")
        self.outcomes: dict[str, Any] = dict(outcomes)
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        for method in SERVICE.methods:
            if not hasattr(type(self), method.name):
                bind = self._streaming if method.server_streaming else self._unary
                setattr(self, method.name, bind(method.name))

    def last(self, name: str) -> tuple[Any, dict[str, str]]:
        for called, request, metadata in reversed(self.calls):
            if called == name:
                return request, metadata
        raise AssertionError(f"{name} was not called")

    def record(self, name: str, request: Any, metadata: Any) -> None:
        self.calls.append((name, request, dict(metadata or ())))

    def _unary(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, *, metadata: Any = None, **_options: Any) -> Any:
            self.record(name, request, metadata)
            outcome = self.outcomes.get(name)
            if outcome is None:
                raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "unimplemented", f"{name} is not faked")
            if isinstance(outcome, BaseException):
                raise outcome
            if isinstance(outcome, message.Message):
                return outcome
            return outcome(request)

        return call

    def _streaming(self, name: str) -> Callable[..., InProcessStreamCall]:
        def call(request: Any, *, metadata: Any = None, **_options: Any) -> InProcessStreamCall:
            self.record(name, request, metadata)
            return InProcessStreamCall(self._send(name))

        return call

    async def _send(self, name: str) -> AsyncGenerator[Any, None]:
        outcome = self.outcomes.get(name)
        if outcome is None:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "unimplemented", f"{name} is not faked")
        for item in outcome:
            if isinstance(item, BaseException):
                raise item
            yield item


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
