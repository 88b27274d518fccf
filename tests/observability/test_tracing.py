"""One job followed from producer to worker, as a real OTLP receiver records the server's spans."""

from __future__ import annotations

import json
import time

import grpc
from ojs.v1 import service_pb2_grpc, worker_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.e2e.processes import Launcher

from .conftest import TraceReceiver, attributes

PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"
WORKER_TRACE = "0af7651916cd43dd8448eb211c80319c"
WORKER_SPAN = "b7ad6b7169203331"


def _wait_for(receiver: TraceReceiver, name: str, timeout_s: float = 15.0) -> list[trace_pb2.Span]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = receiver.named(name)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no span {name!r} received; got {[s.name for s in receiver.spans]}")


def test_a_job_is_traced_from_producer_to_worker(launch: Launcher, otlp_receiver: TraceReceiver) -> None:
    server = launch(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_receiver.port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="ojs-test",
    )
    server.wait_ready()
    # The producer enqueues over HTTP inside its own trace.
    status, body = server.request(
        "POST",
        "/ojs/v1/jobs",
        {"type": "email.send", "args": ["a@b.c"], "options": {"queue": "email"}},
        headers={"traceparent": f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"},
    )
    assert status == 201
    job_id = body["job"]["id"]
    # A worker fetches and acks over gRPC inside its process span.
    worker_context = (("traceparent", f"00-{WORKER_TRACE}-{WORKER_SPAN}-01"),)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = service_pb2_grpc.OJSServiceStub(channel)
        fetched = stub.Fetch(worker_pb2.FetchRequest(queues=["email"], worker_id="w1"), metadata=worker_context)
        assert [job.id for job in fetched.jobs] == [job_id]
        meta = json.loads(fetched.jobs[0].meta_json) if fetched.jobs[0].meta_json else None
        stub.Ack(worker_pb2.AckRequest(job_id=job_id, worker_id="w1"), metadata=worker_context)

    (enqueue,) = _wait_for(otlp_receiver, "email enqueue")
    assert enqueue.trace_id.hex() == PRODUCER_TRACE
    assert enqueue.parent_span_id.hex() == PRODUCER_SPAN
    assert enqueue.kind == trace_pb2.Span.SPAN_KIND_PRODUCER
    enqueue_attributes = attributes(enqueue)
    assert enqueue_attributes["messaging.system"] == "ojs"
    assert enqueue_attributes["messaging.operation.type"] == "publish"
    assert enqueue_attributes["ojs.job.id"] == job_id
    assert enqueue_attributes["ojs.job.type"] == "email.send"
    assert enqueue_attributes["ojs.job.queue"] == "email"
    # The job carries the enqueue span's context in its meta.
    traceparent = f"00-{PRODUCER_TRACE}-{enqueue.span_id.hex()}-01"
    status, stored = server.request("GET", f"/ojs/v1/jobs/{job_id}")
    assert stored["job"]["meta"]["traceparent"] == traceparent
    if meta is not None:
        assert meta["traceparent"] == traceparent

    (fetch,) = _wait_for(otlp_receiver, "email fetch")
    assert fetch.kind == trace_pb2.Span.SPAN_KIND_CONSUMER
    assert fetch.trace_id.hex() == WORKER_TRACE and fetch.parent_span_id.hex() == WORKER_SPAN
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in fetch.links] == [
        (PRODUCER_TRACE, enqueue.span_id.hex())
    ]
    assert attributes(fetch)["ojs.job.id"] == job_id

    (ack,) = _wait_for(otlp_receiver, "ojs.ack")
    assert ack.trace_id.hex() == WORKER_TRACE and ack.parent_span_id.hex() == WORKER_SPAN
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in ack.links] == [
        (PRODUCER_TRACE, enqueue.span_id.hex())
    ]
    ack_attributes = attributes(ack)
    assert ack_attributes["ojs.job.state"] == "completed"
    assert ack_attributes["ojs.worker.id"] == "w1"
    assert otlp_receiver.resources[0]["service.name"] == "ojs-test"
    assert server.terminate() == 0


def test_no_endpoint_no_spans_and_no_injected_context(launch: Launcher, otlp_receiver: TraceReceiver) -> None:
    server = launch()
    server.wait_ready()
    status, body = server.request(
        "POST",
        "/ojs/v1/jobs",
        {"type": "email.send", "args": []},
        headers={"traceparent": f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"},
    )
    assert status == 201
    assert "traceparent" not in (body["job"].get("meta") or {})
    assert server.terminate() == 0
    assert otlp_receiver.spans == []
