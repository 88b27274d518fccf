"""`ojs-server` / `python -m server`: settings, logging, signals, run."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from server.config import Settings, SettingsError
from server.embedded_redis import EmbeddedRedisError

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
    ("OJS_LOG_LEVEL", "log_level", "DEBUG, INFO, WARNING or ERROR"),
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
    )
    if settings.log_level not in logging.getLevelNamesMapping():
        raise SettingsError(f"OJS_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {settings.log_level!r}")
    settings.check_exposure()
    return settings


class _OneLineFormatter(logging.Formatter):
    """Keeps each record on one line (tracebacks included) so log collectors see one event per line."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\n")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


async def serve(settings: Settings) -> int:
    """Run until a signal (exit code 0) or a crashed background loop (exit code 1)."""
    # Imported here so `--help` and configuration errors answer without loading grpc and the rest.
    from server.app import Application

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    stop_requested = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if not stop_requested.is_set():
            log.info("received %s; shutting down (send it again to exit at once)", sig.name)
            stop_requested.set()
            return
        log.warning("received %s again; exiting without waiting for the shutdown to finish", sig.name)
        # A third signal takes the default action and kills the process even if cancellation hangs.
        for s in _SIGNALS:
            loop.remove_signal_handler(s)
            signal.signal(s, signal.SIG_DFL)
        if main_task is not None:
            main_task.cancel()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    exit_code = 0
    try:
        app = Application(settings)
        try:
            await app.start()
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
        log.info("stopped")
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args, os.environ)
    except SettingsError as exc:
        print(f"ojs-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return asyncio.run(serve(settings))
    except asyncio.CancelledError:
        log.warning("forced exit")
        return 1
    except KeyboardInterrupt:
        # Ctrl-C before the signal handlers were installed.
        return 130
    except EmbeddedRedisError as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("ojs-server failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
