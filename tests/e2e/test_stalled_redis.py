"""A stalled Redis (SIGSTOP) turns into 503 within the command timeout, health included; SIGCONT heals it."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import chaos
from .processes import Launcher, ServerProcess

COMMAND_TIMEOUT_MS = 1000
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
JOB = b'{"type":"stall.job","args":[1],"options":{"queue":"stall"}}'


def _call(
    server: ServerProcess, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], float]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}",
        data=body,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=30) as response:
            response.read()
            return response.status, dict(response.headers), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, dict(exc.headers), time.monotonic() - started


def test_stalled_redis_is_refused_quickly_and_recovered_from(launch: Launcher, tmp_path: Path) -> None:
    server = launch(OJS_REDIS_COMMAND_TIMEOUT_MS=str(COMMAND_TIMEOUT_MS), OJS_REDIS_POOL_TIMEOUT_MS="1000")
    server.wait_ready()
    assert _call(server, "POST", "/ojs/v1/jobs", JOB)[0] == 201
    pid = chaos.redis_pid(tmp_path / "ojs-data")
    os.kill(pid, signal.SIGSTOP)
    try:
        limit_s = COMMAND_TIMEOUT_MS / 1000 + 2.0
        status, headers, took = _call(server, "POST", "/ojs/v1/jobs", JOB)
        assert status == 503 and "Retry-After" in headers, status
        assert took < limit_s, f"the first refusal took {took:.1f}s"
        status, _, took = _call(server, "GET", "/ojs/v1/health")
        assert status == 503 and took < limit_s, (status, took)
        # Once the stall is noticed, requests are refused at once.
        chaos.wait_for(lambda: _call(server, "POST", "/ojs/v1/jobs", JOB)[2] < 0.5, 10, "fast refusals")
        status, headers, _ = _call(server, "POST", "/ojs/v1/workers/fetch", b'{"queues":["stall"],"count":1}')
        assert status == 503 and headers.get("Retry-After") == "1"
    finally:
        os.kill(pid, signal.SIGCONT)
    chaos.wait_for(lambda: _call(server, "GET", "/ojs/v1/health")[0] == 200, 20, "health after SIGCONT")
    assert _call(server, "POST", "/ojs/v1/jobs", JOB)[0] == 201
    status, _, _ = _call(server, "POST", "/ojs/v1/workers/fetch", b'{"queues":["stall"],"count":10}')
    assert status == 200
    assert server.proc.poll() is None
