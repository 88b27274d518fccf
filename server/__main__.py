"""`ojs-server` / `python -m server`: settings, logging, signals, run."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from server.config import MAX_WORKERS, Settings, SettingsError
from server.embedded_redis import EmbeddedRedisError
from server.runtime import RuntimeSetupError, check_protobuf_backend, event_loop_factory
from server.supervisor import SupervisorError

log = logging.getLogger("server")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# (variable, Settings field, meaning); the defaults are read from Settings so the help cannot drift from them.
ENV_VARS: tuple[tuple[str, str, str], ...] = (
    ("OJS_HOST", "host", "address both listeners bind to"),
    ("OJS_PORT", "http_port", "HTTP (REST gateway) port; 0 picks a free one"),
    ("OJS_GRPC_PORT", "grpc_port", "gRPC port; 0 picks a free one"),
    ("REDIS_URL", "redis_url", "Redis to use (redis://, rediss://, unix://); unset: start a private redis-server"),
    ("OJS_DATA_DIR", "data_dir", "directory of the private redis-server (AOF, socket, log)"),
    ("OJS_KEY_PREFIX", "key_prefix", "prefix of every Redis key; '{ojs}' keeps all keys in one cluster slot"),
    ("OJS_API_KEY", "api_key", "bearer token required on the API (health stays open)"),
    ("OJS_ALLOW_INSECURE_NO_AUTH", "allow_insecure_no_auth", "allow a non-loopback OJS_HOST without OJS_API_KEY"),
    ("OJS_MAX_BODY_BYTES", "max_body_bytes", "largest HTTP request body accepted"),
    ("OJS_EVENTS_MAXLEN", "events_maxlen", "approximate cap of the event log"),
    ("OJS_MAX_BATCH_JOBS", "max_batch_jobs", "most jobs one batch enqueue may carry"),
    ("OJS_MAX_JOB_BYTES", "max_job_bytes", "largest job (args, meta and other envelope fields as JSON)"),
    (
        "OJS_DEFAULT_VISIBILITY_TIMEOUT_MS",
        "default_visibility_timeout_ms",
        "lease of a fetched job when neither the job nor the fetch sets one",
    ),
    (
        "OJS_DEFAULT_TIMEOUT_MS",
        "default_timeout_ms",
        "time limit of one attempt when the job sets none; 0: none",
    ),
    ("OJS_RETENTION_COMPLETED_S", "retention_completed_s", "completed jobs are deleted this long after; 0: kept"),
    ("OJS_RETENTION_CANCELLED_S", "retention_cancelled_s", "cancelled jobs are deleted this long after; 0: kept"),
    ("OJS_RETENTION_DISCARDED_S", "retention_discarded_s", "discarded jobs are deleted this long after; 0: kept"),
    ("OJS_DEAD_LETTER_MAX_AGE_S", "dead_letter_max_age_s", "dead-lettered jobs older than this are deleted"),
    ("OJS_DEAD_LETTER_MAX_COUNT", "dead_letter_max_count", "the oldest dead-lettered jobs beyond this are deleted"),
    ("OJS_WORKER_RETENTION_S", "worker_retention_s", "workers silent this long leave the registry"),
    ("OJS_REAPER_INTERVAL_MS", "reaper_interval_ms", "period of the expired-lease and timeout reaper"),
    ("OJS_PROMOTE_INTERVAL_MS", "promote_interval_ms", "period of the scheduled/retry promoter"),
    ("OJS_REDIS_POOL_SIZE", "redis_pool_size", "most Redis connections of a process; more wait for one"),
    ("OJS_REDIS_POOL_TIMEOUT_MS", "redis_pool_timeout_ms", "longest wait for a free Redis connection, then 503"),
    ("OJS_REDIS_CONNECT_TIMEOUT_MS", "redis_connect_timeout_ms", "time limit of connecting to Redis"),
    ("OJS_REDIS_COMMAND_TIMEOUT_MS", "redis_command_timeout_ms", "time limit of one Redis command, then 503"),
    ("OJS_MAX_INFLIGHT", "max_inflight", "requests served at once, HTTP and gRPC shared fairly; 0: no limit"),
    ("OJS_MAX_WAITING", "max_waiting", "requests waiting for a slot; beyond, 503 + Retry-After"),
    ("OJS_ADMISSION_TIMEOUT_MS", "admission_timeout_ms", "longest wait for a slot, then 503 + Retry-After"),
    ("OJS_RETRY_AFTER_S", "retry_after_s", "Retry-After of a shed request or while Redis is down"),
    ("OJS_LOG_LEVEL", "log_level", "DEBUG, INFO, WARNING or ERROR"),
    ("OJS_LOG_FORMAT", "log_format", "plain (lines for a terminal) or json (one JSON object per line)"),
    ("OJS_METRICS", "metrics_enabled", "serve GET /metrics and count requests and Redis calls"),
    ("OJS_SHUTDOWN_TIMEOUT", "shutdown_timeout_s", "seconds in-flight work gets to finish after SIGTERM"),
    ("OJS_WORKERS", "workers", "server processes sharing both ports (SO_REUSEPORT); 1: a single process"),
    ("OJS_EVENT_LOOP", "event_loop", "auto (uvloop when installed), asyncio or uvloop"),
    ("OJS_ALLOW_SLOW_PROTOBUF", "allow_slow_protobuf", "start even if the protobuf runtime is not upb"),
    (
        "OJS_RESPONSE_CONTENT_TYPE",
        "response_content_type",
        "Content-Type of JSON responses: application/openjobspec+json or application/json",
    ),
)


def _default_text(field: str) -> str:
    value = next(f.default for f in dataclasses.fields(Settings) if f.name == field)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {value}")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"workers must be in 1..{MAX_WORKERS}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    width = max(len(name) for name, _, _ in ENV_VARS)
    rows = "\n".join(
        f"  {name:<{width}}  {meaning} (default: {_default_text(field)})" for name, field, meaning in ENV_VARS
    )
    parser = argparse.ArgumentParser(
        prog="ojs-server",
        description="OpenJobSpec job server: gRPC service, REST gateway and background loops on Redis.",
        epilog=f"environment variables (flags override them):\n{rows}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="bind address (OJS_HOST)")
    parser.add_argument("--port", type=_port, help="HTTP port (OJS_PORT)")
    parser.add_argument("--grpc-port", type=_port, help="gRPC port (OJS_GRPC_PORT)")
    parser.add_argument("--redis-url", help="Redis URL; empty for the private redis-server (REDIS_URL)")
    parser.add_argument("--data-dir", type=Path, help="data directory of the private redis-server (OJS_DATA_DIR)")
    parser.add_argument("--workers", type=_workers, help="server processes sharing the ports (OJS_WORKERS)")
    # Set by the supervisor of `--workers N` on the processes it starts (1..N).
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    return parser


def load_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    settings = Settings.from_env(env)
    redis_url = settings.redis_url if args.redis_url is None else (args.redis_url.strip() or None)
    settings = dataclasses.replace(
        settings,
        host=settings.host if args.host is None else args.host,
        http_port=settings.http_port if args.port is None else args.port,
        grpc_port=settings.grpc_port if args.grpc_port is None else args.grpc_port,
        redis_url=redis_url,
        data_dir=settings.data_dir if args.data_dir is None else args.data_dir,
        # A worker of the supervisor is one process, whatever the environment says.
        workers=1 if args.worker_index is not None else (settings.workers if args.workers is None else args.workers),
    )
    if settings.log_level not in logging.getLevelNamesMapping():
        raise SettingsError(f"OJS_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {settings.log_level!r}")
    settings.check_exposure()
    return settings


class _OneLineFormatter(logging.Formatter):
    """Keeps each record on one line (tracebacks included) so log collectors see one event per line."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\n")


