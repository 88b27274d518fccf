"""Envelope validation (SPEC-GUIDE §1.2): `parse_enqueue` into a `NewJob`."""

from __future__ import annotations

from typing import Any

import pytest

from server.domain.errors import ErrorCode, OJSError
from server.domain.ids import is_uuid7
from server.domain.job import NewJob
from server.domain.retry import DEFAULT_RETRY_POLICY, BackoffStrategy
from server.domain.states import JobState
from server.domain.validation import parse_enqueue

NOW = 1_770_892_200_000  # 2026-02-12T10:30:00Z
V7 = "019539a4-5b6c-7d8e-9f01-23456789abcd"
V4 = "3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"


def parse(**fields: Any) -> NewJob:
    body: dict[str, Any] = {"type": "email.send", "args": []}
    body.update(fields)
    return parse_enqueue(body, now_ms=NOW)


def rejected(body: Any, *, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> OJSError:
    with pytest.raises(OJSError) as caught:
        parse_enqueue(body, now_ms=NOW)
    error = caught.value
    assert error.code is code
    assert error.retryable is False
    return error


def rejected_field(field: str, **fields: Any) -> OJSError:
    body: dict[str, Any] = {"type": "email.send", "args": []}
    body.update(fields)
    error = rejected(body)
    assert error.details.get("field") == field
    return error


# --------------------------------------------------------------------------- defaults


def test_minimal_envelope_gets_defaults() -> None:
    job = parse()
    assert is_uuid7(job.id)
    assert job.type == "email.send"
    assert job.queue == "default"
    assert job.args == []
    assert job.meta == {}
    assert job.priority == 0
    assert job.retry == DEFAULT_RETRY_POLICY
    assert job.created_at_ms == NOW
    assert job.scheduled_at_ms is None
    assert job.expires_at_ms is None
    assert job.timeout_ms is None
    assert job.visibility_timeout_ms is None
    assert job.tags == ()
    assert job.extra == {}
    assert job.pending is False
    assert job.initial_state is JobState.AVAILABLE


def test_generated_ids_differ() -> None:
    assert parse().id != parse().id


@pytest.mark.parametrize("body", [[], "job", 3, None, True])
def test_body_must_be_an_object(body: Any) -> None:
    rejected(body, code=ErrorCode.INVALID_PAYLOAD)


# --------------------------------------------------------------------------- type


@pytest.mark.parametrize(
    "value",
    ["email.send", "a", "email", "retry.test.attempt-counter", "a_b.c-d", "x1.y2.z3", "test.fail_once", "a" * 255],
)
def test_valid_types(value: str) -> None:
    assert parse(type=value).type == value


@pytest.mark.parametrize(
    "value",
    [
        "Email.Send",
        "email send",
        "1email.send",
        "",
        "email@send!",
        "INVALID_TYPE_FORMAT!!",
        "email..send",
        "email.",
        ".email",
        "email.Send",
        "email.1send",
        "-email",
        "a" * 256,
        42,
        ["email.send"],
        True,
    ],
)
def test_invalid_types(value: Any) -> None:
    error = rejected_field("type", type=value)
    assert error.error_type == "validation_error"


def test_missing_type() -> None:
    error = rejected({"args": []})
    assert error.details["field"] == "type"
    rejected({"type": None, "args": []})


# --------------------------------------------------------------------------- args


@pytest.mark.parametrize("value", [{"a": 1}, "args", 1, 1.5, True, None])
def test_args_must_be_a_list(value: Any) -> None:
    rejected_field("args", args=value)


def test_missing_args() -> None:
    assert rejected({"type": "email.send"}).details["field"] == "args"


def test_nested_args_are_kept_exactly() -> None:
    args = [1, 2.5, "x", None, True, False, {"a": [1, {"b": 2}], "c": {}}, [], [[0]], 2**53 + 1, -7]
    job = parse(args=args)
    assert job.args == args
    assert type(job.args[0]) is int
    assert type(job.args[9]) is int
    assert type(job.args[1]) is float


# --------------------------------------------------------------------------- id


def test_client_id_is_kept() -> None:
    assert parse(id=V7).id == V7


@pytest.mark.parametrize(
    "value",
    [V4, V7.upper(), "not-a-uuid", "", "019539a4-5b6c-7d8e-cf01-23456789abcd", V7.replace("-", ""), 7, ["x"]],
)
def test_invalid_ids(value: Any) -> None:
    rejected_field("id", id=value)


def test_null_id_means_generate() -> None:
    assert is_uuid7(parse(id=None).id)


# --------------------------------------------------------------------------- queue


@pytest.mark.parametrize("value", ["default", "emails", "high-priority", "q.1", "0queue", "a", "a.b-c.d"])
def test_valid_queues(value: str) -> None:
    assert parse(options={"queue": value}).queue == value
    assert parse(queue=value).queue == value


@pytest.mark.parametrize("value", ["Default", "my_queue!", "-invalid", "my queue", "", "my_queue", ".q", 5, "q" * 256])
def test_invalid_queues(value: Any) -> None:
    rejected_field("options.queue", options={"queue": value})
    rejected_field("queue", queue=value)


def test_options_queue_wins_over_top_level() -> None:
    assert parse(queue="top", options={"queue": "inner"}).queue == "inner"


def test_null_options_queue_falls_back_to_top_level() -> None:
    assert parse(queue="top", options={"queue": None}).queue == "top"


# --------------------------------------------------------------------------- priority


@pytest.mark.parametrize("value", [-100, -1, 0, 1, 50, 100])
def test_valid_priorities(value: int) -> None:
    assert parse(options={"priority": value}).priority == value
    assert parse(priority=value).priority == value


@pytest.mark.parametrize("value", [101, -101, 999999, True, False, 1.5, 10.0, "5", [1]])
def test_invalid_priorities(value: Any) -> None:
    rejected_field("options.priority", options={"priority": value})
    rejected_field("priority", priority=value)


def test_options_priority_wins_over_top_level_even_when_zero() -> None:
    assert parse(priority=5, options={"priority": -3}).priority == -3
    assert parse(priority=50, options={"priority": 0}).priority == 0


# --------------------------------------------------------------------------- meta and options


def test_meta_is_kept() -> None:
    meta = {"trace": {"id": "t-1"}, "tenant": "acme", "n": 3}
    assert parse(meta=meta).meta == meta


@pytest.mark.parametrize("value", [[], "x", 3, True])
def test_meta_must_be_an_object(value: Any) -> None:
    rejected_field("meta", meta=value)


@pytest.mark.parametrize("value", [[], "x", 3])
def test_options_must_be_an_object(value: Any) -> None:
    rejected_field("options", options=value)


def test_options_metadata_is_merged_into_meta() -> None:
    job = parse(meta={"tenant": "acme"}, options={"metadata": {"test_directive": "quiet"}})
    assert job.meta == {"tenant": "acme", "test_directive": "quiet"}


def test_options_metadata_without_meta() -> None:
    assert parse(options={"metadata": {"test_directive": "terminate"}}).meta == {"test_directive": "terminate"}


@pytest.mark.parametrize("value", [[], "quiet", 1])
def test_options_metadata_must_be_an_object(value: Any) -> None:
    rejected_field("options.metadata", options={"metadata": value})


def test_trace_id_from_meta() -> None:
    assert parse(meta={"trace_id": "abc"}).trace_id == "abc"
    assert parse(trace_id="top", meta={"trace_id": "abc"}).trace_id == "top"


def test_tags() -> None:
    assert parse(options={"tags": ["a", "b"]}).tags == ("a", "b")
    assert parse(tags=["x"]).tags == ("x",)
    rejected_field("options.tags", options={"tags": "a"})
    rejected_field("options.tags", options={"tags": ["a", 1]})


def test_schema_is_kept() -> None:
    assert parse(schema="urn:ojs:schema:email.send:v1").schema == "urn:ojs:schema:email.send:v1"
    rejected_field("schema", schema=3)


def test_unique_must_be_an_object() -> None:
    unique = {"keys": ["type", "args"], "on_conflict": "reject"}
    assert parse(options={"unique": unique}).unique == unique
    rejected_field("options.unique", options={"unique": ["type"]})


# --------------------------------------------------------------------------- timeouts


def test_timeouts_in_milliseconds_and_seconds() -> None:
    job = parse(options={"timeout_ms": 2000, "visibility_timeout_ms": 3000})
    assert job.timeout_ms == 2000
    assert job.visibility_timeout_ms == 3000
    job = parse(timeout=5, visibility_timeout=7)
    assert job.timeout_ms == 5000
    assert job.visibility_timeout_ms == 7000


def test_timeout_ms_wins_over_timeout_seconds() -> None:
    assert parse(timeout=5, options={"timeout_ms": 1500}).timeout_ms == 1500


@pytest.mark.parametrize("value", [-1, "10", True, [1]])
def test_invalid_timeouts(value: Any) -> None:
    rejected_field("options.timeout_ms", options={"timeout_ms": value})
    rejected_field("options.visibility_timeout_ms", options={"visibility_timeout_ms": value})


# --------------------------------------------------------------------------- scheduling


def test_relative_scheduled_at() -> None:
    job = parse(options={"scheduled_at": "+PT2S"})
    assert job.scheduled_at_ms == NOW + 2000
    assert job.initial_state is JobState.SCHEDULED


def test_absolute_scheduled_at_in_the_future() -> None:
    job = parse(options={"scheduled_at": "2026-02-12T10:31:00Z"})
    assert job.scheduled_at_ms == NOW + 60_000
    assert job.initial_state is JobState.SCHEDULED


def test_scheduled_at_in_the_past_is_available() -> None:
    job = parse(options={"scheduled_at": "2020-01-01T00:00:00Z"})
    assert job.initial_state is JobState.AVAILABLE


def test_scheduled_at_now_is_available() -> None:
    assert parse(options={"scheduled_at": "2026-02-12T10:30:00Z"}).initial_state is JobState.AVAILABLE


def test_delay_until_alias_and_top_level_form() -> None:
    assert parse(options={"delay_until": "2026-02-12T10:30:05Z"}).scheduled_at_ms == NOW + 5000
    assert parse(scheduled_at="+PT1M").scheduled_at_ms == NOW + 60_000
    assert parse(scheduled_at="+PT1M", options={"scheduled_at": "+PT1S"}).scheduled_at_ms == NOW + 1000


@pytest.mark.parametrize("value", ["2026-02-12T10:31:00", "tomorrow", "+5S", "+", "", 1_770_892_260_000, True])
def test_invalid_scheduled_at(value: Any) -> None:
    rejected_field("options.scheduled_at", options={"scheduled_at": value})


def test_expires_at_absolute_and_relative() -> None:
    assert parse(options={"expires_at": "2099-12-31T23:59:59Z"}).expires_at_ms == 4_102_444_799_000
    assert parse(options={"expires_at": "+PT2S"}).expires_at_ms == NOW + 2000
    rejected_field("options.expires_at", options={"expires_at": "2099-12-31 23:59:59"})


# --------------------------------------------------------------------------- initial state


def test_pending_option() -> None:
    job = parse(options={"pending": True})
    assert job.pending is True
    assert job.initial_state is JobState.PENDING
    assert parse(options={"pending": False}).initial_state is JobState.AVAILABLE


def test_pending_wins_over_a_schedule() -> None:
    assert parse(options={"pending": True, "scheduled_at": "+PT1H"}).initial_state is JobState.PENDING


def test_pending_must_be_boolean() -> None:
    rejected_field("options.pending", options={"pending": "yes"})


# --------------------------------------------------------------------------- retry


def test_retry_from_options_and_aliases() -> None:
    assert parse(options={"retry": {"max_attempts": 5}}).retry.max_attempts == 5
    assert parse(options={"retry_policy": {"max_attempts": 6}}).retry.max_attempts == 6
    assert parse(retry={"backoff_strategy": "linear"}).retry.strategy is BackoffStrategy.LINEAR


def test_options_retry_wins_over_top_level() -> None:
    assert parse(retry={"max_attempts": 9}, options={"retry": {"max_attempts": 2}}).retry.max_attempts == 2


def test_options_max_attempts() -> None:
    assert parse(options={"max_attempts": 5}).retry.max_attempts == 5
    assert parse(options={"max_attempts": 5, "retry": {"max_attempts": 2}}).retry.max_attempts == 2


def test_invalid_retry_policy_is_a_validation_error() -> None:
    error = rejected(
        {"type": "email.send", "args": [], "options": {"retry": {"backoff_coefficient": 0.5}}},
        code=ErrorCode.VALIDATION_ERROR,
    )
    assert "backoff_coefficient" in error.message
    assert error.error_type == "validation_error"
    error = rejected(
        {"type": "email.send", "args": [], "options": {"retry": {"max_attempts": -1}}},
        code=ErrorCode.VALIDATION_ERROR,
    )
    assert "max_attempts" in error.message


# --------------------------------------------------------------------------- unknown and system fields


def test_unknown_fields_are_kept_in_extra() -> None:
    job = parse(custom_field="value", nested={"a": [1, 2]}, x_count=3)
    assert job.extra == {"custom_field": "value", "nested": {"a": [1, 2]}, "x_count": 3}


def test_known_envelope_fields_do_not_go_to_extra() -> None:
    job = parse(
        id=V7,
        meta={},
        options={},
        schema="urn:x",
        specversion="1.0",
        queue="q",
        priority=1,
        timeout=1,
        scheduled_at="+PT1S",
        expires_at="+PT1H",
        retry={},
        unique={},
        visibility_timeout=1,
        tags=[],
        trace_id="t",
    )
    assert job.extra == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("state", "completed"),
        ("attempt", 5),
        ("max_attempts", 99),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("enqueued_at", "2020-01-01T00:00:00Z"),
        ("started_at", "2020-01-01T00:00:00Z"),
        ("completed_at", "2020-01-01T00:00:00Z"),
        ("cancelled_at", "2020-01-01T00:00:00Z"),
        ("discarded_at", "2020-01-01T00:00:00Z"),
        ("error", {"code": "x"}),
        ("errors", [{"code": "x"}]),
        ("result", {"ok": True}),
        ("next_attempt_at", "2020-01-01T00:00:00Z"),
        ("retry_delay_ms", 5),
        ("worker_id", "w-1"),
        ("workflow_id", V7),
        ("parent_results", [1]),
    ],
)
def test_system_managed_fields_are_dropped(field: str, value: Any) -> None:
    job = parse(**{field: value, "custom": 1})
    assert job.extra == {"custom": 1}
    assert job.created_at_ms == NOW
    assert job.initial_state is JobState.AVAILABLE
    assert job.retry.max_attempts == DEFAULT_RETRY_POLICY.max_attempts


