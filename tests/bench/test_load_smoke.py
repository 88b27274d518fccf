"""`python -m bench load` at a reduced scale: 300 HTTP + 50 gRPC clients for 10 s, and not a single error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.bench


def test_many_clients_of_both_protocols_get_no_error(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "gen")])
    command = [sys.executable, "-m", "bench", "load", "--http-clients", "300", "--grpc-clients", "50"]
    command += ["--duration", "10", "--solo-duration", "0", "--http-procs", "1", "--grpc-procs", "1"]
    command += ["--json", str(out)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    phase = json.loads(out.read_text())["phases"]["both"]
    for protocol, clients in (("http", 300), ("grpc", 50)):
        result = phase[protocol]
        assert result["clients"] == clients
        assert result["errors"] == {}, (protocol, result["errors"], result["first_errors"])
        # Both protocols make progress: neither is starved by the other.
        assert result["jobs"] > 0, (protocol, result)
    server = phase["server"]
    # Connections are closed when the clients leave; the Redis pool keeps a few idle ones at most.
    assert server["after"]["fds"] <= server["before"]["fds"] + 16, server
