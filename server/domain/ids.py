"""Job identifiers: lowercase UUIDv7 (RFC 9562), time-ordered and coordination-free."""

from __future__ import annotations

import os
import re
import threading
import time

UUIDV7_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_uuid7() -> str:
    """A UUIDv7 whose ids from this process sort in creation order.

    Within one millisecond the 12-bit rand_a field is a counter (RFC 9562
    method 1), so ids generated back to back keep their order.
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2)) & 0x1FF
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def is_uuid7(text: str) -> bool:
    return UUIDV7_PATTERN.match(text) is not None
