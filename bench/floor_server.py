"""The floor of the stack: a bare aiohttp handler and bare `grpc.aio` methods, with no job server behind them.

`python -m bench.floor_server --http-port P --grpc-port G` serves, until SIGTERM:

- `POST /echo` (aiohttp): parses the JSON body with orjson and renders a small JSON reply, status 201;
- `/bench.Floor/Echo` (grpc.aio unary): answers the request bytes as they came;
- `/bench.Floor/Chat` (grpc.aio bidi stream): answers every message with one message.

gRPC messages are raw bytes (no protobuf parsing): the floor is the framework's own cost. The event loop is
chosen as `ojs-server` chooses it by default (uvloop when installed), so the two are measured alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
from aiohttp import web

SERVICE = "bench.Floor"
ECHO = f"/{SERVICE}/Echo"
CHAT = f"/{SERVICE}/Chat"


def _identity(data: bytes) -> bytes:
    return data


async def _http_echo(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    reply = {"job": {"id": "0190b7c4-0000-7000-8000-000000000000", "state": "available", "echo": body}}
    return web.Response(status=201, body=orjson.dumps(reply), content_type="application/json")


async def _grpc_echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


async def _grpc_chat(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    async for message in requests:
        yield message


async def serve(http_port: int, grpc_port: int) -> None:
    app = web.Application()
    app.router.add_post("/echo", _http_echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", http_port)
    await site.start()
    server = grpc.aio.server()
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(
            _grpc_echo, request_deserializer=_identity, response_serializer=_identity
        ),
        "Chat": grpc.stream_stream_rpc_method_handler(
            _grpc_chat, request_deserializer=_identity, response_serializer=_identity
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1)
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    args = parser.parse_args()
    loop_factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.http_port, args.grpc_port))


if __name__ == "__main__":
    main()
