"""Real `ojs-server` processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
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
STOP_TIMEOUT_S = 30.0
# Requests go to this machine only; a proxy from the environment must not intercept them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Starts servers on free ports; kills any still running at the end."""
    started: list[ServerProcess] = []
    data_dir = tmp_path / "ojs-data"
    overridden_data_dirs: set[str] = set()

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
        overridden_data_dirs.add(env["OJS_DATA_DIR"])
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
        # The overrides may name the ports (a restart on the same ports).
        server = ServerProcess(proc, log_path, int(env["OJS_PORT"]), int(env["OJS_GRPC_PORT"]))
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            # Gracefully first, so the server stops the redis-server it owns.
            server.proc.terminate()
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
    # A server killed during the test (or above) leaves its embedded redis-server behind.
    for directory in {data_dir, *(Path(d) for d in overridden_data_dirs)}:
        stop_orphaned_redis(directory)


def stop_orphaned_redis(data_dir: Path) -> None:
    """Kill the redis-server named in `data_dir`'s pidfile, if it still runs (SIGKILL also ends a stopped one)."""
    try:
        pid = int((data_dir / "redis.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"redis-server" not in command:  # the pid went to another process since
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
