"""What the process runs on: the protobuf backend it insists on and the asyncio event loop it picks."""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
from collections.abc import Callable

from server.config import Settings

log = logging.getLogger(__name__)

__all__ = ["RuntimeSetupError", "check_protobuf_backend", "event_loop_factory", "protobuf_backend"]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class RuntimeSetupError(RuntimeError):
    """The Python environment cannot run the server as configured."""


def protobuf_backend() -> str:
    """The protobuf runtime in use: "upb" (the C extension), "python" or "cpp"."""
    from google.protobuf.internal import api_implementation

    backend: str = api_implementation.Type()
    return backend


def check_protobuf_backend(settings: Settings, backend: str | None = None) -> None:
    """Refuse a protobuf runtime other than upb (10-100x slower) unless OJS_ALLOW_SLOW_PROTOBUF is set."""
    backend = protobuf_backend() if backend is None else backend
    if backend == "upb":
        return
    problem = (
        f"the protobuf runtime is the {backend!r} backend, not 'upb', and converts messages 10-100x slower; "
        "install a protobuf wheel built with upb for this platform and leave PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION "
        "unset"
    )
    if not settings.allow_slow_protobuf:
        raise RuntimeSetupError(f"{problem}, or set OJS_ALLOW_SLOW_PROTOBUF=1 to run anyway")
    log.warning("%s (starting anyway: OJS_ALLOW_SLOW_PROTOBUF is set)", problem)


def event_loop_factory(choice: str) -> tuple[LoopFactory | None, str]:
    """The loop factory for OJS_EVENT_LOOP (None: asyncio's default) and a description for the start-up log."""
    if choice == "asyncio":
        return None, "asyncio (OJS_EVENT_LOOP=asyncio)"
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        if choice == "uvloop":
            raise RuntimeSetupError(f"OJS_EVENT_LOOP=uvloop but uvloop cannot be imported: {exc}") from exc
        return None, "asyncio (uvloop is not installed)"
    factory: LoopFactory = uvloop.new_event_loop
    try:
        version = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return factory, f"uvloop {version} (OJS_EVENT_LOOP={choice})"
