"""Faults under load with real processes: every job completes, none is lost, duplicates stay within what was held.

Each run works off a back-log with gRPC workers (tests/e2e/chaos.py) and kills a process once part of it is done:
the server itself (restarted by hand, as an orchestrator would), its embedded redis-server (the server restarts it),
one worker of `--workers 2` (the supervisor restarts it), or a clean Redis restart. A duplicate is a job delivered
again because its ack was lost with the killed process; there can be no more of them than jobs the workers held.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from . import chaos
from .processes import Launcher, ServerProcess


def _start(launch: Launcher, **env: str) -> ServerProcess:
    server = launch(**chaos.LEASE_ENV, **env)
    server.wait_ready()
    return server


def _check(outcome: chaos.Outcome, what: str) -> None:
    print(
        f"{what}: enqueued {outcome.enqueued}, completed {outcome.completed}, lost {outcome.lost}, "
        f"duplicates {outcome.duplicates}, held at most {outcome.most_held}, failed calls {outcome.failed_calls}"
    )
    assert outcome.distinct == outcome.enqueued, f"{what}: jobs never delivered"
    assert outcome.completed == outcome.enqueued, f"{what}: completed {outcome.completed} of {outcome.enqueued}"
    assert outcome.left_active == 0 and outcome.left_available == 0
    assert 0 <= outcome.duplicates <= outcome.most_held, f"{what}: more duplicates than jobs in flight"


def test_server_killed_under_load_loses_no_job(launch: Launcher, tmp_path: Path) -> None:
    server = _start(launch)
    ports = {"OJS_PORT": str(server.http_port), "OJS_GRPC_PORT": str(server.grpc_port)}
    target = f"127.0.0.1:{server.grpc_port}"

    def kill_and_restart() -> None:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        # Same ports, same data directory: the new process takes over the Redis the old one left running.
        _start(launch, **ports)

    async def scenario() -> chaos.Outcome:
        ids = await chaos.enqueue(target, 20_000)
        return await chaos.work_off(lambda: target, ids, lambda: asyncio.to_thread(kill_and_restart), fault_after=5_000)

    _check(asyncio.run(scenario()), "SIGKILL ojs-server")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["redis-sigkill", "redis-restart"])
def test_embedded_redis_death_is_survived(launch: Launcher, tmp_path: Path, sig: signal.Signals) -> None:
    server = _start(launch)
    target = f"127.0.0.1:{server.grpc_port}"
    data_dir = tmp_path / "ojs-data"
    old_pid = chaos.redis_pid(data_dir)

    def kill_redis() -> None:
        chaos.kill(old_pid, sig)

    async def scenario() -> chaos.Outcome:
        ids = await chaos.enqueue(target, 5_000)
        return await chaos.work_off(lambda: target, ids, kill_redis, fault_after=1_500)

    _check(asyncio.run(scenario()), f"{sig.name} embedded redis-server")
    assert server.proc.poll() is None, "the server exited instead of restarting its Redis"
    assert chaos.redis_pid(data_dir) != old_pid
    assert "restarting it" in server.output


def test_killed_worker_process_is_survived(launch: Launcher) -> None:
    server = _start(launch, OJS_WORKERS="2")
    target = f"127.0.0.1:{server.grpc_port}"
    workers = chaos.children_of(server.proc.pid, "--worker-index")
    assert len(workers) == 2

    async def scenario() -> chaos.Outcome:
        ids = await chaos.enqueue(target, 5_000)
        return await chaos.work_off(lambda: target, ids, lambda: chaos.kill(workers[0]), fault_after=1_500)

    _check(asyncio.run(scenario()), "SIGKILL one of --workers 2")
    chaos.wait_for(lambda: len(chaos.children_of(server.proc.pid, "--worker-index")) == 2, 30, "the worker's restart")
