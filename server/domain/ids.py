"""Job identifiers: lowercase UUIDv7 (RFC 9562), time-ordered and coordination-free.

The random bits come from a per-process generator seeded once from `os.urandom`, not from a system call per id.
A forked child reseeds it (and gets a fresh lock), so parent and child never share a random stream. The generator
is not a CSPRNG: ids are unique and unguessable by chance, but an observer of many ids could predict later ones, so
an id must never serve as a secret (the API key guards access).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

UUIDV7_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

_MS_MASK = (1 << 48) - 1
_RAND_B_BITS = 62
# Set bits of the version (7) and variant (0b10) fields.
_VERSION_AND_VARIANT = 0x7 << 76 | 0b10 << 62

_lock = threading.Lock()
_random = random.Random(os.urandom(32))
_last_ms = 0
_counter = 0


def _reseed_after_fork() -> None:
    """In a forked child: a fresh random stream, and a lock no thread of the parent can be holding."""
    global _lock, _random
    _lock = threading.Lock()
    _random = random.Random(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)


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
            # A random start below 0x200 leaves room for thousands of ids in the same millisecond.
            _counter = _random.getrandbits(9)
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
        rand_b = _random.getrandbits(_RAND_B_BITS)
    value = (ms & _MS_MASK) << 80 | counter << 64 | rand_b | _VERSION_AND_VARIANT
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def is_uuid7(text: str) -> bool:
    return UUIDV7_PATTERN.match(text) is not None
