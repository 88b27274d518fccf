"""Start-up checks of the real process: the protobuf backend must be upb, and the event loop in use is logged."""

from __future__ import annotations

from .processes import STOP_TIMEOUT_S, Launcher

PURE_PYTHON_PROTOBUF = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}


def test_refuses_to_start_on_pure_python_protobuf(launch: Launcher) -> None:
    server = launch(**PURE_PYTHON_PROTOBUF)
    assert server.proc.wait(STOP_TIMEOUT_S) == 1, server.output
    assert "the protobuf runtime is the 'python' backend, not 'upb'" in server.output
    assert "OJS_ALLOW_SLOW_PROTOBUF=1" in server.output
    assert "Traceback" not in server.output


def test_starts_on_pure_python_protobuf_when_allowed(launch: Launcher) -> None:
    server = launch(OJS_ALLOW_SLOW_PROTOBUF="1", **PURE_PYTHON_PROTOBUF)
    server.wait_ready()
    assert "WARNING server.runtime: the protobuf runtime is the 'python' backend" in server.output
    status, body = server.request("POST", "/ojs/v1/jobs", {"type": "e2e.slow", "args": [1]})
    assert status == 201, body
    assert server.terminate() == 0, server.output


def test_logs_the_event_loop_in_use(launch: Launcher) -> None:
    server = launch()
    server.wait_ready()
    assert "event loop: uvloop" in server.output
    assert server.terminate() == 0, server.output

    standard = launch(OJS_EVENT_LOOP="asyncio")
    standard.wait_ready()
    assert "event loop: asyncio (OJS_EVENT_LOOP=asyncio)" in standard.output
    status, body = standard.request("POST", "/ojs/v1/jobs", {"type": "e2e.asyncio", "args": [1]})
    assert status == 201, body
    assert standard.terminate() == 0, standard.output