# Envelopes the plain-job shortcut takes: only id, type, args, meta and options with queue/priority.
PLAIN_BODIES: list[dict[str, Any]] = [
    {"type": "email.send", "args": []},
    {"type": "email.send", "args": [1, {"a": "b"}], "id": V7},
    {"type": "email.send", "args": [], "options": {}},
    {"type": "email.send", "args": [], "options": {"queue": "mail"}},
    {"type": "email.send", "args": [], "options": {"queue": None, "priority": None}},
    {"type": "email.send", "args": [], "options": {"queue": "mail", "priority": -7}},
    {"type": "email.send", "args": [], "meta": {"trace_id": "abc", "tenant": "t1"}, "options": {"priority": 3}},
    {"type": "email.send", "args": [], "meta": {"trace_id": 5}},
    {"type": "email.send", "args": [], "meta": None, "options": None},
]


@pytest.mark.parametrize("body", PLAIN_BODIES)
def test_plain_envelopes_parse_as_the_general_path_does(body: dict[str, Any]) -> None:
    from server.domain import validation

    plain = parse_enqueue({**body, "id": V7}, now_ms=NOW)
    meta = validation._json_object(body.get("meta"), field="meta")
    options = validation._json_object(body.get("options"), field="options")
    general = validation._general_job(
        {**body, "id": V7}, options, job_id=V7, job_type=body["type"], args=body["args"], meta=meta, now_ms=NOW
    )
    assert plain == general


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"queue": "Not Valid"}, "options.queue"),
        ({"queue": 7}, "options.queue"),
        ({"priority": 1000}, "options.priority"),
    ],
)
def test_plain_envelopes_are_still_validated(options: dict[str, Any], field: str) -> None:
    assert rejected_field(field, options=options).details["field"] == field


def test_a_default_retry_policy_parsed_from_nothing_is_the_default() -> None:
    from server.domain.retry import parse_retry_policy

    assert parse_retry_policy(None) == DEFAULT_RETRY_POLICY
    assert parse_retry_policy({}) == DEFAULT_RETRY_POLICY
