"""Each hostile input of the table, sent as is: a clean 4xx envelope or rich INVALID_ARGUMENT, and nothing stored."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from ojs.v1 import job_pb2, service_pb2
from redis.asyncio import Redis

from tests.hostile.cases import GRPC_CASES, HTTP_CASES, RAW_HTTP_CASES, GrpcCase, HttpCase
from tests.hostile.conftest import MEDIA_TYPE, Http, assert_envelope, assert_rich_error, stored_keys

README = Path(__file__).resolve().parents[2] / "README.md"
SERVICE = service_pb2.DESCRIPTOR.services_by_name["OJSService"]


@pytest.mark.parametrize("case", HTTP_CASES, ids=[case.id for case in HTTP_CASES])
async def test_http_case(case: HttpCase, http: Http, redis: Redis) -> None:
    before = await stored_keys(redis)
    status, payload, response = await http.send(case.method, case.path, case.body or None)
    assert response.headers["Content-Type"] == MEDIA_TYPE
    error = assert_envelope(status, payload, expected_status=case.status, code=case.code)
    if case.field is not None:
        assert error["details"]["field"] == case.field, error
    assert await stored_keys(redis) == before, "a refused request stored something"


async def test_http_batch_errors_are_capped_and_counted(http: Http) -> None:
    case = next(case for case in HTTP_CASES if case.id == "batch-300-invalid")
    status, payload, _ = await http.send("POST", case.path, case.body)
    details = assert_envelope(status, payload, expected_status=400, code="invalid_request")["details"]
    assert len(details["errors"]) == 10
    assert details["errors_omitted"] == 290
    assert [entry["index"] for entry in details["errors"]] == list(range(10))
    assert "290 more errors not listed" in payload["error"]["message"]


@pytest.mark.parametrize("name", sorted(RAW_HTTP_CASES))
async def test_http_unparsable_request(name: str, http: Http) -> None:
    status, headers, raw = await http.raw(RAW_HTTP_CASES[name])
    assert headers["content-type"] == MEDIA_TYPE
    assert headers["ojs-version"] == "1.0"
    assert headers["x-request-id"].startswith("req_")
    error = assert_envelope(status, orjson.loads(raw), expected_status=400, code="invalid_request")
    # The reply never echoes what was sent.
    assert "aaaa" not in error["message"]


@pytest.mark.parametrize("case", GRPC_CASES, ids=[case.id for case in GRPC_CASES])
async def test_grpc_case(case: GrpcCase, stub: Any, channel: grpc.aio.Channel, redis: Redis) -> None:
    before = await stored_keys(redis)
    if isinstance(case.request, bytes):
        call = channel.unary_unary(f"/ojs.v1.OJSService/{case.method}")(case.request)
    else:
        call = getattr(stub, case.method)(case.request)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    info = assert_rich_error(caught.value, code=case.code, reason=case.reason)
    if case.field is not None:
        assert orjson.loads(info.metadata["details_json"])["field"] == case.field, info
    assert await stored_keys(redis) == before, "a refused request stored something"


async def test_grpc_batch_errors_fit_trailing_metadata(stub: Any) -> None:
    case = next(case for case in GRPC_CASES if case.id == "batch-300-invalid")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.EnqueueBatch(case.request)
    info = assert_rich_error(caught.value, code=grpc.StatusCode.INVALID_ARGUMENT, reason="invalid_request")
    details = orjson.loads(info.metadata["details_json"])
    assert details["errors_omitted"] == 290
    assert len(details["errors"]) == 10


@pytest.mark.parametrize("method", [method.name for method in SERVICE.methods])
async def test_grpc_garbage_bytes_on_every_method(method: str, channel: grpc.aio.Channel) -> None:
    descriptor = SERVICE.methods_by_name[method]
    path = f"/ojs.v1.OJSService/{method}"
    # A field 1 of wire type 7 (unknown) can never parse.
    garbage = b"\x0f\xff\xff\xff\xff"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if descriptor.server_streaming:
            async for _ in channel.unary_stream(path)(garbage):
                pass
        else:
            await channel.unary_unary(path)(garbage)
    info = assert_rich_error(caught.value, code=grpc.StatusCode.INVALID_ARGUMENT, reason="invalid_payload")
    assert info.metadata["message_type"] == descriptor.input_type.full_name


def test_readme_lists_every_case() -> None:
    """The README's hostile-input table has a row for each case this module sends."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Hostile input") :]
    rows = set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))
    expected = {case.id for case in HTTP_CASES} | set(RAW_HTTP_CASES) | {case.id for case in GRPC_CASES}
    assert expected <= rows, f"missing from README: {sorted(expected - rows)}"


async def test_batch_errors_with_long_messages_still_list_every_shown_entry(http: Http, stub: Any) -> None:
    # Each entry's message quotes its 255-byte type: the list must still fit, clipped, not be dropped.
    jobs = [{"type": "A" * 255, "args": []} for _ in range(300)]
    status, payload = await http.post("/ojs/v1/jobs/batch", {"jobs": jobs})
    details = assert_envelope(status, payload, expected_status=400, code="invalid_request")["details"]
    assert "details_truncated" not in details
    assert len(details["errors"]) == 10 and details["errors_omitted"] == 290
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.EnqueueBatch(job_pb2.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs})))
    info = assert_rich_error(caught.value, code=grpc.StatusCode.INVALID_ARGUMENT, reason="invalid_request")
    assert len(orjson.loads(info.metadata["details_json"])["errors"]) == 10
