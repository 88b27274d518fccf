"""Bounds on every value the server stores, so each one can be rendered and acted on.

Times are epoch milliseconds that a protobuf `Timestamp` and an RFC 3339 string
can both show (1970 up to the end of year 9999); durations fit a protobuf
`Duration` and, added to any such time, stay below 2^53 (exact in Lua's
doubles); counts fit the int32 fields of the protobuf binding. Sizes follow
ojs-payload-limits.md.
"""

from __future__ import annotations

from typing import Any

from server.domain.errors import invalid

# 9999-12-31T23:59:59.999Z, the last instant RFC 3339 and google.protobuf.Timestamp can show.
MAX_TIME_MS = 253_402_300_799_999
MIN_TIME_MS = 0
# 100 years: longer than any lease, timeout, delay or retry interval has a use for.
MAX_DURATION_MS = 100 * 366 * 86_400_000
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Queue names, job types, worker ids and other names (ojs-payload-limits.md §4.4-4.5).
MAX_NAME_BYTES = 255
# The serialized `meta` object (ojs-payload-limits.md §4.3).
MAX_META_BYTES = 65_536
# Default largest job (args, meta and unknown envelope fields, as JSON): the 1 MiB every backend must accept.
DEFAULT_MAX_JOB_BYTES = 1_048_576
# Largest OJS_MAX_JOB_BYTES: one such job still fits a fetch reply (FETCH_REPLY_MAX_BYTES) with its other fields.
MAX_JOB_BYTES_LIMIT = 4_000_000
# A fetch reply stays within gRPC's default receive limit (4 MiB), so every client can take what it claimed.
FETCH_REPLY_MAX_BYTES = 4 * 1024 * 1024
# Queues one fetch or job stream may name.
MAX_FETCH_QUEUES = 100
# Tags one job may carry.
MAX_TAGS = 100


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_time_ms(value: int, *, field: str) -> int:
    if not MIN_TIME_MS <= value <= MAX_TIME_MS:
        raise invalid(f"{field} must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z", field=field)
    return value


def check_duration_ms(value: int, *, field: str, minimum: int = 1) -> int:
    if not minimum <= value <= MAX_DURATION_MS:
        raise invalid(f"{field} must be between {minimum} and {MAX_DURATION_MS} milliseconds (100 years)", field=field)
    return value


def check_name_bytes(value: str, *, field: str, maximum: int = MAX_NAME_BYTES) -> str:
    if len(value) > maximum:
        raise invalid(f"{field} must be at most {maximum} bytes", field=field)
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise invalid(f"{field} must be valid Unicode (no lone surrogates)", field=field) from None
    if size > maximum:
        raise invalid(f"{field} must be at most {maximum} bytes", field=field)
    return value
