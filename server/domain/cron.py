"""Cron schedules (ojs-cron.md §3-5): parsing and the next firing instant.

A schedule is a standard 5-field expression (or an `@daily`-style descriptor)
evaluated in the local wall-clock time of an IANA time zone. Across DST
changes a wall-clock time skipped by spring-forward does not fire, and a time
repeated by fall-back fires once, at its first occurrence.
"""

from __future__ import annotations

import bisect
import calendar
import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.domain.errors import invalid

__all__ = ["CronSchedule", "next_fire_ms", "parse_cron", "validate_timezone"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)

# The longest gap between two firings of a valid schedule is Feb 29 across a
# non-leap century year (2096 -> 2104): 8 years. One more year of slack keeps
# the search bounded without ever missing a real firing.
_SEARCH_YEARS = 9

# Generous for a five-field expression (a full minute list is ~170 characters);
# it keeps pathological input from costing anything.
_MAX_EXPRESSION_LENGTH = 1024
_MAX_ZONE_NAME_LENGTH = 128

_DESCRIPTORS: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES: Mapping[str, int] = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}
_WEEKDAY_NAMES: Mapping[str, int] = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}

# Longest month length over all years, Feb counted as 29 (it occurs in leap years).
_MAX_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_NUMBER = re.compile(r"[0-9]{1,6}")
_STEP = re.compile(r"[0-9]{1,6}")
_OFFSET_LIKE = re.compile(r"[+\-][0-9]|[0-9]:[0-9]")
# Quartz-style L, W, # and ? forms, recognised only to reject them with a clear message.
_EXTENSION = re.compile(r"\?|L|LW|L-[0-9]+|[0-9]+W|(?:[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(?:L|#[0-9]+)", re.IGNORECASE)
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)+")


@dataclasses.dataclass(frozen=True)
class _FieldSpec:
    label: str
    low: int
    high: int
    # Upper end of `*` and of an open `a/n`; differs from `high` only for day
    # of week, where 7 is merely another spelling of Sunday.
    open_high: int
    names: Mapping[str, int] = dataclasses.field(default_factory=dict)


