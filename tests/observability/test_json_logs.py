"""OJS_LOG_FORMAT=json: one JSON object per line, with the fields of ojs-logging.md."""

from __future__ import annotations

import json
import logging

from server.__main__ import configure_logging
from server.observability.logs import JsonFormatter
from tests.e2e.processes import Launcher


def test_every_line_is_one_json_object_with_the_job_fields(launch: Launcher) -> None:
    server = launch(OJS_LOG_FORMAT="json", OJS_LOG_LEVEL="DEBUG")
    server.wait_ready()
    status, body = server.request(
        "POST",
        "/ojs/v1/jobs",
        {"type": "email.send", "args": [], "options": {"queue": "email"}},
        headers={"X-Request-Id": "req-enqueue-1"},
    )
    assert status == 201
    job_id = body["job"]["id"]
    status, fetched = server.request("POST", "/ojs/v1/workers/fetch", {"queues": ["email"], "worker_id": "w9"})
    assert [job["id"] for job in fetched["jobs"]] == [job_id]
    assert server.request("POST", "/ojs/v1/workers/ack", {"job_id": job_id, "worker_id": "w9"})[0] == 200
    assert server.terminate() == 0

    records = [json.loads(line) for line in server.output.splitlines() if line.strip()]
    for record in records:
        assert {"timestamp", "severity", "severity_number", "message", "component"} <= record.keys(), record
        assert record["timestamp"].endswith("Z") and len(record["timestamp"]) == 24
    by_message = {record["message"]: record for record in records if "ojs" in record}
    enqueued = by_message["Job enqueued"]
    assert enqueued["severity"] == "DEBUG" and enqueued["severity_number"] == 5
    assert enqueued["request_id"] == "req-enqueue-1"
    assert enqueued["ojs"] == {"job_id": job_id, "job_type": "email.send", "queue": "email", "state": "available"}
    fetched_record = by_message["Job fetched by worker"]
    assert fetched_record["ojs"]["worker_id"] == "w9" and fetched_record["ojs"]["attempt"] == 1
    completed = by_message["Job completed successfully"]
    assert completed["ojs"]["state"] == "completed"
    assert completed["attributes"]["duration_ms"] >= 0
    assert any(record["message"].startswith("listening") for record in records)


def test_trace_ids_and_errors_in_json() -> None:
    formatter = JsonFormatter("worker 2")
    try:
        raise ValueError("bad input")
    except ValueError:
        record = logging.LogRecord("server", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
        import sys

        record.exc_info = sys.exc_info()
    record.__dict__.update(job_id="j1", trace_id="4bf92f3577b34da6a3ce929d0e0e4736", duration_ms=12)
    out = json.loads(formatter.format(record))
    assert out["message"] == "failed x" and out["severity"] == "ERROR" and out["severity_number"] == 17
    assert out["process"] == "worker 2"
    assert out["ojs"] == {"job_id": "j1"}
    assert out["trace"] == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    assert out["attributes"] == {"duration_ms": 12}
    assert out["error"]["type"] == "ValueError" and "bad input" in out["error"]["backtrace"]
    # The plain format stays the default.
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging("INFO", log_format="json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
