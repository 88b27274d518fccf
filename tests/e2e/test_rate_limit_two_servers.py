"""A queue's rate limit holds across server processes: two servers fetching at once share one budget."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from .processes import Launcher

RATE = 50
WINDOW_S = 4.95  # just short of 5 s, so the sixth one-second budget has not opened yet
QUEUE = "rate-two"


async def fetch_loop(session: aiohttp.ClientSession, base_url: str, deadline: float) -> int:
    fetched = 0
    while time.monotonic() < deadline:
        async with session.post(
            f"{base_url}/ojs/v1/workers/fetch", json={"queues": [QUEUE], "count": 10, "worker_id": base_url}
        ) as response:
            assert response.status == 200
            fetched += len((await response.json(content_type=None))["jobs"])
    return fetched


@pytest.mark.slow
async def test_rate_limit_holds_with_two_servers_fetching(launch: Launcher, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "OJS_KEY_PREFIX": f"rate{time.time_ns()}"}
    servers = [launch(**env) for _ in range(2)]
    for server in servers:
        server.wait_ready(check_grpc=False)
    urls = [f"http://127.0.0.1:{server.http_port}" for server in servers]
    async with aiohttp.ClientSession() as session:
        jobs = [
            {"type": "rate.job", "args": [i], "options": {"queue": QUEUE, "rate_limit": {"max_per_second": RATE}}}
            for i in range(1000)
        ]
        async with session.post(f"{urls[0]}/ojs/v1/jobs/batch", json={"jobs": jobs}) as response:
            assert response.status == 201, await response.text()
        deadline = time.monotonic() + WINDOW_S
        # Two loops per server, four concurrent fetchers in all.
        counts = await asyncio.gather(*(fetch_loop(session, url, deadline) for url in urls * 2))
    total = sum(counts)
    expected = RATE * 5
    assert abs(total - expected) <= expected * 0.10, f"{total} jobs started in 5 s at {RATE}/s ({counts})"
    assert all(count > 0 for count in counts[:2]), f"each server delivered some jobs: {counts}"
    for server in servers:
        assert server.terminate() == 0, server.output
