"""Scalar renderings of the binding: timestamps, durations, Value/Struct numbers."""

from __future__ import annotations

import orjson
import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from gateway.convert.common import json_object, loads_exact, value_to_py
from gateway.errors import ApiError
from ojs_json.scalars import iso_duration, timestamp


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (1_770_892_200, 123_456_789, "2026-02-12T10:30:00.123Z"),
        (0, 0, "1970-01-01T00:00:00Z"),
        (4_102_444_799, 999_999_999, "2099-12-31T23:59:59.999Z"),
        (-62_135_596_800, 0, "0001-01-01T00:00:00Z"),
    ],
)
def test_timestamp(seconds: int, nanos: int, expected: str) -> None:
    assert timestamp(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)) == expected


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (1, 0, "PT1S"),
        (0, 500_000_000, "PT0.5S"),
        (300, 0, "PT5M"),
        (3600, 0, "PT1H"),
        (5400, 0, "PT1H30M"),
        (90, 250_000_000, "PT1M30.25S"),
        (0, 0, "PT0S"),
        (10, 500_000_000, "PT10.5S"),
        (-2, 0, "-PT2S"),
    ],
)
def test_iso_duration(seconds: int, nanos: int, expected: str) -> None:
    assert iso_duration(duration_pb2.Duration(seconds=seconds, nanos=nanos)) == expected


def test_value_numbers() -> None:
    values = struct_pb2.ListValue()
    values.extend([42, 2.5, 1e20, -0.0, float(2**53)])
    assert [value_to_py(v) for v in values.values] == [42, 2.5, 1e20, 0, 2**53]


def test_loads_exact_keeps_number_text() -> None:
    text = b'{"a":[1.50,1e400,123456789012345678901234567890,-0]}'
    assert orjson.dumps(loads_exact(text)) == text


@pytest.mark.parametrize("body", [b"[1e400]", b'{"a": NaN}'])
def test_json_object_rejects_non_objects_and_constants(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        json_object(body)
    assert info.value.code == "invalid_payload"


def test_json_object_accepts_numbers_beyond_double_range() -> None:
    assert "result" in json_object(b'{"result": 1e400}')
