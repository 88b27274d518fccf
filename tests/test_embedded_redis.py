from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    _is_redis_process,
    find_redis_server,
    redis_server_version,
)

REPO = Path(__file__).resolve().parent.parent


async def _set(url: str, key: str, value: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.set(key, value)
    finally:
        await client.aclose()


async def _get(url: str, key: str) -> bytes | str | None:
    client = Redis.from_url(url)
    try:
        return await client.get(key)
    finally:
        await client.aclose()


def test_find_redis_server_returns_an_executable() -> None:
    path = find_redis_server()
    assert os.path.isfile(path)
    assert os.access(path, os.X_OK)
    assert redis_server_version(path) >= (6, 2, 0)


async def test_data_survives_restart(tmp_path: Path, redis_server_binary: str) -> None:
    data_dir = tmp_path / "data"
    first = EmbeddedRedis(data_dir, binary=redis_server_binary)
    url = await first.start()
    assert url == f"unix://{data_dir / 'redis.sock'}"
    assert first.url == url
    await _set(url, "greeting", "hello")
    await first.stop()
    assert not (data_dir / "redis.sock").exists()
    assert not (data_dir / "redis.pid").exists()

    second = EmbeddedRedis(data_dir, binary=redis_server_binary)
    await second.start()
    try:
        assert await _get(second.url, "greeting") == b"hello"
    finally:
        await second.stop()


async def test_a_hash_with_values_up_to_1kb_stays_a_listpack(tmp_path: Path, redis_server_binary: str) -> None:
    """Job args are often longer than Redis's default 64-byte listpack value limit."""
    server = EmbeddedRedis(tmp_path, binary=redis_server_binary, persistent=False)
    await server.start()
    client = Redis.from_url(server.url)
    try:
        await client.hset("job", mapping={"type": "mail.send", "args": "x" * 1000})
        assert await client.object("encoding", "job") in (b"listpack", b"ziplist")
        await client.hset("job", "result", "y" * 1025)
        assert await client.object("encoding", "job") == b"hashtable"
    finally:
        await client.aclose()
        await server.stop()


async def test_stop_is_idempotent(tmp_path: Path, redis_server_binary: str) -> None:
    server = EmbeddedRedis(tmp_path, binary=redis_server_binary, persistent=False)
    await server.stop()
    await server.start()
    await server.stop()
    await server.stop()
    # The directory is free again.
    await server.start()
    await server.stop()


async def test_not_persistent_writes_no_data(tmp_path: Path, redis_server_binary: str) -> None:
    server = EmbeddedRedis(tmp_path, binary=redis_server_binary, persistent=False)
    await server.start()
    try:
        await _set(server.url, "k", "v")
    finally:
        await server.stop()
    leftovers = set(await asyncio.to_thread(os.listdir, tmp_path)) - {"redis.log", "redis.lock"}
    assert leftovers == set()


async def test_directory_in_use_is_refused(tmp_path: Path, redis_server_binary: str) -> None:
    owner = EmbeddedRedis(tmp_path, binary=redis_server_binary, persistent=False)
    await owner.start()
    try:
        with pytest.raises(EmbeddedRedisError, match="in use"):
            await EmbeddedRedis(tmp_path, binary=redis_server_binary, persistent=False).start()
        # The refused attempt left the running server alone.
        await _set(owner.url, "k", "v")
    finally:
        await owner.stop()


async def test_orphan_of_a_crashed_owner_is_replaced(tmp_path: Path, redis_server_binary: str) -> None:
    data_dir = tmp_path / "data"
    # An owner process that starts Redis, writes a key and dies without stopping it.
    crash = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from redis.asyncio import Redis
        from server.embedded_redis import EmbeddedRedis

        async def main():
            server = EmbeddedRedis(Path({str(data_dir)!r}), binary={redis_server_binary!r})
            client = Redis.from_url(await server.start())
            await client.set("k", "before-crash")
            await client.aclose()
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "gen")])}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", crash, env=env, stdout=subprocess.DEVNULL)
    assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
    orphan_pid = int((data_dir / "redis.pid").read_text())
    assert await _get(f"unix://{data_dir / 'redis.sock'}", "k") == b"before-crash"

    server = EmbeddedRedis(data_dir, binary=redis_server_binary)
    await server.start()
    try:
        assert int((data_dir / "redis.pid").read_text()) != orphan_pid
        assert not _is_redis_process(orphan_pid)
        assert await _get(server.url, "k") == b"before-crash"
    finally:
        await server.stop()


async def test_failed_start_reports_the_log(tmp_path: Path, redis_server_binary: str) -> None:
    # A file where the data directory's AOF should go makes redis-server exit at start-up.
    server = EmbeddedRedis(tmp_path, binary=redis_server_binary)
    if redis_server_version(redis_server_binary) >= (7, 0, 0):
        (tmp_path / "appendonlydir").write_text("not a directory")
    else:
        (tmp_path / "appendonly.aof").write_text("garbage that is not an AOF\n")
    with pytest.raises(EmbeddedRedisError, match="exited with code"):
        await server.start()
    # The lock was released: a correct start in the same directory now works.
    for leftover in ("appendonlydir", "appendonly.aof"):
        (tmp_path / leftover).unlink(missing_ok=True)
    await server.start()
    await server.stop()


def test_long_data_dir_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d" * 40] * 4)
    url = EmbeddedRedis(deep).url
    assert len(url.removeprefix("unix://")) <= 100
    assert EmbeddedRedis(deep).url == url
