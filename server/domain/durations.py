"""ISO 8601 durations (`PT1S`, `PT0.5S`, `P1DT2H`) as integer milliseconds."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_DURATION = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_MS = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000}


def parse_duration_ms(text: str) -> int | None:
    """Milliseconds of an ISO 8601 duration, or None if `text` is not one.

    Years and months are rejected: their length depends on the calendar.
    """
    match = _DURATION.match(text.strip().upper()) if text else None
    if match is None or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        return None
    total = Decimal(0)
    try:
        for unit, factor in _UNIT_MS.items():
            part = match.group(unit)
            if part is not None:
                total += Decimal(part) * factor
    except InvalidOperation:
        return None
    return int(total)


def format_duration_ms(ms: int) -> str:
    """Shortest ISO 8601 form: 1000 → PT1S, 500 → PT0.5S, 300000 → PT5M."""
    if ms == 0:
        return "PT0S"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = Decimal(rest) / 1000
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if seconds:
        out += f"{seconds.normalize():f}S"
    return out