_SECOND = _FieldSpec("second", 0, 59, 59)
_MINUTE = _FieldSpec("minute", 0, 59, 59)
_HOUR = _FieldSpec("hour", 0, 23, 23)
_DAY_OF_MONTH = _FieldSpec("day-of-month", 1, 31, 31)
_MONTH = _FieldSpec("month", 1, 12, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _FieldSpec("day-of-week", 0, 7, 6, _WEEKDAY_NAMES)


@dataclasses.dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression bound to a time zone; build it with `parse_cron`.

    The value tuples are sorted and duplicate-free; day of week uses 0 for
    Sunday (a `7` in the expression is stored as 0). A day-of-month or
    day-of-week field is "restricted" unless it is exactly `*`; when both are
    restricted a day matches if either matches (standard cron semantics).
    """

    expression: str
    timezone: str
    minutes: tuple[int, ...] = dataclasses.field(repr=False)
    hours: tuple[int, ...] = dataclasses.field(repr=False)
    days_of_month: tuple[int, ...] = dataclasses.field(repr=False)
    months: tuple[int, ...] = dataclasses.field(repr=False)
    days_of_week: tuple[int, ...] = dataclasses.field(repr=False)
    day_of_month_restricted: bool = dataclasses.field(repr=False)
    day_of_week_restricted: bool = dataclasses.field(repr=False)
    # Only a 6-field expression names seconds; five fields fire at second 0.
    seconds: tuple[int, ...] = dataclasses.field(default=(0,), repr=False)

    def matches_day(self, day_of_month: int, day_of_week: int) -> bool:
        """Whether a calendar day fires, given its day of month and weekday (0 = Sunday)."""
        dom_ok = day_of_month in self.days_of_month
        dow_ok = day_of_week in self.days_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return dom_ok or dow_ok
        # An unrestricted field holds every value, so this is "the other one matches".
        return dom_ok and dow_ok


def validate_timezone(name: str) -> str:
    """Return `name` if it is an accepted IANA zone name, else raise invalid (field "timezone").

    Fixed offsets ("+05:00", "UTC+5", "Etc/GMT+5") and abbreviations ("EST",
    "CET") are rejected: they do not carry DST rules (ojs-cron.md §5.1).
    """
    if not isinstance(name, str):
        raise invalid("timezone must be a string naming an IANA time zone, e.g. 'America/New_York'", field="timezone")
    _zone(name)
    return name


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Parse a 5-field cron expression, a 6-field one whose first field is the
    second (ojs-cron.md §3.2), or a descriptor; raise invalid on bad input.

    Errors carry `field` "expression" or "timezone". A schedule that can never
    fire (e.g. "0 0 31 2 *") is rejected here so evaluation always terminates.
    """
    if not isinstance(expression, str):
        raise invalid("cron expression must be a string", field="expression")
    validate_timezone(timezone)
    text = expression.strip()
    if not text:
        raise invalid("cron expression is empty", field="expression")
    if len(text) > _MAX_EXPRESSION_LENGTH:
        raise invalid(f"cron expression is longer than {_MAX_EXPRESSION_LENGTH} characters", field="expression")
    if text.startswith("@"):
        text = _expand_descriptor(text)
    fields = text.split()
    if len(fields) not in (5, 6):
        raise invalid(
            f"invalid cron expression {expression!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), or 6 with a leading second, got {len(fields)}",
            field="expression",
        )
    seconds = _parse_field(expression, fields.pop(0), _SECOND) if len(fields) == 6 else (0,)
    minute_text, hour_text, dom_text, month_text, dow_text = fields
    minutes = _parse_field(expression, minute_text, _MINUTE)
    hours = _parse_field(expression, hour_text, _HOUR)
    days_of_month = _parse_field(expression, dom_text, _DAY_OF_MONTH)
    months = _parse_field(expression, month_text, _MONTH)
    days_of_week = tuple(sorted({0 if day == 7 else day for day in _parse_field(expression, dow_text, _DAY_OF_WEEK)}))
    schedule = CronSchedule(
        expression=expression,
        timezone=timezone,
        minutes=minutes,
        hours=hours,
        days_of_month=days_of_month,
        months=months,
        days_of_week=days_of_week,
        day_of_month_restricted=dom_text != "*",
        day_of_week_restricted=dow_text != "*",
        seconds=seconds,
    )
    _require_possible(schedule)
    return schedule


def next_fire_ms(schedule: CronSchedule, after_ms: int) -> int:
    """The first firing instant strictly after `after_ms`, both epoch milliseconds (UTC).

    Candidates are walked in local wall-clock order and mapped to instants
    with fold=0 (the first occurrence of a repeated time); times inside a
    spring-forward gap have no instant and are skipped. That mapping is
    strictly increasing, so the first candidate past `after_ms` is the answer.
    """
    zone = _zone(schedule.timezone)
    try:
        local = (_EPOCH + dt.timedelta(milliseconds=after_ms)).astimezone(zone)
    except OverflowError as exc:
        raise invalid(f"time {after_ms} ms is outside the supported date range", field="after_ms") from exc
    start = local.replace(tzinfo=None, microsecond=0, fold=0)
    last_year = min(start.year + _SEARCH_YEARS, dt.MAXYEAR)
    for wall in _wall_candidates(schedule, start, last_year):
        fire_ms = _instant_ms(wall, zone)
        if fire_ms is not None and fire_ms > after_ms:
            return fire_ms
    raise invalid(
        f"cron expression {schedule.expression!r} has no firing time within {_SEARCH_YEARS} years "
        f"after {start.isoformat()} ({schedule.timezone})",
        field="expression",
    )


# --------------------------------------------------------------------------- parsing


def _expand_descriptor(text: str) -> str:
    key = text.lower()
    if key in _DESCRIPTORS:
        return _DESCRIPTORS[key]
    if key.startswith("@every"):
        message = "'@every' interval schedules are not supported; use a 5-field expression such as '*/5 * * * *'"
    elif key == "@reboot":
        message = "'@reboot' is not supported: a job server has no boot-time schedule"
    else:
        message = f"unknown cron descriptor {text!r}; supported: {', '.join(_DESCRIPTORS)}"
    raise invalid(message, field="expression")


def _parse_field(expression: str, text: str, spec: _FieldSpec) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _field_error(expression, spec, f"empty list element in {text!r}")
        values.update(_parse_item(expression, item, spec))
    return tuple(sorted(values))


def _parse_item(expression: str, item: str, spec: _FieldSpec) -> range:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _STEP.fullmatch(step_text):
            raise _field_error(expression, spec, f"step in {item!r} must be a positive integer")
        step = int(step_text)
        span = spec.open_high - spec.low + 1
        if not 1 <= step <= span:
            raise _field_error(expression, spec, f"step {step} in {item!r} is out of range 1-{span}")
    if base == "*":
        return range(spec.low, spec.open_high + 1, step)
    if "-" in base:
        first_text, _, last_text = base.partition("-")
        first = _parse_value(expression, first_text, spec)
        last = _parse_value(expression, last_text, spec)
        if first > last:
            raise _field_error(expression, spec, f"range {base!r} is reversed (start is after end)")
        return range(first, last + 1, step)
    first = _parse_value(expression, base, spec)
    # `a/n` runs from a to the end of the field, as in Vixie cron.
    last = max(first, spec.open_high) if slash else first
    return range(first, last + 1, step)


def _parse_value(expression: str, text: str, spec: _FieldSpec) -> int:
    if _NUMBER.fullmatch(text):
        value = int(text)
        if not spec.low <= value <= spec.high:
            raise _field_error(expression, spec, f"value {value} is out of range {spec.low}-{spec.high}")
        return value
    named = spec.names.get(text.upper())
    if named is not None:
        return named
    if not text:
        raise _field_error(expression, spec, "a range or step is missing a value")
    if (spec is _DAY_OF_MONTH or spec is _DAY_OF_WEEK) and _EXTENSION.fullmatch(text):
        raise _field_error(expression, spec, f"{text!r}: the 'L', 'W', '#' and '?' extensions are not supported")
    allowed = f"a number {spec.low}-{spec.high}"
    if spec.names:
        allowed += f" or a name ({'/'.join(spec.names)}, any case)"
    raise _field_error(expression, spec, f"{text!r} is not {allowed}")


def _field_error(expression: str, spec: _FieldSpec, detail: str) -> Exception:
    return invalid(f"invalid cron expression {expression!r}: {spec.label} field: {detail}", field="expression")


def _require_possible(schedule: CronSchedule) -> None:
    # Only a day-of-month restriction standing alone can exclude every day:
    # each month contains every weekday, so a weekday restriction always matches.
    if not schedule.day_of_month_restricted or schedule.day_of_week_restricted:
        return
    smallest_day = schedule.days_of_month[0]
    if any(smallest_day <= _MAX_MONTH_DAYS[month - 1] for month in schedule.months):
        return
    days = ",".join(map(str, schedule.days_of_month))
    months = ",".join(map(str, schedule.months))
    raise invalid(
        f"cron expression {schedule.expression!r} can never fire: day-of-month {days} does not occur in month {months}",
        field="expression",
    )


# --------------------------------------------------------------------------- time zones


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> dt.tzinfo:
    if not name:
        raise invalid("timezone is empty; use an IANA time zone name such as 'America/New_York'", field="timezone")
    if _OFFSET_LIKE.search(name):
        raise invalid(
            f"timezone {name!r} is a fixed UTC offset, which has no DST rules; "
            "use an IANA time zone name such as 'America/New_York'",
            field="timezone",
        )
    if name == "UTC":
        # The default zone must work even on a host without a tz database.
        return dt.UTC
    if "/" not in name:
        raise invalid(
            f"timezone {name!r} is an abbreviation or not an IANA zone name; "
            "use 'UTC' or a name such as 'America/New_York'",
            field="timezone",
        )
    # posix/ and right/ are tz-database build trees, not zone names; right/ zones
    # count leap seconds and would shift every firing off the minute.
    if (
        len(name) > _MAX_ZONE_NAME_LENGTH
        or not _ZONE_NAME.fullmatch(name)
        or name.split("/", 1)[0] in ("posix", "right")
    ):
        raise invalid(f"timezone {name!r} is not a valid IANA time zone name", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise invalid(
            f"unknown timezone {name!r}; use an IANA time zone name such as 'America/New_York'", field="timezone"
        ) from exc


# --------------------------------------------------------------------------- evaluation


def _wall_candidates(schedule: CronSchedule, start: dt.datetime, last_year: int) -> Iterator[dt.datetime]:
    """Matching naive wall-clock times at or after `start`, in order, up to the end of `last_year`."""
    months = schedule.months
    hours = schedule.hours
    minutes = schedule.minutes
    seconds = schedule.seconds
    for year in range(start.year, last_year + 1):
        in_start_year = year == start.year
        for month in months[bisect.bisect_left(months, start.month if in_start_year else 1) :]:
            in_start_month = in_start_year and month == start.month
            days_in_month = calendar.monthrange(year, month)[1]
            first_weekday = dt.date(year, month, 1).isoweekday() % 7
            for day in range(start.day if in_start_month else 1, days_in_month + 1):
                if not schedule.matches_day(day, (first_weekday + day - 1) % 7):
                    continue
                on_start_day = in_start_month and day == start.day
                for hour in hours[bisect.bisect_left(hours, start.hour if on_start_day else 0) :]:
                    in_start_hour = on_start_day and hour == start.hour
                    for minute in minutes[bisect.bisect_left(minutes, start.minute if in_start_hour else 0) :]:
                        in_start_minute = in_start_hour and minute == start.minute
                        for second in seconds[bisect.bisect_left(seconds, start.second if in_start_minute else 0) :]:
                            yield dt.datetime(year, month, day, hour, minute, second)


def _instant_ms(wall: dt.datetime, zone: dt.tzinfo) -> int | None:
    """Epoch ms of a wall-clock time's first occurrence, or None if the time does not exist."""
    try:
        utc = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
        round_trip = utc.astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        return None
    # A time inside a spring-forward gap does not survive the round trip.
    if round_trip != wall:
        return None
    return (utc - _EPOCH) // _ONE_MS
