"""The script pipe: concurrent script calls in one write, replies to the right callers, and its failure modes."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.store.script_pipe import PipedScript, ScriptPipe

ECHO = "return {ARGV[1], KEYS[1]}"
FAIL_ON_BAD = "if ARGV[1] == 'bad' then return redis.error_reply('refused: ' .. ARGV[1]) end return ARGV[1]"


def sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


@pytest.fixture
async def client(store_redis_url: str) -> AsyncIterator[Redis]:
    # Named, so this test's connections can be told from the other tests' on the shared server.
    redis = Redis.from_url(store_redis_url, client_name=f"pipe-test-{uuid.uuid4().hex[:8]}")
    try:
        yield redis
    finally:
        await redis.aclose()


def count_writes(monkeypatch: pytest.MonkeyPatch, pipe: ScriptPipe) -> list[int]:
    """The number of calls each write carried."""
    writes: list[int] = []
    original = pipe._flush

    def flush(link: Any) -> None:
        writes.append(len(link.outgoing))
        original(link)

    monkeypatch.setattr(pipe, "_flush", flush)
    return writes


async def test_concurrent_calls_share_one_write_and_get_their_own_replies(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = ScriptPipe(client)
    await pipe.evalsha(sha(ECHO), ECHO, ["k"], ["warm"])  # connects, and caches the script
    writes = count_writes(monkeypatch, pipe)
    replies = await asyncio.gather(*(pipe.evalsha(sha(ECHO), ECHO, [f"key{i}"], [i]) for i in range(200)))
    assert replies == [[str(i).encode(), f"key{i}".encode()] for i in range(200)]
    assert writes == [200]


async def test_an_uncached_script_is_sent_as_eval(client: Redis) -> None:
    pipe = ScriptPipe(client)
    source = f"return 'fresh {id(pipe)}'"
    await client.script_flush()
    assert await pipe.evalsha(sha(source), source, [], []) == f"fresh {id(pipe)}".encode()
    # EVAL cached it: the next call is an EVALSHA that finds it.
    assert await client.script_exists(sha(source)) == [True]
    assert await pipe.evalsha(sha(source), source, [], []) == f"fresh {id(pipe)}".encode()


async def test_an_error_reply_fails_only_its_own_call(client: Redis) -> None:
    pipe = ScriptPipe(client)
    calls = [pipe.evalsha(sha(FAIL_ON_BAD), FAIL_ON_BAD, [], [arg]) for arg in ("a", "bad", "c")]
    first, failed, last = await asyncio.gather(*calls, return_exceptions=True)
    assert first == b"a" and last == b"c"
    assert isinstance(failed, ResponseError) and "refused: bad" in str(failed)


async def test_a_lost_connection_is_noticed_and_the_next_call_reconnects(client: Redis) -> None:
    pipe = ScriptPipe(client)
    assert await pipe.evalsha(sha(ECHO), ECHO, ["k"], ["1"]) == [b"1", b"k"]
    # The pipe's connection is the one whose last command was a script call (the pool's run CLIENT).
    killed = 0
    for entry in await client.client_list():
        if entry.get("name") == client.connection_pool.connection_kwargs["client_name"] and entry.get("cmd") in (
            "evalsha",
            "eval",
        ):
            killed += await client.client_kill_filter(_id=entry["id"])
    assert killed == 1
    for _ in range(100):
        if pipe._link is None or pipe._link.closed:
            break
        await asyncio.sleep(0.01)
    assert pipe._link is not None and pipe._link.closed
    assert await pipe.evalsha(sha(ECHO), ECHO, ["k"], ["2"]) == [b"2", b"k"]


async def test_a_call_without_reply_in_the_socket_timeout_fails_and_the_pipe_recovers(store_redis_url: str) -> None:
    client = Redis.from_url(store_redis_url, socket_timeout=0.1)
    try:
        pipe = ScriptPipe(client)
        slow = "local t = redis.call('TIME') local stop = t[1] * 1000000 + t[2] + 300000 " + (
            "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= stop return 1"
        )
        with pytest.raises(RedisTimeoutError):
            await pipe.evalsha(sha(slow), slow, [], [])
        # Redis is busy with the slow script for a while yet; the pipe serves again once it is done.
        reply: Any = None
        for _ in range(50):
            try:
                reply = await pipe.evalsha(sha(ECHO), ECHO, ["k"], ["after"])
                break
            except (RedisTimeoutError, RedisConnectionError):
                await asyncio.sleep(0.1)
        assert reply == [b"after", b"k"]
    finally:
        await client.aclose()


async def test_a_script_runs_as_a_function_where_the_server_has_them(client: Redis, store_redis_url: str) -> None:
    pipe = ScriptPipe(client)
    # A function name no server has yet: the first call finds it missing, loads its library and calls it again.
    function = f"pipe_test_{uuid.uuid4().hex}"
    library = (
        f"#!lua name={function}\n"
        f"redis.register_function('{function}', function(keys, args) return {{args[1], keys[1]}} end)"
    )
    script = PipedScript(sha(ECHO), ECHO, function, library)
    replies = await asyncio.gather(*(pipe.script(script, [f"key{i}"], [i]) for i in range(3)))
    assert replies == [[str(i).encode(), f"key{i}".encode()] for i in range(3)]
    # Redis 7 ran it as a function (its library is loaded now); 6.2 has none, and ran the same script by EVALSHA.
    if int((await client.info("server"))["redis_version"].split(".")[0]) >= 7:
        assert await client.function_list(library=function) != []
        await client.function_delete(function)
    else:
        assert await client.script_exists(sha(ECHO)) == [True]


async def test_the_reply_of_a_cancelled_call_goes_to_its_abandoned_handler(client: Redis) -> None:
    pipe = ScriptPipe(client)
    await pipe.evalsha(sha(ECHO), ECHO, ["k"], ["warm"])
    handed: list[Any] = []
    got = asyncio.get_running_loop().create_future()

    def abandoned(reply: Any) -> None:
        handed.append(reply)
        got.set_result(None)

    # Cancelled before the reply comes: the reader hands it over when it arrives.
    call = asyncio.ensure_future(pipe.evalsha(sha(ECHO), ECHO, ["k"], ["gone"], abandoned=abandoned))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(got, 5)
    assert handed == [[b"gone", b"k"]]
    # A call that completes normally does not involve the handler.
    assert await pipe.evalsha(sha(ECHO), ECHO, ["k"], ["kept"], abandoned=abandoned) == [b"kept", b"k"]
    assert handed == [[b"gone", b"k"]]


async def test_a_reply_that_came_before_the_cancellation_goes_to_the_abandoned_handler(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = ScriptPipe(client)
    await pipe.evalsha(sha(ECHO), ECHO, ["k"], ["warm"])
    handed: list[Any] = []
    call = asyncio.ensure_future(pipe.evalsha(sha(ECHO), ECHO, ["k"], ["late"], abandoned=handed.append))
    original = pipe._deliver

    def deliver_then_cancel(link: Any, reply: Any) -> None:
        # The reply is set on the call's future; its task is cancelled before it resumes to take it.
        original(link, reply)
        call.cancel()

    monkeypatch.setattr(pipe, "_deliver", deliver_then_cancel)
    with pytest.raises(asyncio.CancelledError):
        await call
    assert handed == [[b"late", b"k"]]
