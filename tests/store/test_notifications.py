"""Job notifications: subscribed only while someone watches, and waking the watches of the published queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from server.store.keys import KeySchema
from server.store.notifications import JobNotifier


@pytest.fixture
def keys() -> KeySchema:
    return KeySchema(f"n{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def notifier(store_redis: Redis, keys: KeySchema) -> AsyncIterator[JobNotifier]:
    started = JobNotifier(store_redis, keys, idle_s=0.2)
    started.start()
    try:
        yield started
    finally:
        await started.stop()


async def subscribers(redis: Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_nothing_is_subscribed_while_nobody_watches(
    notifier: JobNotifier, store_redis: Redis, keys: KeySchema
) -> None:
    await asyncio.sleep(0.1)
    assert not notifier.listening
    assert await subscribers(store_redis, keys.notify_channel) == 0


async def test_a_watch_subscribes_and_is_woken_by_its_queue_only(
    notifier: JobNotifier, store_redis: Redis, keys: KeySchema
) -> None:
    with notifier.watch(["a"]) as watch_a, notifier.watch(["b"]) as watch_b:
        # Subscribing wakes every watch once (what was published before is unknown): take that wake-up.
        assert await watch_a.wait(5) and await watch_b.wait(5)

        async def subscribed() -> bool:
            return await subscribers(store_redis, keys.notify_channel) == 1

        await eventually(subscribed)
        await store_redis.publish(keys.notify_channel, keys.available("a"))
        assert await watch_a.wait(5)
        assert not await watch_b.wait(0.2)


async def test_the_subscription_ends_after_the_last_watch_and_comes_back_with_the_next(
    notifier: JobNotifier, store_redis: Redis, keys: KeySchema
) -> None:
    with notifier.watch(["a"]) as watch:
        assert await watch.wait(5)

    async def unsubscribed() -> bool:
        return not notifier.listening and await subscribers(store_redis, keys.notify_channel) == 0

    await eventually(unsubscribed)
    with notifier.watch(["a"]) as watch:
        assert await watch.wait(5)
        await store_redis.publish(keys.notify_channel, keys.available("a"))
        assert await watch.wait(5)


async def test_own_messages_are_skipped_and_other_processes_messages_wake(store_redis: Redis, keys: KeySchema) -> None:
    notifier = JobNotifier(store_redis, keys, origin="me", idle_s=0.2)
    notifier.start()
    try:
        with notifier.watch(["a"]) as watch:
            assert await watch.wait(5)

            async def subscribed() -> bool:
                return await subscribers(store_redis, keys.notify_channel) == 1

            await eventually(subscribed)
            available = keys.available("a").encode()
            # This process woke its waiters itself (wake_local) when it sent what published this.
            await store_redis.publish(keys.notify_channel, available + b"\0me")
            assert not await watch.wait(0.2)
            await store_redis.publish(keys.notify_channel, available + b"\0someone-else")
            assert await watch.wait(5)
            await store_redis.publish(keys.notify_channel, available)
            assert await watch.wait(5)
    finally:
        await notifier.stop()


async def test_wake_local_wakes_the_watches_of_its_queue_only(notifier: JobNotifier) -> None:
    with notifier.watch(["a"]) as watch_a, notifier.watch(["b", "c"]) as watch_bc:
        assert await watch_a.wait(5) and await watch_bc.wait(5)
        notifier.wake_local("c")
        assert await watch_bc.wait(1)
        assert not await watch_a.wait(0.1)
