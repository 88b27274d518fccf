"""Polyglot: a Node worker (@grpc/grpc-js + @grpc/proto-loader loading proto/) against the running server.

It runs when `node` and `npm` are on PATH (`npm ci` installs the pinned packages on first use; `.ci/run`
installs them up front), and is skipped with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import grpc
import orjson
import pytest
from ojs.v1 import job_pb2, service_pb2_grpc

from tests.support import new_queue

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
NPM_TIMEOUT_S = 300
WORKER_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if node is None or npm is None:
        pytest.skip(f"the Node worker test needs node and npm on PATH; missing: {', '.join(missing)}")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        assert installed.returncode == 0, f"npm ci failed: {installed.stderr[-2000:]}"
    return node


async def test_node_worker_round_trip(node: str, grpc_target: str) -> None:
    queue = new_queue("node")
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "worker.mjs"),
        grpc_target,
        str(ROOT / "proto"),
        queue,
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=WORKER_TIMEOUT_S)
    assert process.returncode == 0, err.decode()[-4000:]
    summary = orjson.loads(out.decode().strip().splitlines()[-1])
    assert summary["state"] == "JOB_STATE_COMPLETED" and summary["attempts"] == 2 and summary["progress"] == 0.5

    # What the Node worker did, as the server recorded it.
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        stub = service_pb2_grpc.OJSServiceStub(channel)
        job = (await stub.GetJob(job_pb2.GetJobRequest(job_id=summary["job_id"]))).job
    assert job.state == job_pb2.JOB_STATE_COMPLETED and job.queue == queue
    assert [(e.code, e.attempt) for e in job.errors] == [("transient", 1)]
    assert job.result_json == b'{"ok":true}'
