"""`ojs-gateway` / `python -m gateway`: the REST gateway in front of a remote OJS gRPC server."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

__all__ = ["build_parser", "main"]

log = logging.getLogger("gateway")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_TRUE = {"1", "true", "yes", "on"}
_DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
# Seconds in-flight HTTP requests get to finish on shutdown.
_SHUTDOWN_GRACE_S = 10.0
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_RESPONSE_CONTENT_TYPES = ("application/openjobspec+json", "application/json")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1024:
        raise argparse.ArgumentTypeError(f"must be at least 1024, got {value}")
    return value


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ojs-gateway",
        description="OpenJobSpec REST gateway: serves the HTTP binding and forwards every call to an OJS gRPC server.",
        epilog=(
            "environment variables (flags override them): OJS_GRPC_TARGET, OJS_HOST, OJS_PORT, OJS_API_KEY, "
            "OJS_ALLOW_INSECURE_NO_AUTH, OJS_MAX_BODY_BYTES, OJS_RESPONSE_CONTENT_TYPE, OJS_LOG_LEVEL"
        ),
    )
    parser.add_argument(
        "--grpc-target",
        default=env.get("OJS_GRPC_TARGET") or None,
        help="HOST:PORT of the OJS gRPC server (OJS_GRPC_TARGET; required)",
    )
    parser.add_argument("--host", default=env.get("OJS_HOST") or "127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=env.get("OJS_PORT") or "8080", help="HTTP port (default 8080)")
    parser.add_argument(
        "--api-key",
        default=env.get("OJS_API_KEY") or None,
        help="bearer token required on the API (health and manifest stay open); also sent to the gRPC server",
    )
    parser.add_argument(
        "--allow-insecure-no-auth",
        action="store_true",
        default=env.get("OJS_ALLOW_INSECURE_NO_AUTH", "").strip().lower() in _TRUE,
        help="serve on a non-loopback address without an API key",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=env.get("OJS_MAX_BODY_BYTES") or str(_DEFAULT_MAX_BODY_BYTES),
        help=f"largest request body accepted (default {_DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--response-content-type",
        choices=_RESPONSE_CONTENT_TYPES,
        type=str.lower,
        default=(env.get("OJS_RESPONSE_CONTENT_TYPE") or "").strip().lower() or _RESPONSE_CONTENT_TYPES[0],
        help="Content-Type of JSON responses (OJS_RESPONSE_CONTENT_TYPE; default application/openjobspec+json)",
    )
    parser.add_argument(
        "--log-level",
        default=env.get("OJS_LOG_LEVEL") or "INFO",
        type=str.upper,
        help="DEBUG, INFO, WARNING or ERROR (OJS_LOG_LEVEL; default INFO)",
    )
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def serve(args: argparse.Namespace) -> None:
    # Imported here so `--help` and argument errors answer without loading grpc and aiohttp.
    import grpc
    from aiohttp import web

    from gateway.admin.client import ChannelAdminClient
    from gateway.app import create_app
    from gateway.client import ChannelClient
    from gateway.http_server import GatewayRunner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("received %s again; exiting without waiting", sig.name)
            for s in _SIGNALS:
                loop.remove_signal_handler(s)
                signal.signal(s, signal.SIG_DFL)
            return
        log.info("received %s; shutting down", sig.name)
        stop.set()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)

    metadata = (("authorization", f"Bearer {args.api_key}"),) if args.api_key else ()
    channel = grpc.aio.insecure_channel(args.grpc_target)
    try:
        app = create_app(
            ChannelClient(channel, metadata=metadata),
            admin=ChannelAdminClient(channel, metadata=metadata),
            api_key=args.api_key,
            max_body_bytes=args.max_body_bytes,
            response_media_type=args.response_content_type,
        )
        runner = GatewayRunner(app, shutdown_timeout=_SHUTDOWN_GRACE_S, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, args.host, args.port)
            await site.start()
            log.info("listening on http://%s:%d, forwarding to gRPC %s", args.host, args.port, args.grpc_target)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await channel.close()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    env = os.environ
    parser = build_parser(env)
    args = parser.parse_args(argv)
    if not args.grpc_target:
        parser.error("--grpc-target (or OJS_GRPC_TARGET) is required")
    if args.log_level not in _LOG_LEVELS:
        parser.error(f"log level must be one of {', '.join(_LOG_LEVELS)}, got {args.log_level!r}")
    if args.api_key is None and not _is_loopback(args.host) and not args.allow_insecure_no_auth:
        parser.error(
            f"--host {args.host} is reachable from other machines but no API key is set; "
            "set --api-key/OJS_API_KEY, or --allow-insecure-no-auth to serve without authentication"
        )
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
