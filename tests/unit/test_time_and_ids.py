"""ISO 8601 durations, RFC 3339 timestamps, the clock and UUIDv7 ids."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

import pytest

from server.domain.clock import ManualClock, format_rfc3339_ms, now_ms, parse_rfc3339_ms
from server.domain.durations import format_duration_ms, parse_duration_ms
from server.domain.ids import UUIDV7_PATTERN, is_uuid7, new_uuid7

# The conformance runner's timestamp regex.
RUNNER_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
V7_REGEX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# 2026-02-12T10:30:00Z
BASE_MS = 1_770_892_200_000


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("PT0.5S", 500),
        ("PT1S", 1000),
        ("PT1.5S", 1500),
        ("PT0.001S", 1),
        ("PT5M", 300_000),
        ("PT1.5M", 90_000),
        ("PT1H", 3_600_000),
        ("PT1H30M", 5_400_000),
        ("P1D", 86_400_000),
        ("P1DT2H", 93_600_000),
        ("P1W", 604_800_000),
        ("PT0S", 0),
        ("pt2s", 2000),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "PT-1S", "1S", "P1Y", "P1M", "PTS", "PT1", "abc", "P1.S", "PT1S1M", "+PT1S"]
)
def test_parse_duration_rejects_malformed_text(text: str) -> None:
    assert parse_duration_ms(text) is None


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "PT0S"),
        (1, "PT0.001S"),
        (500, "PT0.5S"),
        (1000, "PT1S"),
        (1500, "PT1.5S"),
        (60_000, "PT1M"),
        (300_000, "PT5M"),
        (3_600_000, "PT1H"),
        (5_400_000, "PT1H30M"),
        (3_661_001, "PT1H1M1.001S"),
    ],
)
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration_ms(ms) == text


@pytest.mark.parametrize("ms", [0, 1, 10, 999, 1000, 1001, 59_999, 60_000, 86_400_000, 90_061_001, 604_800_123])
def test_duration_round_trip(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(ms)) == ms


# --------------------------------------------------------------------------- RFC 3339


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-02-12T10:30:00Z", BASE_MS),
        ("2026-02-12T10:30:00z", BASE_MS),
        ("2026-02-12t10:30:00Z", BASE_MS),
        ("2026-02-12T10:30:00+00:00", BASE_MS),
        ("2026-02-12T12:30:00+02:00", BASE_MS),
        ("2026-02-12T05:00:00-05:30", BASE_MS),
        ("2026-02-12T10:30:00.1Z", BASE_MS + 100),
        ("2026-02-12T10:30:00.123Z", BASE_MS + 123),
        ("2026-02-12T10:30:00.123999Z", BASE_MS + 123),
        ("2026-02-12T10:30:00.123456789Z", BASE_MS + 123),
        ("2026-02-12T12:30:00.250+02:00", BASE_MS + 250),
        ("1970-01-01T00:00:00Z", 0),
        ("2099-12-31T23:59:59Z", 4_102_444_799_000),
    ],
)
def test_parse_rfc3339(text: str, ms: int) -> None:
    assert parse_rfc3339_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-12T10:30:00",
        "2026-02-12T10:30:00.123",
        "2026-02-12 10:30:00Z",
        "2026-02-12",
        "2026-02-12T10:30Z",
        "2026-02-12T10:30:00+0200",
        "2026-02-30T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-02-12T25:00:00Z",
        "not a time",
        "",
        "+PT5S",
    ],
)
def test_parse_rfc3339_rejects_text_without_zone_or_malformed(text: str) -> None:
    assert parse_rfc3339_ms(text) is None


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (BASE_MS, "2026-02-12T10:30:00.000Z"),
        (BASE_MS + 123, "2026-02-12T10:30:00.123Z"),
        (BASE_MS + 7, "2026-02-12T10:30:00.007Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
    ],
)
def test_format_rfc3339(ms: int, text: str) -> None:
    assert format_rfc3339_ms(ms) == text
    assert RUNNER_TIMESTAMP.match(text)


@pytest.mark.parametrize("ms", [0, 1, 999, BASE_MS, BASE_MS + 1, BASE_MS + 999, 4_102_444_799_999])
def test_rfc3339_round_trip(ms: int) -> None:
    assert parse_rfc3339_ms(format_rfc3339_ms(ms)) == ms


def test_now_ms_is_the_wall_clock_in_milliseconds() -> None:
    before = time.time() * 1000
    value = now_ms()
    after = time.time() * 1000
    assert isinstance(value, int)
    assert before - 1 <= value <= after + 1


# --------------------------------------------------------------------------- UUIDv7


def test_new_uuid7_is_a_lowercase_version_7_uuid() -> None:
    value = new_uuid7()
    assert V7_REGEX.match(value)
    assert UUIDV7_PATTERN.match(value)
    assert value == value.lower()
    parsed = uuid.UUID(value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == value


def test_new_uuid7_embeds_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    value = new_uuid7()
    after = time.time_ns() // 1_000_000
    embedded = int(value.replace("-", "")[:12], 16)
    # Generous upper bound: a counter overflow may move the embedded time ahead a little.
    assert before <= embedded <= after + 1000


def test_ten_thousand_ids_are_unique_and_sorted_in_generation_order() -> None:
    ids = [new_uuid7() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(V7_REGEX.match(i) for i in ids)


def test_a_hundred_thousand_ids_are_unique_and_sorted_in_generation_order() -> None:
    # Far more than 4096 per millisecond: the counter overflows into the next millisecond and order still holds.
    ids = [new_uuid7() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(V7_REGEX.match(i) for i in ids[::997])


def test_new_uuid7_makes_no_system_call_per_id(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_urandom(size: int) -> bytes:
        raise AssertionError("os.urandom called while generating an id")

    monkeypatch.setattr(os, "urandom", no_urandom)
    ids = [new_uuid7() for _ in range(1000)]
    assert len(set(ids)) == 1000


def _random_bits(value: str) -> str:
    """rand_b: the 62 random bits after the variant."""
    return f"{int(value.replace('-', ''), 16) & ((1 << 62) - 1):016x}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_random_stream() -> None:
    new_uuid7()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its ids and leave at once, without pytest's teardown
        try:
            with os.fdopen(write_fd, "w") as out:
                out.write("\n".join(new_uuid7() for _ in range(2000)))
        finally:
            os._exit(0)
    os.close(write_fd)
    parent_ids = [new_uuid7() for _ in range(2000)]
    with os.fdopen(read_fd) as incoming:
        child_ids = incoming.read().split("\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child_ids) == 2000
    assert all(V7_REGEX.match(i) for i in child_ids)
    assert child_ids == sorted(child_ids)
    assert not set(child_ids) & set(parent_ids)
    # Reseeded: the child does not replay the parent's random bits.
    assert not {_random_bits(i) for i in child_ids} & {_random_bits(i) for i in parent_ids}


def test_ids_from_several_threads_are_unique() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def work(bucket: list[str]) -> None:
        bucket.extend(new_uuid7() for _ in range(2500))

    threads = [threading.Thread(target=work, args=(bucket,)) for bucket in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for bucket in results for i in bucket]
    assert len(set(everything)) == 10_000
    for bucket in results:
        assert bucket == sorted(bucket)


def test_is_uuid7() -> None:
    assert is_uuid7("019539a4-5b6c-7d8e-9f01-23456789abcd")
    assert is_uuid7(new_uuid7())


@pytest.mark.parametrize(
    "text",
    [
        "3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e",
        "019539A4-5B6C-7D8E-9F01-23456789ABCD",
        "019539a4-5b6c-7d8e-cf01-23456789abcd",
        "019539a45b6c7d8e9f0123456789abcd",
        "not-a-uuid",
        "",
        "019539a4-5b6c-7d8e-9f01-23456789abcd0",
    ],
)
def test_is_uuid7_rejects_other_forms(text: str) -> None:
    assert not is_uuid7(text)


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(1_000)
    assert clock.now_ms() == 1_000
    assert clock.advance(250) == 1_250 and clock.now_ms() == 1_250
    with pytest.raises(ValueError):
        clock.advance(-1)
