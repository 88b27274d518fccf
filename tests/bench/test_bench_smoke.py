"""Smoke test of the benchmark suite: `python -m bench throughput --quick` on two scenarios, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("enqueue_batch100_grpc", "fetch10_ack_grpc")

pytestmark = pytest.mark.bench


def test_quick_throughput_run_writes_positive_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # The suite flushes the Redis it measures: never one named by the caller's REDIS_URL.
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "gen")])
    command = [sys.executable, "-m", "bench", "throughput", "--quick", "--jobs", "1000"]
    command += ["--only", ",".join(SCENARIOS), "--json", str(out)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(out.read_text())
    assert document["machine"]["cores"] >= 1
    assert set(document["throughput"]) == set(SCENARIOS)
    for name in SCENARIOS:
        result = document["throughput"][name]
        assert result["status"] == "ok", result
        assert result["jobs"] == [1000]
        assert result["jobs_per_s"]["median"] > 0
        assert result["redis_calls_per_job"]["median"] > 0
        assert result["redis_script_calls_per_job"]["median"] > 0
    assert "enqueue_batch100_grpc" in proc.stdout
