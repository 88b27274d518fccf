"""`ojs-server --workers N`: N server processes sharing the gRPC and HTTP ports, supervised by the parent.

The parent serves nothing itself. It reserves the two ports, starts the private redis-server when REDIS_URL is unset,
and runs N children (`python -m server --worker-index I`) that bind the same ports with SO_REUSEPORT, so the kernel
spreads incoming connections over them. Children get their settings through the environment (REDIS_URL pointing at
the parent's Redis, the resolved ports, OJS_WORKERS=1); their stdin is a pipe from the parent that is never written
to, so a child whose parent died (even by SIGKILL) sees end-of-file and shuts down on its own.

Supervision: a worker that exits while the server is not stopping is logged and restarted after a backoff (0.5 s,
doubling up to 10 s; back to 0.5 s once a worker has run for a minute). More than MAX_RESTARTS unexpected exits
within RESTART_WINDOW_S mean something is persistently wrong (Redis gone, a port taken): the parent then stops every
worker and exits with code 1 rather than restart forever. On stop, every worker gets SIGTERM and is waited for (the
same graceful shutdown as a single process), then the private redis-server is stopped last.

Metrics: a scrape reaches one worker, so the workers keep their per-process figures in prometheus-client's
multiprocess files, in a directory the supervisor creates (unless PROMETHEUS_MULTIPROC_DIR names one) and removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence

from server.config import Settings
from server.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)

__all__ = ["Supervisor", "SupervisorError", "reserve_port"]

RESTART_BACKOFF_INITIAL_S = 0.5
RESTART_BACKOFF_MAX_S = 10.0
# A worker that ran this long before exiting was healthy; its next restart starts the backoff over.
STABLE_AFTER_S = 60.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
# A worker gets its shutdown timeout plus this long to finish its graceful shutdown before SIGKILL.
WORKER_STOP_MARGIN_S = 10.0
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class SupervisorError(RuntimeError):
    """The worker processes cannot be started."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[str, int]]]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SupervisorError(f"cannot resolve OJS_HOST={host!r}: {exc}") from exc
    found: list[tuple[socket.AddressFamily, tuple[str, int]]] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = (family, (str(sockaddr[0]), int(sockaddr[1])))
            if address not in found:
                found.append(address)
    if not found:
        raise SupervisorError(f"OJS_HOST={host!r} has no IPv4 or IPv6 address")
    return found


