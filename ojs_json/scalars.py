"""Times and durations as OJS JSON writes them."""

from __future__ import annotations

import functools
import time

from google.protobuf import duration_pb2, timestamp_pb2

__all__ = ["duration_ms", "iso_duration", "timestamp"]


def timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 UTC, e.g. 2026-02-12T10:30:00.123Z; whole seconds drop the fraction.

    A time given in whole seconds (`"expires_at": "2099-12-31T23:59:59Z"`) thus
    round-trips exactly as the client wrote it.
    """
    stamp = _second(ts.seconds)
    millis = ts.nanos // 1_000_000
    return f"{stamp}.{millis:03d}Z" if millis else f"{stamp}Z"


@functools.lru_cache(maxsize=1024)
def _second(seconds: int) -> str:
    """The whole-second part; the times of a reply (and of replies close together) mostly share it."""
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def duration_ms(d: duration_pb2.Duration) -> int:
    return d.seconds * 1000 + int(d.nanos / 1_000_000)


def iso_duration(d: duration_pb2.Duration) -> str:
    """ISO 8601 duration in hours/minutes/seconds: PT1S, PT0.5S, PT5M, PT1H30M."""
    total = d.seconds * 1_000_000_000 + d.nanos
    sign = "-" if total < 0 else ""
    seconds, nanos = divmod(abs(total), 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if nanos:
        text += f"{seconds}.{nanos:09d}".rstrip("0") + "S"
    elif seconds or not (hours or minutes):
        text += f"{seconds}S"
    return text
