"""POST /ojs/v1/workers/ack/batch over the running application's gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support import new_queue

MEDIA_TYPE = "application/openjobspec+json"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Content-Type": MEDIA_TYPE}) as opened:
        yield opened


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else None
    async with session.post(url, data=data, json=None if data is not None else body) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_batch_ack_settles_each_ack_and_refuses_bad_ones_alone(ojs_http: Any, session: Any) -> None:
    base = str(ojs_http.base_url)
    queue = new_queue("hab")
    jobs = [{"type": "http.batch", "args": [i], "options": {"queue": queue}} for i in range(3)]
    status, _ = await post(session, f"{base}/ojs/v1/jobs/batch", {"jobs": jobs})
    assert status == 201
    status, fetched = await post(
        session, f"{base}/ojs/v1/workers/fetch", {"queues": [queue], "count": 3, "worker_id": "w"}
    )
    assert status == 200 and len(fetched["jobs"]) == 3
    first, second, third = fetched["jobs"]
    # Exact numbers survive: a result with an integer beyond 64 bits.
    body = (
        b'{"worker_id":"w","acks":['
        b'{"job_id":"%s","lease_token":%d,"result":{"big":123456789012345678901234567890}},'
        b'{"job_id":"%s","lease_token":%d},'
        b'{"job_id":"%s","lease_token":%d}]}'
        % (
            first["id"].encode(), first["lease_token"],
            second["id"].encode(), second["lease_token"] + 1,
            third["id"].encode(), third["lease_token"],
        )
    )  # fmt: skip
    status, reply = await post(session, f"{base}/ojs/v1/workers/ack/batch", body)
    assert status == 200, reply
    assert reply["acknowledged"] == 2
    assert [r["job_id"] for r in reply["results"]] == [first["id"], second["id"], third["id"]]
    assert [r["acknowledged"] for r in reply["results"]] == [True, False, True]
    assert reply["results"][0]["state"] == "completed"
    assert reply["results"][1]["error"]["code"] == "conflict"
    async with session.get(f"{base}/ojs/v1/jobs/{first['id']}") as resp:
        raw = await resp.read()
    assert b"123456789012345678901234567890" in raw


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"worker_id": "w"}, "acks"),
        ({"worker_id": "w", "acks": []}, "acks"),
        ({"worker_id": "w", "acks": ["x"]}, "acks[0]"),
        ({"worker_id": "w", "acks": [{"job_id": 5}]}, "acks[0].job_id"),
        ({"worker_id": "w", "acks": [{"job_id": "a", "lease_token": "t"}]}, "acks[0].lease_token"),
    ],
)
async def test_malformed_batch_acks_get_the_error_envelope(ojs_http: Any, session: Any, body: Any, field: str) -> None:
    status, reply = await post(session, f"{ojs_http.base_url}/ojs/v1/workers/ack/batch", body)
    assert status == 400
    assert reply["error"]["code"] == "invalid_request"
    assert reply["error"]["details"]["field"] == field
