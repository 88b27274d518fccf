"""The real `ojs-server` process: start-up on the embedded Redis, persistence across restarts, exposure rules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .processes import STOP_TIMEOUT_S, Launcher

REPO = Path(__file__).resolve().parents[2]


def _settings_env_names() -> list[str]:
    source = (REPO / "server" / "config.py").read_text(encoding="utf-8")
    return sorted(set(re.findall(r'"((?:OJS|REDIS)_[A-Z_]+)"', source)))


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
