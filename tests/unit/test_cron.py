"""Cron parsing, next-fire computation and DST behaviour (ojs-cron.md §3-5)."""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import itertools
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from server.domain.cron import CronSchedule, next_fire_ms, parse_cron, validate_timezone
from server.domain.errors import ErrorCode, OJSError

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, milli: int = 0) -> int:
    """Epoch milliseconds of a UTC wall time."""
    instant = dt.datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=UTC)
    return (instant - EPOCH) // dt.timedelta(milliseconds=1)


def local(epoch_ms: int, zone: str) -> dt.datetime:
    return (EPOCH + dt.timedelta(milliseconds=epoch_ms)).astimezone(ZoneInfo(zone))


def fields(schedule: CronSchedule) -> tuple[tuple[int, ...], ...]:
    return (schedule.minutes, schedule.hours, schedule.days_of_month, schedule.months, schedule.days_of_week)


def fires(expression: str, after: int, count: int, timezone: str = "UTC") -> list[int]:
    schedule = parse_cron(expression, timezone)
    out: list[int] = []
    for _ in range(count):
        after = next_fire_ms(schedule, after)
        out.append(after)
    return out


def rejected(expression: Any, timezone: Any = "UTC", field: str = "expression") -> OJSError:
    with pytest.raises(OJSError) as info:
        parse_cron(expression, timezone)
    error = info.value
    assert error.code is ErrorCode.INVALID_REQUEST
    assert error.message.strip()
    assert error.details["field"] == field
    return error


ALL_MINUTES = tuple(range(60))
ALL_HOURS = tuple(range(24))
ALL_DAYS = tuple(range(1, 32))
ALL_MONTHS = tuple(range(1, 13))
ALL_WEEKDAYS = tuple(range(7))


# --------------------------------------------------------------------------- parsing: accepted forms