def _socket(family: socket.AddressFamily, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        else:
            # Connections of a previous run lingering in TIME_WAIT do not make the port busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def reserve_port(host: str, port: int, what: str) -> tuple[int, list[socket.socket]]:
    """Check that `port` (0: a free one) is free on `host`, and hold it for the workers until the sockets close.

    The check binds without SO_REUSEPORT, so a port anybody listens on is refused with a clear error instead of
    being silently shared. The holding sockets are bound with SO_REUSEPORT but never listen: the workers can bind
    beside them, no connection is ever routed to them, and no other program takes the port while a worker restarts.
    """
    holders: list[socket.socket] = []
    try:
        for family, (address, _) in _addresses(host, port):
            with _socket(family, reuse_port=False) as probe:
                try:
                    probe.bind((address, port))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise SupervisorError(f"cannot listen for {what} on {address}:{port}: address in use") from None
                    raise SupervisorError(f"cannot listen for {what} on {address}:{port}: {exc}") from exc
                # Port 0: the first address picks the port, the others must have the same one free.
                port = int(probe.getsockname()[1])
            holder = _socket(family, reuse_port=True)
            holders.append(holder)
            holder.bind((address, port))
    except BaseException:
        for holder in holders:
            holder.close()
        raise
    return port, holders


class Supervisor:
    def __init__(self, settings: Settings, *, command: Sequence[str] | None = None) -> None:
        if settings.workers < 2:
            raise ValueError("the supervisor runs two workers or more")
        self.settings = settings
        self._command = list(command) if command is not None else [sys.executable, "-m", "server"]
        self._workers: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._gave_up = asyncio.Event()
        self._exits: list[float] = []
        self.http_port = 0
        self.grpc_port = 0
        self.redis_url = settings.redis_url or ""
        self._stop_timeout_s = settings.shutdown_timeout_s + WORKER_STOP_MARGIN_S
        self.metrics_dir: str | None = None

    @property
    def worker_pids(self) -> list[int]:
        return [proc.pid for _, proc in sorted(self._workers.items()) if proc.returncode is None]

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until `stop` is set (exit code 0) or the workers keep dying (exit code 1)."""
        settings = self.settings
        holders: list[socket.socket] = []
        embedded: EmbeddedRedis | None = None
        slots: list[asyncio.Task[None]] = []
        own_metrics_dir = False
        try:
            if settings.metrics_enabled:
                self.metrics_dir = os.environ.get(METRICS_DIR_ENV) or None
                if self.metrics_dir is None:
                    self.metrics_dir, own_metrics_dir = tempfile.mkdtemp(prefix="ojs-metrics-"), True
            self.http_port, held = reserve_port(settings.host, settings.http_port, "HTTP")
            holders += held
            self.grpc_port, held = reserve_port(settings.host, settings.grpc_port, "gRPC")
            holders += held
            if settings.redis_url is None:
                embedded = EmbeddedRedis(settings.data_dir)
                # Restarted from its AOF if it dies; the workers reconnect on their own.
                self.redis_url = await embedded.start(supervise=True)
            env = self._worker_env(os.environ)
            log.info(
                "supervisor pid %d: %d workers on gRPC %s:%d, HTTP http://%s:%d",
                os.getpid(),
                settings.workers,
                settings.host,
                self.grpc_port,
                settings.host,
                self.http_port,
            )
            slots = [asyncio.create_task(self._run_slot(index, env)) for index in range(1, settings.workers + 1)]
            stopped = asyncio.ensure_future(stop.wait())
            gave_up = asyncio.ensure_future(self._gave_up.wait())
            try:
                await asyncio.wait((stopped, gave_up), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                gave_up.cancel()
            self._stopping.set()
            await asyncio.gather(*slots)
            return 1 if self._gave_up.is_set() else 0
        finally:
            self._stopping.set()
            for slot in slots:
                slot.cancel()
            if slots:
                await asyncio.gather(*slots, return_exceptions=True)
            for proc in self._workers.values():
                # Only after a cancellation: make sure no worker outlives the supervisor for long.
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
            if embedded is not None:
                await embedded.stop()
            for holder in holders:
                holder.close()
            if own_metrics_dir and self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def forward(self, sig: int) -> None:
        """Send `sig` to every running worker (a second SIGTERM makes them exit without waiting)."""
        for proc in self._workers.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    def _worker_env(self, base: Mapping[str, str]) -> dict[str, str]:
        settings = self.settings
        env = dict(base)
        # Through the environment, not argv: a REDIS_URL may hold a password, and argv is visible to every user.
        env.update(
            OJS_HOST=settings.host,
            OJS_PORT=str(self.http_port),
            OJS_GRPC_PORT=str(self.grpc_port),
            REDIS_URL=self.redis_url,
            OJS_DATA_DIR=str(settings.data_dir),
            OJS_WORKERS="1",
        )
        if self.metrics_dir is not None:
            env[METRICS_DIR_ENV] = self.metrics_dir
        return env

    def _forget_worker_metrics(self, pid: int) -> None:
        """A worker's live gauges (its process figures) leave the scrape with it; its counters stay summed."""
        if self.metrics_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]

    async def _run_slot(self, index: int, env: Mapping[str, str]) -> None:
        try:
            await self._supervise_worker(index, env)
        except Exception:
            # Cannot start a worker at all (e.g. the interpreter is gone): stop everything, loudly.
            log.exception("cannot run worker %d; stopping", index)
            self._gave_up.set()

    async def _supervise_worker(self, index: int, env: Mapping[str, str]) -> None:
        loop = asyncio.get_running_loop()
        backoff = RESTART_BACKOFF_INITIAL_S
        while not self._stopping.is_set():
            proc = await asyncio.create_subprocess_exec(
                *self._command,
                "--worker-index",
                str(index),
                env=env,
                # Never written to: the worker shuts down when it reads end-of-file, i.e. when the supervisor is gone.
                stdin=subprocess.PIPE,
                # Its own session: Ctrl-C on the terminal reaches the supervisor only, which stops the workers in order.
                start_new_session=True,
            )
            self._workers[index] = proc
            started = loop.time()
            log.info("worker %d started: pid %d", index, proc.pid)
            exited = asyncio.ensure_future(proc.wait())
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait((exited, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not exited.done():
                    exited.cancel()
            if proc.returncode is None:
                await self._stop_worker(index, proc)
                return
            self._close_lifeline(proc)
            self._forget_worker_metrics(proc.pid)
            code = proc.returncode
            if self._stopping.is_set():
                log.info("worker %d (pid %d) exited with %s", index, proc.pid, describe_exit(code))
                return
            now = loop.time()
            if now - started >= STABLE_AFTER_S:
                backoff = RESTART_BACKOFF_INITIAL_S
            self._exits = [t for t in self._exits if now - t < RESTART_WINDOW_S] + [now]
            if len(self._exits) > MAX_RESTARTS:
                log.error(
                    "worker %d (pid %d) exited with %s; workers exited %d times within %.0fs, giving up",
                    index,
                    proc.pid,
                    describe_exit(code),
                    len(self._exits),
                    RESTART_WINDOW_S,
                )
                self._gave_up.set()
                return
            log.error(
                "worker %d (pid %d) exited unexpectedly with %s; restarting it in %.1fs",
                index,
                proc.pid,
                describe_exit(code),
                backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)

    @staticmethod
    def _close_lifeline(proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is not None:
            proc.stdin.close()

    async def _stop_worker(self, index: int, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), self._stop_timeout_s)
        except TimeoutError:
            log.warning(
                "worker %d (pid %d) still running %.0fs after SIGTERM; killing it",
                index,
                proc.pid,
                self._stop_timeout_s,
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._close_lifeline(proc)
        self._forget_worker_metrics(proc.pid)
        code = proc.returncode
        if code == 0:
            log.info("worker %d (pid %d) stopped", index, proc.pid)
        else:
            log.warning("worker %d (pid %d) stopped with %s", index, proc.pid, describe_exit(code or 0))
