"""Time as integer epoch milliseconds, converted to RFC 3339 only at the edges."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Protocol

_UTC = dt.UTC
# RFC 3339 date-time; the zone is mandatory (OJS rejects zone-less timestamps).
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Clock(Protocol):
    """Where the services read the time: the wall clock, or a clock a test moves by hand."""

    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return now_ms()


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to, so tests step through time instead of sleeping."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = now_ms() if start_ms is None else start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move forward `ms` milliseconds; returns the new time."""
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        self._now += ms
        return self._now


def format_rfc3339_ms(epoch_ms: int) -> str:
    """`2026-02-12T10:30:00.123Z`."""
    seconds, millis = divmod(epoch_ms, 1000)
    stamp = dt.datetime.fromtimestamp(seconds, _UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def parse_rfc3339_ms(text: str) -> int | None:
    """Epoch ms of an RFC 3339 timestamp with a zone, or None if it is not one."""
    match = _RFC3339.match(text)
    if match is None:
        return None
    frac = match.group(7) or ""
    normalized = text[: match.start(7)] if frac else text[: match.start(8)]
    zone = match.group(8)
    normalized += "+00:00" if zone in ("Z", "z") else zone
    try:
        parsed = dt.datetime.fromisoformat(normalized.replace("t", "T"))
    except ValueError:
        return None
    micros = int((frac[1:] + "000000")[:6]) if frac else 0
    return int(parsed.timestamp()) * 1000 + micros // 1000
