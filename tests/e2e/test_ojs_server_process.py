"""The real `ojs-server` process: start-up on the embedded Redis, persistence across restarts, exposure rules."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# Requests go to this machine only; a proxy from the environment must not intercept them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _settings_env_names() -> list[str]:
    source = (REPO / "server" / "config.py").read_text(encoding="utf-8")
    return sorted(set(re.findall(r'"((?:OJS|REDIS)_[A-Z_]+)"', source)))


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, http_port: int, grpc_port: int) -> None:
        self.proc = proc
        self.log_path = log_path
        self.http_port = http_port
        self.grpc_port = grpc_port

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=data, headers=all_headers, method=method
        )
        try:
            with _OPENER.open(req, timeout=10) as resp:
                status: int = resp.status
                raw: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, (json.loads(raw) if raw.strip() else None)

    def grpc_serving(self) -> bool:
        options = [("grpc.enable_http_proxy", 0)]
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}", options=options) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            except grpc.RpcError:
                return False
            serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
            return serving

    def wait_ready(self, *, check_grpc: bool = True) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        http_ok = grpc_ok = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"ojs-server exited with {self.proc.returncode} while starting:\n{self.output}")
            if not http_ok:
                try:
                    http_ok = self.request("GET", "/ojs/v1/health")[0] == 200
                except OSError:
                    http_ok = False
            if http_ok and not grpc_ok:
                grpc_ok = not check_grpc or self.grpc_serving()
            if http_ok and grpc_ok:
                return
            time.sleep(0.2)
        state = f"http={http_ok}, grpc={grpc_ok}"
        pytest.fail(f"ojs-server not ready after {READY_TIMEOUT_S:.0f}s ({state}):\n{self.output}")

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ojs-server did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM:\n{self.output}")


Launcher = Callable[..., ServerProcess]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    started: list[ServerProcess] = []
    data_dir = tmp_path / "ojs-data"

    def start(**env_overrides: str) -> ServerProcess:
        http_port, grpc_port = _free_port(), _free_port()
        env = {k: v for k, v in os.environ.items() if not (k.startswith("OJS_") or k == "REDIS_URL")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "gen")]),
            OJS_HOST="127.0.0.1",
            OJS_PORT=str(http_port),
            OJS_GRPC_PORT=str(grpc_port),
            OJS_DATA_DIR=str(data_dir),
        )
        env.update(env_overrides)
        log_path = tmp_path / f"server-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server"],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = ServerProcess(proc, log_path, http_port, grpc_port)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def test_job_survives_restart(launch: Launcher) -> None:
    server = launch()
    server.wait_ready()
    status, body = server.request("POST", "/ojs/v1/jobs", {"type": "e2e.test", "args": [1]})
    assert status == 201, body
    job_id = body["job"]["id"]
    assert server.terminate() == 0, server.output

    again = launch()
    again.wait_ready()
    status, body = again.request("GET", f"/ojs/v1/jobs/{job_id}")
    assert status == 200, body
    assert body["job"]["id"] == job_id
    assert body["job"]["type"] == "e2e.test"
    assert body["job"]["args"] == [1]
    assert again.terminate() == 0, again.output


def test_public_host_without_api_key_is_refused(launch: Launcher) -> None:
    server = launch(OJS_HOST="0.0.0.0")
    assert server.proc.wait(STOP_TIMEOUT_S) == 2
    assert "OJS_API_KEY" in server.output


def test_api_key_is_required_on_the_api(launch: Launcher) -> None:
    server = launch(OJS_HOST="0.0.0.0", OJS_API_KEY="e2e-secret")
    server.wait_ready(check_grpc=False)
    job = {"type": "e2e.test", "args": [1]}
    assert server.request("GET", "/ojs/v1/health")[0] == 200
    assert server.request("POST", "/ojs/v1/jobs", job)[0] == 401
    assert server.request("POST", "/ojs/v1/jobs", job, {"Authorization": "Bearer wrong"})[0] == 401
    status, body = server.request("POST", "/ojs/v1/jobs", job, {"Authorization": "Bearer e2e-secret"})
    assert status == 201, body
    assert server.terminate() == 0, server.output


def test_help_documents_every_setting() -> None:
    names = _settings_env_names()
    assert "REDIS_URL" in names
    assert "OJS_API_KEY" in names
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "gen")])}
    result = subprocess.run(
        [sys.executable, "-m", "server", "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert [name for name in names if name not in result.stdout] == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [name for name in names if f"`{name}`" not in readme] == []