def test_wildcards_expand_to_every_value() -> None:
    schedule = parse_cron("* * * * *")
    assert fields(schedule) == (ALL_MINUTES, ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)
    assert schedule.expression == "* * * * *"
    assert schedule.timezone == "UTC"
    assert not schedule.day_of_month_restricted
    assert not schedule.day_of_week_restricted


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("5 * * * *", ((5,), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("0,15,30,45 * * * *", ((0, 15, 30, 45), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("1-5 * * * *", ((1, 2, 3, 4, 5), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("*/15 * * * *", ((0, 15, 30, 45), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("10-30/10 * * * *", ((10, 20, 30), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("1-10/4 * * * *", ((1, 5, 9), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("50/3 * * * *", ((50, 53, 56, 59), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("59/60 * * * *", ((59,), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("1,3-4,*/30,3 * * * *", ((0, 1, 3, 4, 30), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("0 */6 * * *", ((0,), (0, 6, 12, 18), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("0 9-17 * * *", ((0,), tuple(range(9, 18)), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("0 0 1,15,31 * *", ((0,), (0,), (1, 15, 31), ALL_MONTHS, ALL_WEEKDAYS)),
        ("0 0 */10 * *", ((0,), (0,), (1, 11, 21, 31), ALL_MONTHS, ALL_WEEKDAYS)),
        ("0 0 1 */3 *", ((0,), (0,), (1,), (1, 4, 7, 10), ALL_WEEKDAYS)),
        ("0 0 1 2/5 *", ((0,), (0,), (1,), (2, 7, 12), ALL_WEEKDAYS)),
        ("0 0 * * 1-5", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (1, 2, 3, 4, 5))),
        ("0 0 * * */2", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 2, 4, 6))),
        ("0 0 * * 1/2", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (1, 3, 5))),
        ("0 0 * * 5-7", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 5, 6))),
        ("0 0 * * 0,7", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (0,))),
        ("59 23 31 12 6", ((59,), (23,), (31,), (12,), (6,))),
        ("  0\t0 \t1  1  *  ", ((0,), (0,), (1,), (1,), ALL_WEEKDAYS)),
    ],
)
def test_accepted_syntax(expression: str, expected: tuple[tuple[int, ...], ...]) -> None:
    schedule = parse_cron(expression)
    assert fields(schedule) == expected
    assert schedule.expression == expression


@pytest.mark.parametrize(
    ("named", "numeric"),
    [
        ("0 0 1 JAN *", "0 0 1 1 *"),
        ("0 0 1 jan-mar *", "0 0 1 1-3 *"),
        ("0 0 1 Jan,Jul,dec *", "0 0 1 1,7,12 *"),
        ("0 0 1 FEB-DEC/2 *", "0 0 1 2-12/2 *"),
        ("0 0 * * MON-FRI", "0 0 * * 1-5"),
        ("0 0 * * mon-fri", "0 0 * * 1-5"),
        ("0 0 * * Sun,sat", "0 0 * * 0,6"),
        ("0 0 * * SUN", "0 0 * * 0"),
        ("0 0 * * tue/2", "0 0 * * 2/2"),
        ("0 0 * * Mon,3-fri", "0 0 * * 1,3-5"),
    ],
)
def test_month_and_weekday_names_are_case_insensitive(named: str, numeric: str) -> None:
    assert fields(parse_cron(named)) == fields(parse_cron(numeric))


def test_seven_and_zero_both_mean_sunday() -> None:
    assert parse_cron("0 0 * * 7").days_of_week == (0,)
    assert fields(parse_cron("0 0 * * 7")) == fields(parse_cron("0 0 * * 0")) == fields(parse_cron("0 0 * * SUN"))
    # 2026-01-04 is a Sunday; 2026-01-01 a Thursday.
    assert fires("0 0 * * 7", ms(2026, 1, 1), 2) == [ms(2026, 1, 4), ms(2026, 1, 11)]


@pytest.mark.parametrize(
    ("descriptor", "equivalent"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_descriptors(descriptor: str, equivalent: str) -> None:
    schedule = parse_cron(descriptor, "Europe/Berlin")
    reference = parse_cron(equivalent, "Europe/Berlin")
    assert schedule.expression == descriptor
    assert schedule.timezone == "Europe/Berlin"
    assert fields(schedule) == fields(reference)
    assert schedule.day_of_month_restricted == reference.day_of_month_restricted
    assert schedule.day_of_week_restricted == reference.day_of_week_restricted
    after = ms(2026, 2, 12, 10, 30)
    assert next_fire_ms(schedule, after) == next_fire_ms(reference, after)


def test_day_fields_are_restricted_unless_exactly_a_star() -> None:
    assert parse_cron("0 0 13 * *").day_of_month_restricted
    assert not parse_cron("0 0 13 * *").day_of_week_restricted
    assert parse_cron("0 0 * * 5").day_of_week_restricted
    both = parse_cron("0 0 */2 * 1-5")
    assert both.day_of_month_restricted and both.day_of_week_restricted


def test_schedules_compare_by_value() -> None:
    assert parse_cron("*/5 * * * *", "Europe/Berlin") == parse_cron("*/5 * * * *", "Europe/Berlin")
    assert parse_cron("*/5 * * * *") != parse_cron("*/5 * * * *", "Europe/Berlin")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_cron("* * * * *").expression = "0 * * * *"  # type: ignore[misc]


# --------------------------------------------------------------------------- parsing: rejected input


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "not a valid cron",
        "0 0 0 0 0 0 0",
        "60 0 0 * * *",
        "* * * *",
        "*",
        "99 25 32 13 8",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 0 *",
        "* * * 13 *",
        "* * * * 8",
        "5-1 * * * *",
        "* 20-4 * * *",
        "* * * DEC-JAN *",
        "* * * * FRI-MON",
        "*/0 * * * *",
        "1-5/0 * * * *",
        "5/0 * * * *",
        "*/61 * * * *",
        "* */25 * * *",
        "*/ * * * *",
        "*/x * * * *",
        "*/-1 * * * *",
        "1/2/3 * * * *",
        "1- * * * *",
        "-1 * * * *",
        "1-2-3 * * * *",
        ",1 * * * *",
        "1,,2 * * * *",
        "1, * * * *",
        "a * * * *",
        "JAN * * * *",
        "* MON * * *",
        "* * * FOO *",
        "* * * * FUNDAY",
        "* * * * MONDAY",
        "1.5 * * * *",
        "+1 * * * *",
        "\uff11 * * * *",
        "\u0663 * * * *",
        "? * * * *",
        "0 0 L * *",
        "0 0 LW * *",
        "0 0 15W * *",
        "0 0 ? * MON",
        "0 0 * * 5L",
        "0 0 * * FRIL",
        "0 0 * * 5#3",
        "0 0 * * FRI#3",
        "0 0 31 2 *",
        "0 0 30 2 *",
        "0 0 30,31 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 31 FEB *",
        "@every 5m",
        "@every 1h30m",
        "@reboot",
        "@weekdays",
        "@",
        "@daily 0",
        "0 0 * * *" + " 0" * 600,
    ],
)
def test_invalid_expressions_are_rejected(expression: str) -> None:
    rejected(expression)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "empty"),
        ("0 0 0 0 0 0 0", "5 fields"),
        ("60 * * * * *", "second"),
        ("99 25 32 13 8", "out of range"),
        ("5-1 * * * *", "reversed"),
        ("*/0 * * * *", "step"),
        ("0 0 31 2 *", "never"),
        ("0 0 L * *", "not supported"),
        ("0 0 * * 5#3", "not supported"),
        ("@every 5m", "@every"),
        ("@reboot", "@reboot"),
        ("@weekdays", "unknown"),
        ("* * * * FUNDAY", "name"),
    ],
)
def test_rejections_explain_the_problem(expression: str, fragment: str) -> None:
    assert fragment in rejected(expression).message


def test_non_string_expression_is_rejected() -> None:
    rejected(cast(Any, 5))
    rejected(cast(Any, None))


def test_impossible_day_alone_is_rejected_but_possible_combinations_are_not() -> None:
    # A day that occurs in only some of the months is a valid, sparse schedule.
    parse_cron("0 0 31 * *")
    parse_cron("0 0 31 2,3 *")
    parse_cron("0 0 29 2 *")
    parse_cron("0 0 30,31 2,4 *")
    # With a weekday restriction as well, a day matches on either, so Feb 31 is harmless.
    assert fires("0 0 31 2 5", ms(2026, 1, 1), 2) == [ms(2026, 2, 6), ms(2026, 2, 13)]


# --------------------------------------------------------------------------- time zones


@pytest.mark.parametrize(
    "name",
    [
        "UTC",
        "Etc/UTC",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Sydney",
        "Asia/Kolkata",
        "America/Port-au-Prince",
        "America/Argentina/Buenos_Aires",
    ],
)
def test_iana_zone_names_are_accepted(name: str) -> None:
    assert validate_timezone(name) == name
    assert parse_cron("0 9 * * *", name).timezone == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("+05:00", "offset"),
        ("-08:00", "offset"),
        ("05:00", "offset"),
        ("UTC+5", "offset"),
        ("UTC-05:00", "offset"),
        ("GMT+1", "offset"),
        ("Etc/GMT+5", "offset"),
        ("Etc/GMT-14", "offset"),
        ("EST", "abbreviation"),
        ("PST", "abbreviation"),
        ("CST", "abbreviation"),
        ("CET", "abbreviation"),
        ("GMT", "abbreviation"),
        ("EST5EDT", "abbreviation"),
        ("utc", "abbreviation"),
        ("America", "abbreviation"),
        ("Mars/Olympus_Mons", "unknown"),
        ("America/Argentina", "unknown"),
        ("america/new_york", "unknown"),
        ("America/New_York ", "not a valid"),
        (" America/New_York", "not a valid"),
        ("America//New_York", "not a valid"),
        ("America/New_York/", "not a valid"),
        ("../zoneinfo/UTC", "not a valid"),
        ("/usr/share/zoneinfo/UTC", "not a valid"),
        ("posix/America/New_York", "not a valid"),
        ("right/UTC", "not a valid"),
        ("Europe/" + "X" * 200, "not a valid"),
    ],
)
def test_offsets_abbreviations_and_unknown_zones_are_rejected(name: str, fragment: str) -> None:
    error = rejected("0 9 * * *", name, field="timezone")
    assert fragment in error.message
    with pytest.raises(OJSError) as info:
        validate_timezone(name)
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert info.value.details["field"] == "timezone"


def test_non_string_timezone_is_rejected() -> None:
    rejected("* * * * *", cast(Any, None), field="timezone")
    with pytest.raises(OJSError):
        validate_timezone(cast(Any, 5))


# --------------------------------------------------------------------------- next fire, UTC


def test_every_minute_is_strictly_after_and_whole_minutes() -> None:
    schedule = parse_cron("* * * * *")
    base = ms(2026, 1, 1, 12, 0)
    # Exactly on a firing time: the next one, never the same instant.
    assert next_fire_ms(schedule, base) == base + MINUTE_MS
    assert next_fire_ms(schedule, base - 1) == base
    assert next_fire_ms(schedule, base + 1) == base + MINUTE_MS
    assert next_fire_ms(schedule, base + 30_000) == base + MINUTE_MS
    assert next_fire_ms(schedule, base + 59_999) == base + MINUTE_MS
    assert next_fire_ms(schedule, ms(2026, 12, 31, 23, 59)) == ms(2027, 1, 1)


def test_every_fifteen_minutes() -> None:
    assert next_fire_ms(parse_cron("*/15 * * * *"), ms(2026, 2, 12, 10, 7, 30)) == ms(2026, 2, 12, 10, 15)
    assert next_fire_ms(parse_cron("*/15 * * * *"), ms(2026, 2, 12, 10, 45)) == ms(2026, 2, 12, 11, 0)
    assert fires("*/15 * * * *", ms(2026, 2, 28, 23, 40), 3) == [
        ms(2026, 2, 28, 23, 45),
        ms(2026, 3, 1, 0, 0),
        ms(2026, 3, 1, 0, 15),
    ]


def test_weekdays_at_nine_skip_the_weekend() -> None:
    # 2026-01-02 is a Friday.
    assert fires("0 9 * * 1-5", ms(2026, 1, 2, 9, 0), 3) == [ms(2026, 1, 5, 9), ms(2026, 1, 6, 9), ms(2026, 1, 7, 9)]
    assert next_fire_ms(parse_cron("0 9 * * 1-5"), ms(2026, 1, 2, 8, 59, 59, 999)) == ms(2026, 1, 2, 9)
    assert next_fire_ms(parse_cron("0 9 * * MON-FRI"), ms(2026, 1, 3, 12)) == ms(2026, 1, 5, 9)


def test_monthly_on_the_first() -> None:
    assert fires("0 0 1 * *", ms(2026, 1, 15), 3) == [ms(2026, 2, 1), ms(2026, 3, 1), ms(2026, 4, 1)]
    assert next_fire_ms(parse_cron("0 0 1 * *"), ms(2026, 12, 31, 23, 59, 59)) == ms(2027, 1, 1)
    assert next_fire_ms(parse_cron("@monthly"), ms(2026, 3, 1)) == ms(2026, 4, 1)


def test_sparse_days_skip_short_months() -> None:
    assert fires("0 0 31 * *", ms(2026, 1, 31), 3) == [ms(2026, 3, 31), ms(2026, 5, 31), ms(2026, 7, 31)]
    assert next_fire_ms(parse_cron("0 12 30 * *"), ms(2026, 1, 30, 12)) == ms(2026, 3, 30, 12)


def test_leap_day_waits_for_the_next_leap_year() -> None:
    schedule = parse_cron("0 0 29 2 *")
    assert next_fire_ms(schedule, ms(2026, 1, 1)) == ms(2028, 2, 29)
    assert next_fire_ms(schedule, ms(2028, 2, 29)) == ms(2032, 2, 29)
    # 2100 is not a leap year: the longest possible gap, 8 years.
    assert next_fire_ms(schedule, ms(2096, 3, 1)) == ms(2104, 2, 29)


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    # 2026-01-01 is a Thursday: Fridays are 2, 9, 16, ... and the 13th is a Tuesday.
    assert fires("0 0 13 * 5", ms(2026, 1, 1), 5) == [
        ms(2026, 1, 2),
        ms(2026, 1, 9),
        ms(2026, 1, 13),
        ms(2026, 1, 16),
        ms(2026, 1, 23),
    ]
    # Feb 13 2026 is both a Friday and the 13th: it fires once.
    assert fires("0 0 13 * 5", ms(2026, 2, 7), 2) == [ms(2026, 2, 13), ms(2026, 2, 20)]


def test_single_day_restriction_applies_alone() -> None:
    assert fires("0 0 13 * *", ms(2026, 1, 1), 2) == [ms(2026, 1, 13), ms(2026, 2, 13)]
    assert fires("0 0 * * 5", ms(2026, 1, 1), 2) == [ms(2026, 1, 2), ms(2026, 1, 9)]


def test_yearly_and_times_before_the_epoch() -> None:
    assert next_fire_ms(parse_cron("@yearly"), ms(1969, 6, 1)) == 0
    assert next_fire_ms(parse_cron("@yearly"), -1) == 0
    assert next_fire_ms(parse_cron("@yearly"), 0) == ms(1971, 1, 1)
    assert next_fire_ms(parse_cron("59 23 31 12 *"), ms(2026, 1, 1)) == ms(2026, 12, 31, 23, 59)


def test_hour_and_minute_lists() -> None:
    assert fires("15,45 8-9 * * *", ms(2026, 5, 1, 8, 15), 4) == [
        ms(2026, 5, 1, 8, 45),
        ms(2026, 5, 1, 9, 15),
        ms(2026, 5, 1, 9, 45),
        ms(2026, 5, 2, 8, 15),
    ]


def test_search_is_bounded_even_for_a_schedule_that_cannot_fire() -> None:
    # Built around parse_cron, which would reject it: the search must still end.
    never = dataclasses.replace(parse_cron("0 0 1 2 *"), days_of_month=(31,))
    with pytest.raises(OJSError) as info:
        next_fire_ms(never, ms(2026, 1, 1))
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert info.value.details["field"] == "expression"


def test_end_of_the_calendar_is_an_error_not_a_crash() -> None:
    with pytest.raises(OJSError):
        next_fire_ms(parse_cron("0 0 1 1 *"), ms(9999, 6, 1))
    # 9999-12-31 23:59 in New York is already year 10000 in UTC.
    with pytest.raises(OJSError):
        next_fire_ms(parse_cron("59 23 31 12 *", "America/New_York"), ms(9999, 12, 31))
    with pytest.raises(OJSError):
        next_fire_ms(parse_cron("* * * * *"), 10**20)


# --------------------------------------------------------------------------- DST


def transitions(zone_name: str, year: int) -> list[dt.datetime]:
    """UTC instants (to the hour) at which the zone's offset changes during `year`."""
    zone = ZoneInfo(zone_name)
    instant = dt.datetime(year, 1, 1, tzinfo=UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=UTC)
    offset = instant.astimezone(zone).utcoffset()
    found: list[dt.datetime] = []
    while instant < end:
        instant += dt.timedelta(hours=1)
        current = instant.astimezone(zone).utcoffset()
        if current != offset:
            found.append(instant)
            offset = current
    return found


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        # US: second Sunday of March at 02:00 EST, first Sunday of November at 02:00 EDT.
        ("America/New_York", [dt.datetime(2026, 3, 8, 7, tzinfo=UTC), dt.datetime(2026, 11, 1, 6, tzinfo=UTC)]),
        # EU: last Sundays of March and October at 01:00 UTC.
        ("Europe/Berlin", [dt.datetime(2026, 3, 29, 1, tzinfo=UTC), dt.datetime(2026, 10, 25, 1, tzinfo=UTC)]),
        # Sydney: back on the first Sunday of April, forward on the first Sunday of October (local dates).
        ("Australia/Sydney", [dt.datetime(2026, 4, 4, 16, tzinfo=UTC), dt.datetime(2026, 10, 3, 16, tzinfo=UTC)]),
    ],
)
def test_2026_transition_dates_used_below(zone: str, expected: list[dt.datetime]) -> None:
    assert transitions(zone, 2026) == expected


def test_transition_local_dates_are_sundays() -> None:
    for zone, days in [
        ("America/New_York", [dt.date(2026, 3, 8), dt.date(2026, 11, 1)]),
        ("Europe/Berlin", [dt.date(2026, 3, 29), dt.date(2026, 10, 25)]),
        ("Australia/Sydney", [dt.date(2026, 4, 5), dt.date(2026, 10, 4)]),
    ]:
        found = [instant.astimezone(ZoneInfo(zone)).date() for instant in transitions(zone, 2026)]
        assert found == days
        assert all(day.isoweekday() == 7 for day in days)


# New York, spring forward 2026-03-08: 02:00 EST (07:00 UTC) becomes 03:00 EDT.


def test_new_york_daily_at_a_missing_time_skips_the_spring_forward_day() -> None:
    after = ms(2026, 3, 6, 12)
    assert fires("30 2 * * *", after, 3, "America/New_York") == [
        ms(2026, 3, 7, 7, 30),  # 02:30 EST
        ms(2026, 3, 9, 6, 30),  # 02:30 EDT; none on the 8th
        ms(2026, 3, 10, 6, 30),
    ]


def test_new_york_daily_before_the_gap_is_unaffected() -> None:
    assert fires("30 1 * * *", ms(2026, 3, 7, 12), 2, "America/New_York") == [
        ms(2026, 3, 8, 6, 30),  # 01:30 EST
        ms(2026, 3, 9, 5, 30),  # 01:30 EDT
    ]
    assert fires("0 3 * * *", ms(2026, 3, 7, 12), 2, "America/New_York") == [
        ms(2026, 3, 8, 7, 0),  # 03:00 EDT, the instant the clocks jump
        ms(2026, 3, 9, 7, 0),
    ]


def test_new_york_hourly_has_no_firing_in_the_missing_hour() -> None:
    got = fires("0 * * * *", ms(2026, 3, 8, 4, 30), 5, "America/New_York")
    assert got == [
        ms(2026, 3, 8, 5),  # 00:00 EST
        ms(2026, 3, 8, 6),  # 01:00 EST
        ms(2026, 3, 8, 7),  # 03:00 EDT
        ms(2026, 3, 8, 8),  # 04:00 EDT
        ms(2026, 3, 8, 9),
    ]
    assert [local(t, "America/New_York").hour for t in got] == [0, 1, 3, 4, 5]
    assert {b - a for a, b in itertools.pairwise(got)} == {HOUR_MS}


def test_new_york_half_past_every_hour_across_the_gap() -> None:
    got = fires("30 * * * *", ms(2026, 3, 8, 6), 3, "America/New_York")
    assert got == [ms(2026, 3, 8, 6, 30), ms(2026, 3, 8, 7, 30), ms(2026, 3, 8, 8, 30)]
    assert [local(t, "America/New_York").hour for t in got] == [1, 3, 4]


def test_new_york_after_inside_the_gap_instant() -> None:
    # 06:59:59 UTC is 01:59:59 EST; the next wall minute that exists is 03:00 EDT.
    assert next_fire_ms(parse_cron("* * * * *", "America/New_York"), ms(2026, 3, 8, 6, 59, 59)) == ms(2026, 3, 8, 7)


# New York, fall back 2026-11-01: 02:00 EDT (06:00 UTC) becomes 01:00 EST; 01:xx repeats.


def test_new_york_daily_at_a_repeated_time_fires_once_at_the_first_occurrence() -> None:
    assert fires("30 1 * * *", ms(2026, 10, 30, 12), 3, "America/New_York") == [
        ms(2026, 10, 31, 5, 30),  # 01:30 EDT
        ms(2026, 11, 1, 5, 30),  # 01:30 EDT, first occurrence; not again at 06:30 UTC (01:30 EST)
        ms(2026, 11, 2, 6, 30),  # 01:30 EST
    ]
    # From inside the second 01:xx, the repeated time has already fired.
    schedule = parse_cron("30 1 * * *", "America/New_York")
    assert next_fire_ms(schedule, ms(2026, 11, 1, 6, 10)) == ms(2026, 11, 2, 6, 30)
    assert next_fire_ms(schedule, ms(2026, 11, 1, 5, 29)) == ms(2026, 11, 1, 5, 30)


def test_new_york_half_hourly_fires_once_per_wall_clock_slot_when_clocks_fall_back() -> None:
    got = fires("*/30 * * * *", ms(2026, 11, 1, 4), 6, "America/New_York")
    assert got == [
        ms(2026, 11, 1, 4, 30),  # 00:30 EDT
        ms(2026, 11, 1, 5, 0),  # 01:00 EDT
        ms(2026, 11, 1, 5, 30),  # 01:30 EDT
        ms(2026, 11, 1, 7, 0),  # 02:00 EST; 01:00 and 01:30 EST are not repeated
        ms(2026, 11, 1, 7, 30),
        ms(2026, 11, 1, 8, 0),
    ]
    walls = [local(t, "America/New_York").replace(tzinfo=None) for t in got]
    assert len(set(walls)) == len(walls)
    schedule = parse_cron("*/30 * * * *", "America/New_York")
    assert next_fire_ms(schedule, ms(2026, 11, 1, 6, 10)) == ms(2026, 11, 1, 7)
    assert next_fire_ms(schedule, ms(2026, 11, 1, 5, 59)) == ms(2026, 11, 1, 7)


def test_new_york_hourly_around_fall_back() -> None:
    got = fires("0 * * * *", ms(2026, 11, 1, 3, 30), 4, "America/New_York")
    # 00:00 EDT, 01:00 EDT, then 02:00 EST two hours later (01:00 EST is the repeat).
    assert got == [ms(2026, 11, 1, 4), ms(2026, 11, 1, 5), ms(2026, 11, 1, 7), ms(2026, 11, 1, 8)]


# Berlin, spring forward 2026-03-29: 02:00 CET (01:00 UTC) becomes 03:00 CEST.


def test_berlin_daily_at_a_missing_time_skips_the_spring_forward_day() -> None:
    assert fires("30 2 * * *", ms(2026, 3, 27, 12), 3, "Europe/Berlin") == [
        ms(2026, 3, 28, 1, 30),  # 02:30 CET
        ms(2026, 3, 30, 0, 30),  # 02:30 CEST; none on the 29th
        ms(2026, 3, 31, 0, 30),
    ]


def test_berlin_hourly_across_the_gap() -> None:
    got = fires("0 * * * *", ms(2026, 3, 28, 23, 30), 4, "Europe/Berlin")
    assert got == [ms(2026, 3, 29, 0), ms(2026, 3, 29, 1), ms(2026, 3, 29, 2), ms(2026, 3, 29, 3)]
    assert [local(t, "Europe/Berlin").hour for t in got] == [1, 3, 4, 5]


def test_berlin_every_minute_jumps_the_gap() -> None:
    got = fires("* * * * *", ms(2026, 3, 29, 0, 58), 3, "Europe/Berlin")
    assert got == [ms(2026, 3, 29, 0, 59), ms(2026, 3, 29, 1, 0), ms(2026, 3, 29, 1, 1)]
    assert [local(t, "Europe/Berlin").strftime("%H:%M") for t in got] == ["01:59", "03:00", "03:01"]


# Berlin, fall back 2026-10-25: 03:00 CEST (01:00 UTC) becomes 02:00 CET; 02:xx repeats.


def test_berlin_daily_at_a_repeated_time_fires_once() -> None:
    assert fires("30 2 * * *", ms(2026, 10, 23, 12), 3, "Europe/Berlin") == [
        ms(2026, 10, 24, 0, 30),  # 02:30 CEST
        ms(2026, 10, 25, 0, 30),  # 02:30 CEST, first occurrence
        ms(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


def test_berlin_half_hourly_over_the_repeated_hour() -> None:
    got = fires("*/30 * * * *", ms(2026, 10, 24, 23, 50), 5, "Europe/Berlin")
    assert got == [
        ms(2026, 10, 25, 0, 0),  # 02:00 CEST
        ms(2026, 10, 25, 0, 30),  # 02:30 CEST
        ms(2026, 10, 25, 2, 0),  # 03:00 CET
        ms(2026, 10, 25, 2, 30),
        ms(2026, 10, 25, 3, 0),
    ]


# Sydney: back 2026-04-05 03:00 AEDT -> 02:00 AEST (16:00 UTC on the 4th);
# forward 2026-10-04 02:00 AEST -> 03:00 AEDT (16:00 UTC on the 3rd).


def test_sydney_fall_back_in_april_fires_once() -> None:
    assert fires("30 2 * * *", ms(2026, 4, 3, 12), 3, "Australia/Sydney") == [
        ms(2026, 4, 3, 15, 30),  # Apr 4 02:30 AEDT
        ms(2026, 4, 4, 15, 30),  # Apr 5 02:30 AEDT, first occurrence; not at 16:30 UTC
        ms(2026, 4, 5, 16, 30),  # Apr 6 02:30 AEST
    ]
    got = fires("0 * * * *", ms(2026, 4, 4, 13, 30), 4, "Australia/Sydney")
    # 01:00 AEDT, 02:00 AEDT, then 03:00 AEST two hours later.
    assert got == [ms(2026, 4, 4, 14), ms(2026, 4, 4, 15), ms(2026, 4, 4, 17), ms(2026, 4, 4, 18)]


def test_sydney_spring_forward_in_october_skips_the_missing_time() -> None:
    assert fires("30 2 * * *", ms(2026, 10, 2, 0), 3, "Australia/Sydney") == [
        ms(2026, 10, 2, 16, 30),  # Oct 3 02:30 AEST
        ms(2026, 10, 4, 15, 30),  # Oct 5 02:30 AEDT; none on the 4th
        ms(2026, 10, 5, 15, 30),
    ]
    got = fires("0 * * * *", ms(2026, 10, 3, 13, 30), 4, "Australia/Sydney")
    assert got == [ms(2026, 10, 3, 14), ms(2026, 10, 3, 15), ms(2026, 10, 3, 16), ms(2026, 10, 3, 17)]
    assert [local(t, "Australia/Sydney").hour for t in got] == [0, 1, 3, 4]


# --------------------------------------------------------------------------- iteration and a brute-force oracle


@pytest.mark.parametrize(
    ("start", "transition_day", "local_hours"),
    [(ms(2026, 3, 28, 12), dt.date(2026, 3, 29), 23), (ms(2026, 10, 24, 12), dt.date(2026, 10, 25), 24)],
)
def test_walking_every_seven_minutes_in_berlin_across_dst(
    start: int, transition_day: dt.date, local_hours: int
) -> None:
    schedule = parse_cron("*/7 * * * *", "Europe/Berlin")
    got: list[int] = []
    after = start
    for _ in range(1000):
        after = next_fire_ms(schedule, after)
        got.append(after)
    assert all(b > a for a, b in itertools.pairwise(got))
    assert len(set(got)) == 1000
    assert all(t % MINUTE_MS == 0 for t in got)
    walls = [local(t, "Europe/Berlin") for t in got]
    assert all(w.minute % 7 == 0 and w.minute <= 56 for w in walls)
    assert len({w.replace(tzinfo=None) for w in walls}) == 1000
    assert all(w.fold == 0 for w in walls)
    # Nine slots (0, 7, ..., 56) for each wall-clock hour the day has: 23 in spring, 24 in autumn.
    assert walls[-1].date() > transition_day
    assert sum(1 for w in walls if w.date() == transition_day) == 9 * local_hours


def reference_fires(schedule: CronSchedule, zone: ZoneInfo, start_ms: int, end_ms: int, limit_ms: int) -> list[int]:
    """Every firing in [start, end) and the first one at or after `end` (looked for up to `limit`), found minute
    by minute in UTC.

    A UTC minute fires when its local time matches and is the first occurrence
    of that wall time (fold 0); a missing local time never appears at all.
    """
    both = schedule.day_of_month_restricted and schedule.day_of_week_restricted
    out: list[int] = []
    for minute_ms in range(start_ms, limit_ms, MINUTE_MS):
        if out and out[-1] >= end_ms:
            break
        wall = (EPOCH + dt.timedelta(milliseconds=minute_ms)).astimezone(zone)
        dom_ok = wall.day in schedule.days_of_month
        dow_ok = wall.isoweekday() % 7 in schedule.days_of_week
        if (
            wall.fold == 0
            and wall.minute in schedule.minutes
            and wall.hour in schedule.hours
            and wall.month in schedule.months
            and ((dom_ok or dow_ok) if both else (dom_ok and dow_ok))
        ):
            out.append(minute_ms)
    return out


ORACLE_EXPRESSIONS = [
    "* * * * *",
    "*/7 * * * *",
    "0 * * * *",
    "30 * * * *",
    "*/30 * * * *",
    "15,45 0-4 * * *",
    "0 2 * * *",
    "30 2 * * *",
    "59 1 * * *",
    "0 3 * * *",
    "30 1 * * *",
    "0 0 * * *",
    "0 2 * * 0",
    "45 2 1-10 * 0",
]


@pytest.mark.parametrize("zone_name", ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe"])
@pytest.mark.parametrize("expression", ORACLE_EXPRESSIONS)
def test_matches_a_minute_by_minute_oracle_around_every_2026_transition(expression: str, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    schedule = parse_cron(expression, zone_name)
    for transition in transitions(zone_name, 2026):
        center = (transition - EPOCH) // dt.timedelta(milliseconds=1)
        # Up to a week and a day past the last probe: long enough to find the next weekly firing.
        expected = reference_fires(
            schedule, zone, center - 6 * HOUR_MS, center + 6 * HOUR_MS, center + 6 * HOUR_MS + 8 * DAY_MS
        )
        assert expected
        # Probe every 7 minutes (and some sub-minute offsets) for 6 hours on each side.
        for after in range(center - 6 * HOUR_MS, center + 6 * HOUR_MS, 7 * MINUTE_MS + 1_001):
            index = bisect.bisect_right(expected, after)
            assert index < len(expected)
            assert next_fire_ms(schedule, after) == expected[index], (expression, zone_name, after)


def test_six_fields_name_the_second() -> None:
    every_second = parse_cron("* * * * * *")
    start = ms(2026, 3, 1, 12, 0, 0) + 250
    assert next_fire_ms(every_second, start) == ms(2026, 3, 1, 12, 0, 1)
    every_15s = parse_cron("*/15 * * * * *")
    assert next_fire_ms(every_15s, ms(2026, 3, 1, 12, 0, 15)) == ms(2026, 3, 1, 12, 0, 30)
    assert next_fire_ms(every_15s, ms(2026, 3, 1, 12, 0, 46)) == ms(2026, 3, 1, 12, 1, 0)
    five_fields = parse_cron("* * * * *")
    assert next_fire_ms(five_fields, ms(2026, 3, 1, 12, 0, 0) + 1) == ms(2026, 3, 1, 12, 1, 0)