def configure_logging(level: str, tag: str = "", log_format: str = "plain") -> None:
    """`tag` (e.g. "worker 2") tells apart the processes of `--workers N`, which share one stderr.

    `log_format` "json": one JSON object per line with the fields of ojs-logging.md.
    """
    prefix = f"[{tag}] " if tag else ""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from server.observability.logs import JsonFormatter

        handler.setFormatter(JsonFormatter(tag))
    else:
        handler.setFormatter(_OneLineFormatter(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _Signals:
    """SIGINT/SIGTERM: the first calls `on_stop`, the second `on_again`, a third takes the default action."""

    def __init__(self, on_stop: Callable[[], None], on_again: Callable[[signal.Signals], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_stop = on_stop
        self._on_again = on_again
        self._received = False

    def __enter__(self) -> _Signals:
        for sig in _SIGNALS:
            self._loop.add_signal_handler(sig, self._handle, sig)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig in _SIGNALS:
            self._loop.remove_signal_handler(sig)

    def _handle(self, sig: signal.Signals) -> None:
        if not self._received:
            self._received = True
            log.info("received %s; shutting down (send it again to exit at once)", sig.name)
            self._on_stop()
            return
        log.warning("received %s again; exiting without waiting for the shutdown to finish", sig.name)
        # A third signal takes the default action and kills the process even if cancellation hangs.
        for s in _SIGNALS:
            self._loop.remove_signal_handler(s)
            signal.signal(s, signal.SIG_DFL)
        self._on_again(sig)


def _watch_supervisor(stop_requested: asyncio.Event) -> Callable[[], None]:
    """A worker's stdin is a pipe the supervisor never writes to: end-of-file means the supervisor is gone.

    Returns the function that stops watching.
    """
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def on_readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            if not stop_requested.is_set():
                log.warning("the supervisor process is gone; shutting down")
                stop_requested.set()

    def unwatch() -> None:
        loop.remove_reader(fd)

    loop.add_reader(fd, on_readable)
    return unwatch


async def serve(settings: Settings, *, event_loop: str = "", worker_index: int | None = None) -> int:
    """Run until a signal (exit code 0) or a crashed background loop (exit code 1).

    `worker_index`: this process is one of the workers of `--workers N`: it binds the ports with SO_REUSEPORT and
    stops when its supervisor goes away.
    """
    # Imported here so `--help` and configuration errors answer without loading grpc and the rest.
    from server.app import Application

    main_task = asyncio.current_task()
    stop_requested = asyncio.Event()

    def on_again(sig: signal.Signals) -> None:
        if main_task is not None:
            main_task.cancel()

    exit_code = 0
    with _Signals(stop_requested.set, on_again):
        unwatch = _watch_supervisor(stop_requested) if worker_index is not None else None
        try:
            if event_loop:
                log.info("event loop: %s", event_loop)
            from server.observability import tracing
            from server.service.system import IMPLEMENTATION_VERSION

            tracing.configure(os.environ, service_name="ojs-server", version=IMPLEMENTATION_VERSION)
            app = Application(settings, reuse_port=worker_index is not None)
            try:
                await app.start()
                # What start-up allocated (modules, servers, clients) lives as long as the process: keep it out of
                # the collector's full passes, which otherwise take tens of milliseconds with the loop stalled.
                gc.freeze()
                log.info(
                    "listening: gRPC %s:%d, HTTP http://%s:%d",
                    settings.host,
                    app.grpc_port,
                    settings.host,
                    app.http_port,
                )
                stop = asyncio.ensure_future(stop_requested.wait())
                crash = asyncio.ensure_future(app.wait_failure())
                await asyncio.wait((stop, crash), return_when=asyncio.FIRST_COMPLETED)
                for waiter in (stop, crash):
                    waiter.cancel()
                if crash.done() and not crash.cancelled():
                    exit_code = 1
            finally:
                await app.stop()
                tracing.shutdown()
            log.info("stopped")
        finally:
            if unwatch is not None:
                unwatch()
    return exit_code


async def supervise(settings: Settings, *, event_loop: str = "") -> int:
    """`--workers N` (N > 1): run and supervise N server processes; exit code 0 after a signal, 1 if they kept dying."""
    from server.supervisor import Supervisor

    supervisor = Supervisor(settings)
    stop_requested = asyncio.Event()
    # A second signal is passed on: the workers then exit without waiting; the supervisor still waits for them.
    with _Signals(stop_requested.set, supervisor.forward):
        if event_loop:
            log.info("event loop: %s", event_loop)
        exit_code = await supervisor.run(stop_requested)
    log.info("stopped")
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args, os.environ)
    except SettingsError as exc:
        print(f"ojs-server: {exc}", file=sys.stderr)
        return 2
    worker_index: int | None = args.worker_index
    supervising = settings.workers > 1
    tag = f"worker {worker_index}" if worker_index is not None else ("supervisor" if supervising else "")
    configure_logging(settings.log_level, tag, settings.log_format)
    try:
        check_protobuf_backend(settings)
        loop_factory, loop_name = event_loop_factory(settings.event_loop)
    except RuntimeSetupError as exc:
        log.error("%s", exc)
        return 1
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            if supervising:
                return runner.run(supervise(settings, event_loop=loop_name))
            return runner.run(serve(settings, event_loop=loop_name, worker_index=worker_index))
    except asyncio.CancelledError:
        log.warning("forced exit")
        return 1
    except KeyboardInterrupt:
        # Ctrl-C before the signal handlers were installed.
        return 130
    except (EmbeddedRedisError, SupervisorError) as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("ojs-server failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
