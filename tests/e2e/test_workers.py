"""`ojs-server --workers 2`: two processes on one pair of ports, the embedded Redis owned by the supervisor."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from ojs.v1 import job_pb2, service_pb2_grpc, worker_pb2

from .processes import Launcher, ServerProcess

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads process and socket tables in /proc")

CONNECTIONS = 16
WAIT_S = 30.0
_TCP_LISTEN = 0x0A
_TCP_ESTABLISHED = 0x01


# --------------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ")" are plain.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[1] == pid:
            found.append(int(entry.name))
    return sorted(found)


def _socket_owners(pids: list[int]) -> dict[int, int]:
    """Socket inode -> pid, for the sockets the processes hold."""
    owners = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def _tcp_sockets() -> list[tuple[int, int, int]]:
    """(local port, state, inode) of every TCP socket of this network namespace."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            sockets.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[3], 16), int(fields[9])))
    return sockets


def _sockets_per_owner(pids: list[int], port: int, state: int) -> Counter[int]:
    owners = _socket_owners(pids)
    return Counter(
        owners[inode] for local, st, inode in _tcp_sockets() if local == port and st == state and inode in owners
    )


def _workers_and_redis(server: ServerProcess) -> tuple[list[int], list[int]]:
    """Once both workers listen on both ports: (worker pids, redis-server pids), children of the supervisor."""
    deadline = time.monotonic() + WAIT_S
    while True:
        children = _children(server.proc.pid)
        workers = [pid for pid in children if "--worker-index" in _cmdline(pid)]
        redis = [pid for pid in children if "redis-server" in _cmdline(pid)]
        listening = [
            set(_sockets_per_owner(workers, port, _TCP_LISTEN)) for port in (server.http_port, server.grpc_port)
        ]
        if len(workers) == 2 and all(found == set(workers) for found in listening):
            return workers, redis
        if time.monotonic() > deadline:
            pytest.fail(f"expected 2 listening workers, found {workers} listening on {listening}:\n{server.output}")
        time.sleep(0.2)


# --------------------------------------------------------------------------- clients


def _http(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    payload = None if body is None else json.dumps(body)
    conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    return response.status, (json.loads(raw) if raw.strip() else None)


def _channel(server: ServerProcess) -> grpc.Channel:
    # A private subchannel pool: every channel opens its own TCP connection instead of sharing one.
    options = [("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
    return grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options)


def test_two_workers_share_the_ports_and_stop_with_the_supervisor(launch: Launcher) -> None:
    server = launch(OJS_WORKERS="2")
    server.wait_ready()
    workers, redis = _workers_and_redis(server)
    assert len(redis) == 1, f"the supervisor owns the embedded redis-server: {redis}"
    assert server.proc.pid not in workers
    queue = f"workers-{uuid.uuid4().hex[:8]}"

    http_conns = [http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10) for _ in range(CONNECTIONS)]
    channels = [_channel(server) for _ in range(CONNECTIONS)]
    stubs = [service_pb2_grpc.OJSServiceStub(channel) for channel in channels]
    try:
        enqueued: list[str] = []
        for i, (conn, stub) in enumerate(zip(http_conns, stubs, strict=True)):
            status, body = _http(
                conn, "POST", "/ojs/v1/jobs", {"type": "e2e.http", "args": [i], "options": {"queue": queue}}
            )
            assert status == 201, body
            enqueued.append(body["job"]["id"])
            reply = stub.Enqueue(
                job_pb2.EnqueueRequest(type="e2e.grpc", args=[], options=job_pb2.EnqueueOptions(queue=queue)),
                timeout=10,
            )
            enqueued.append(reply.job.id)

        # Every connection is still open: each worker holds some of them, on both ports.
        http_owners = _sockets_per_owner(workers, server.http_port, _TCP_ESTABLISHED)
        grpc_owners = _sockets_per_owner(workers, server.grpc_port, _TCP_ESTABLISHED)
        assert set(http_owners) == set(workers), f"HTTP connections per worker: {http_owners}"
        assert set(grpc_owners) == set(workers), f"gRPC connections per worker: {grpc_owners}"
        assert sum(http_owners.values()) == CONNECTIONS
        assert sum(grpc_owners.values()) == CONNECTIONS

        # Fetch over one protocol and connection, ack over the other, whichever worker serves each.
        fetched: list[str] = []
        for i in range(len(enqueued)):
            conn, stub = http_conns[i % CONNECTIONS], stubs[(i + 1) % CONNECTIONS]
            worker_id = f"e2e-worker-{i}"
            if i % 2 == 0:
                jobs = list(
                    stub.Fetch(worker_pb2.FetchRequest(queues=[queue], count=1, worker_id=worker_id), timeout=10).jobs
                )
                assert len(jobs) == 1
                job_id = jobs[0].id
                status, body = _http(conn, "POST", "/ojs/v1/workers/ack", {"job_id": job_id, "worker_id": worker_id})
                assert status == 200, body
            else:
                status, body = _http(conn, "POST", "/ojs/v1/workers/fetch", {"queues": [queue], "worker_id": worker_id})
                assert status == 200, body
                assert len(body["jobs"]) == 1, body
                job_id = body["jobs"][0]["id"]
                stub.Ack(worker_pb2.AckRequest(job_id=job_id, worker_id=worker_id), timeout=10)
            fetched.append(job_id)
        assert sorted(fetched) == sorted(enqueued)
        for i, job_id in enumerate(enqueued):
            status, body = _http(http_conns[i % CONNECTIONS], "GET", f"/ojs/v1/jobs/{job_id}")
            assert status == 200, body
            assert body["job"]["state"] == "completed", body
    finally:
        for conn in http_conns:
            conn.close()
        for channel in channels:
            channel.close()

    assert server.terminate() == 0, server.output
    left = [pid for pid in [*workers, *redis] if _alive(pid)]
    assert left == [], f"still running after the supervisor exited: {left}\n{server.output}"
    output = server.output
    assert "[worker 1]" in output and "[worker 2]" in output
    assert "exited unexpectedly" not in output, output


def test_a_worker_that_dies_is_restarted(launch: Launcher) -> None:
    server = launch(OJS_WORKERS="2")
    server.wait_ready()
    workers, redis = _workers_and_redis(server)
    os.kill(workers[0], signal.SIGKILL)

    deadline = time.monotonic() + WAIT_S
    while True:
        now_workers, _ = _workers_and_redis(server)
        if workers[0] not in now_workers:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"worker {workers[0]} was not replaced:\n{server.output}")
        time.sleep(0.2)
    assert workers[1] in now_workers
    assert f"(pid {workers[0]}) exited unexpectedly with signal SIGKILL; restarting it" in server.output
    status, body = server.request("POST", "/ojs/v1/jobs", {"type": "e2e.after-restart", "args": []})
    assert status == 201, body

    assert server.terminate() == 0, server.output
    left = [pid for pid in [*now_workers, *redis] if _alive(pid)]
    assert left == [], f"still running after the supervisor exited: {left}\n{server.output}"


def test_workers_refuse_a_port_already_in_use(launch: Launcher) -> None:
    first = launch()
    first.wait_ready(check_grpc=False)
    # Same ports as the running single server, its own data directory.
    second = launch(
        OJS_WORKERS="2",
        OJS_PORT=str(first.http_port),
        OJS_GRPC_PORT=str(first.grpc_port),
        OJS_DATA_DIR=str(first.log_path.parent / "other-data"),
    )
    assert second.proc.wait(WAIT_S) == 1, second.output
    assert f"cannot listen for HTTP on 127.0.0.1:{first.http_port}: address in use" in second.output
    assert first.terminate() == 0, first.output
