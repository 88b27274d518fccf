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


def test_workers_run_compares_one_and_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "workers.json"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "gen")])
    command = [sys.executable, "-m", "bench", "workers", "--quick", "--runs", "1", "--jobs", "500"]
    command += ["--only", "enqueue_grpc", "--load-procs", "1", "--json", str(out)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())["workers"]
    assert set(figures["by_workers"]) == {"1", "2"}
    for results in figures["by_workers"].values():
        assert results["enqueue_grpc"]["status"] == "ok"
        assert results["enqueue_grpc"]["jobs"] == [500]
    ceiling = figures["ceilings"]["enqueue_grpc"]
    assert ceiling["server_core_jobs_per_s"] > 0
    assert ceiling["redis_jobs_per_s"] > 0
    assert "2 proc ÷ 1" in proc.stdout
