"""Unique jobs (ojs-unique-jobs.md): policy parsing and the fingerprint."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

import pytest

from server.domain.errors import ErrorCode, OJSError
from server.domain.states import JobState
from server.domain.unique import DEFAULT_STATES, UniquePolicy, fingerprint, parse_unique_policy
from server.domain.validation import parse_enqueue

NOW = 1_770_892_200_000

NFC = unicodedata.normalize("NFC", "café Zürich ñ")
NFD = unicodedata.normalize("NFD", "café Zürich ñ")


def fp(
    raw: dict[str, Any],
    *,
    job_type: str = "email.send",
    queue: str = "default",
    args: list[Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> str:
    policy = parse_unique_policy(raw)
    return fingerprint(policy, job_type=job_type, queue=queue, args=args or [], meta=meta or {})


def rejected(raw: Any, field: str) -> OJSError:
    with pytest.raises(OJSError) as caught:
        parse_unique_policy(raw)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.details.get("field") == field
    return caught.value


def fingerprint_rejected(raw: dict[str, Any], args: list[Any], field: str) -> OJSError:
    with pytest.raises(OJSError) as caught:
        fp(raw, args=args)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.details.get("field") == field
    return caught.value


# --------------------------------------------------------------------------- the canonical form


def test_fingerprint_is_sha256_of_the_canonical_json() -> None:
    # The worked example of ojs-unique-jobs.md §4.3 (args as a one-object array).
    value = fp(
        {"keys": ["type", "queue", "args"], "args_keys": ["user_id"]},
        queue="notifications",
        args=[{"user_id": 42, "template": "welcome", "locale": "en-US"}],
        meta={"tenant_id": "acme", "trace_id": "abc123"},
    )
    canonical = '{"args":[{"user_id":42}],"queue":"notifications","type":"email.send"}'
    assert value == hashlib.sha256(canonical.encode()).hexdigest()
    assert len(value) == 64
    assert value == value.lower()


def test_strings_are_hashed_as_utf8_nfc_without_escapes() -> None:
    value = fp({"keys": ["args"]}, args=[NFD])
    canonical = '{"args":["' + NFC + '"],"type":"email.send"}'
    assert value == hashlib.sha256(canonical.encode()).hexdigest()


def test_object_key_order_does_not_matter_at_any_depth() -> None:
    first = [{"a": 1, "b": {"x": [{"p": 1, "q": {"m": 1, "n": 2}}], "y": 2}, "c": None}]
    second = [{"c": None, "b": {"y": 2, "x": [{"q": {"n": 2, "m": 1}, "p": 1}]}, "a": 1}]
    policy = {"keys": ["args", "meta"], "meta_keys": ["tenant"]}
    meta_one = {"tenant": {"id": 1, "region": {"zone": "a", "dc": 2}}, "other": 1}
    meta_two = {"other": 2, "tenant": {"region": {"dc": 2, "zone": "a"}, "id": 1}}
    assert fp(policy, args=first, meta=meta_one) == fp(policy, args=second, meta=meta_two)


def test_array_order_still_matters() -> None:
    policy = {"keys": ["args"]}
    assert fp(policy, args=[1, 2]) != fp(policy, args=[2, 1])
    assert fp(policy, args=[{"l": [1, 2]}]) != fp(policy, args=[{"l": [2, 1]}])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([NFC], [NFD]),
        ([{"name": NFC}], [{"name": NFD}]),
        ([{NFC: 1}], [{NFD: 1}]),
        ([{"deep": [{"k": {NFC: [NFC]}}]}], [{"deep": [{"k": {NFD: [NFD]}}]}]),
    ],
    ids=["string", "value", "key", "nested"],
)
def test_nfc_and_nfd_spellings_give_one_fingerprint(first: list[Any], second: list[Any]) -> None:
    assert NFC != NFD
    policy = {"keys": ["args"]}
    assert fp(policy, args=first) == fp(policy, args=second)


def test_nfc_and_nfd_meta_values_give_one_fingerprint() -> None:
    policy = {"keys": ["meta"], "meta_keys": ["city"]}
    assert fp(policy, meta={"city": NFC}) == fp(policy, meta={"city": NFD})


def test_selected_args_keys_match_in_either_spelling_when_spelled_alike() -> None:
    policy = {"keys": ["args"], "args_keys": [NFD]}
    assert fp(policy, args=[{NFD: 1, "x": 1}]) == fp({"keys": ["args"], "args_keys": [NFC]}, args=[{NFC: 1, "x": 2}])


def test_different_unicode_strings_stay_different() -> None:
    policy = {"keys": ["args"]}
    assert fp(policy, args=["cafe"]) != fp(policy, args=["café"])


def test_numbers_are_canonicalized_as_rfc8785_numbers() -> None:
    # RFC 8785 (ojs-unique-jobs.md §4.1 step 2) writes the JSON numbers 1 and 1.0 identically.
    policy = {"keys": ["args"]}
    assert fp(policy, args=[{"n": 1}]) == fp(policy, args=[{"n": 1.0}])


# --------------------------------------------------------------------------- dimensions


def test_type_is_always_a_dimension() -> None:
    for keys in (["queue"], ["args"], ["type"]):
        policy = parse_unique_policy({"keys": keys})
        assert policy.keys[0] == "type"
        assert fp({"keys": keys}, job_type="a.b") != fp({"keys": keys}, job_type="a.c")


def test_default_dimensions_are_type_only() -> None:
    policy = parse_unique_policy({})
    assert policy.keys == ("type",)
    assert fp({}, args=[1], queue="q1", meta={"m": 1}) == fp({}, args=[2], queue="q2", meta={"m": 2})


def test_queue_dimension() -> None:
    with_queue = {"keys": ["type", "queue"]}
    assert fp(with_queue, queue="q1") != fp(with_queue, queue="q2")
    assert fp(with_queue, queue="q1") == fp(with_queue, queue="q1", args=[1])
    without_queue = {"keys": ["type", "args"]}
    assert fp(without_queue, queue="q1", args=[1]) == fp(without_queue, queue="q2", args=[1])


def test_args_dimension_covers_all_args_by_default() -> None:
    policy = {"keys": ["args"]}
    assert fp(policy, args=[{"a": 1, "b": 1}]) != fp(policy, args=[{"a": 1, "b": 2}])
    assert fp(policy, args=[1, "x"]) == fp(policy, args=[1, "x"])
    assert fp(policy, args=[1]) != fp(policy, args=[1, None])


def test_args_not_a_dimension_are_ignored() -> None:
    assert fp({"keys": ["type"]}, args=[1]) == fp({"keys": ["type"]}, args=[2])


def test_args_keys_only_the_listed_keys_matter() -> None:
    policy = {"keys": ["type", "args"], "args_keys": ["user_id"]}
    base = fp(policy, args=[{"user_id": 42, "template": "welcome"}])
    assert fp(policy, args=[{"template": "goodbye", "user_id": 42, "locale": "fr"}]) == base
    assert fp(policy, args=[{"user_id": 43, "template": "welcome"}]) != base
    assert fp(policy, args=[{"user_id": "42", "template": "welcome"}]) != base


def test_args_keys_with_several_keys() -> None:
    policy = {"keys": ["args"], "args_keys": ["a", "b"]}
    base = fp(policy, args=[{"a": 1, "b": 2, "c": 3}])
    assert fp(policy, args=[{"b": 2, "a": 1, "c": 4}]) == base
    assert fp(policy, args=[{"a": 1, "b": 3, "c": 3}]) != base


def test_args_keys_alone_imply_the_args_dimension() -> None:
    policy = parse_unique_policy({"args_keys": ["user_id"]})
    assert policy.keys == ("type", "args")
    assert fp({"args_keys": ["user_id"]}, args=[{"user_id": 1}]) != fp(
        {"args_keys": ["user_id"]}, args=[{"user_id": 2}]
    )


@pytest.mark.parametrize(
    "args",
    [[{"user": 1}], [], [1, "user_id"], [{"other": {"user_id": 1}}]],
    ids=["other-key", "empty", "scalars", "nested-only"],
)
def test_args_keys_not_in_args_are_rejected(args: list[Any]) -> None:
    error = fingerprint_rejected({"keys": ["args"], "args_keys": ["user_id"]}, args, "options.unique.args_keys")
    assert "user_id" in error.message


def test_every_args_key_must_be_present() -> None:
    error = fingerprint_rejected(
        {"keys": ["args"], "args_keys": ["a", "missing"]}, [{"a": 1}], "options.unique.args_keys"
    )
    assert "missing" in error.message
    assert "'a'" not in error.message


def test_meta_keys_only_the_listed_keys_matter() -> None:
    policy = {"keys": ["type", "meta"], "meta_keys": ["tenant_id"]}
    base = fp(policy, meta={"tenant_id": "acme", "trace_id": "t1"})
    assert fp(policy, meta={"trace_id": "t2", "tenant_id": "acme"}) == base
    assert fp(policy, meta={"tenant_id": "globex", "trace_id": "t1"}) != base
    assert fp(policy, meta={"trace_id": "t1"}) != base


def test_meta_not_a_dimension_is_ignored() -> None:
    policy = {"keys": ["type"], "meta_keys": ["tenant_id"]}
    assert fp(policy, meta={"tenant_id": "a"}) == fp(policy, meta={"tenant_id": "b"})


@pytest.mark.parametrize("meta_keys", [None, []], ids=["missing", "empty"])
def test_meta_dimension_requires_meta_keys(meta_keys: list[str] | None) -> None:
    raw: dict[str, Any] = {"keys": ["type", "meta"]}
    if meta_keys is not None:
        raw["meta_keys"] = meta_keys
    rejected(raw, "options.unique.meta_keys")


@pytest.mark.parametrize("keys", [["argz"], ["type", "Args"], ["id"]])
def test_unknown_dimensions_are_rejected(keys: list[str]) -> None:
    rejected({"keys": keys}, "options.unique.keys")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("type", "options.unique"),
        ([], "options.unique"),
        ({"keys": "type"}, "options.unique.keys"),
        ({"keys": ["type", ""]}, "options.unique.keys"),
        ({"args_keys": "user_id"}, "options.unique.args_keys"),
        ({"args_keys": [1]}, "options.unique.args_keys"),
        ({"keys": ["meta"], "meta_keys": [""]}, "options.unique.meta_keys"),
    ],
)
def test_malformed_policies_are_rejected(raw: Any, field: str) -> None:
    rejected(raw, field)


# --------------------------------------------------------------------------- the proto spelling `key`


def test_key_maps_to_args_keys() -> None:
    policy = parse_unique_policy({"key": ["user_id"]})
    assert policy.args_keys == ("user_id",)
    assert policy.keys == ("type", "args")
    assert fp({"key": ["user_id"]}, args=[{"user_id": 1, "x": 1}]) == fp(
        {"args_keys": ["user_id"]}, args=[{"user_id": 1, "x": 2}]
    )
    assert fp({"key": ["user_id"]}, args=[{"user_id": 1}]) != fp({"key": ["user_id"]}, args=[{"user_id": 2}])


def test_key_with_a_missing_arg_is_rejected() -> None:
    fingerprint_rejected({"key": ["user_id"]}, [{"id": 1}], "options.unique.args_keys")


def test_args_keys_wins_over_key() -> None:
    policy = parse_unique_policy({"key": ["a"], "args_keys": ["b"]})
    assert policy.args_keys == ("b",)


def test_key_must_be_a_list_of_names() -> None:
    rejected({"key": "user_id"}, "options.unique.key")


# --------------------------------------------------------------------------- on_conflict


@pytest.mark.parametrize(
    ("given", "action"),
    [
        (None, "reject"),
        ("reject", "reject"),
        ("ignore", "ignore"),
        ("use_existing", "ignore"),
        ("replace", "replace"),
        ("replace_except_schedule", "replace_except_schedule"),
    ],
)
def test_on_conflict_actions_and_aliases(given: str | None, action: str) -> None:
    raw = {} if given is None else {"on_conflict": given}
    assert parse_unique_policy(raw).on_conflict == action


@pytest.mark.parametrize("given", ["merge", "REJECT", "Ignore", "", 1, ["reject"], {"action": "reject"}])
def test_unknown_on_conflict_is_rejected(given: Any) -> None:
    rejected({"on_conflict": given}, "options.unique.on_conflict")


def test_on_conflict_does_not_change_the_fingerprint() -> None:
    assert fp({"on_conflict": "reject"}) == fp({"on_conflict": "replace"}) == fp({"on_conflict": "use_existing"})


# --------------------------------------------------------------------------- states


def test_default_states_are_the_non_terminal_ones() -> None:
    policy = parse_unique_policy({})
    assert set(policy.states) == {"available", "active", "scheduled", "retryable", "pending"}
    assert policy.states == DEFAULT_STATES


def test_states_are_parsed_into_job_states() -> None:
    policy = parse_unique_policy({"states": ["available", "completed", "discarded", "cancelled"]})
    assert policy.states == (JobState.AVAILABLE, JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED)


@pytest.mark.parametrize("states", [["available", "done"], ["Available"], ["waiting"], "available", [None]])
def test_invalid_states_are_rejected(states: Any) -> None:
    field = "options.unique.states"
    rejected({"states": states}, field)


def test_states_do_not_change_the_fingerprint() -> None:
    assert fp({"states": ["available"]}) == fp({})


# --------------------------------------------------------------------------- period


@pytest.mark.parametrize(
    ("period", "ms"),
    [
        ("PT1S", 1000),
        ("PT0.5S", 500),
        ("PT2H", 7_200_000),
        ("P1D", 86_400_000),
        ("P7D", 604_800_000),
        ("P1DT1M", 86_460_000),
        ("pt5m", 300_000),
    ],
)
def test_period_is_an_iso8601_duration(period: str, ms: int) -> None:
    assert parse_unique_policy({"period": period}).period_ms == ms


def test_no_period_means_no_expiry() -> None:
    assert parse_unique_policy({}).period_ms is None
    assert parse_unique_policy({"period": None}).period_ms is None


@pytest.mark.parametrize("period", ["PT0S", "P", "PT", "1h", "P1M", "P1Y", "soon", "", 3600, 1.5, True])
def test_invalid_periods_are_rejected(period: Any) -> None:
    rejected({"period": period}, "options.unique.period")


def test_period_does_not_change_the_fingerprint() -> None:
    assert fp({"period": "PT1H"}) == fp({})


# --------------------------------------------------------------------------- through the envelope


def envelope(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "email.send", "args": [{"user_id": 42, "n": 1}]}
    body.update(fields)
    return body


def test_enqueue_computes_the_fingerprint_of_options_unique() -> None:
    unique = {"keys": ["type", "queue", "args"], "args_keys": ["user_id"], "on_conflict": "use_existing"}
    job = parse_enqueue(envelope(options={"queue": "mail", "unique": unique}), now_ms=NOW)
    assert job.unique == unique
    assert isinstance(job.unique_policy, UniquePolicy)
    assert job.unique_policy.on_conflict == "ignore"
    assert job.unique_fingerprint == fp(unique, queue="mail", args=[{"user_id": 42, "n": 99}])


def test_enqueue_accepts_a_top_level_unique() -> None:
    job = parse_enqueue(envelope(unique={"keys": ["args"]}), now_ms=NOW)
    assert job.unique_fingerprint == fp({"keys": ["args"]}, args=[{"user_id": 42, "n": 1}])


def test_options_unique_wins_over_top_level() -> None:
    job = parse_enqueue(envelope(unique={"on_conflict": "replace"}, options={"unique": {}}), now_ms=NOW)
    assert job.unique_policy is not None
    assert job.unique_policy.on_conflict == "reject"


def test_fingerprint_uses_meta_merged_from_options_metadata() -> None:
    unique = {"keys": ["meta"], "meta_keys": ["tenant"]}
    merged = parse_enqueue(envelope(options={"unique": unique, "metadata": {"tenant": "a"}}), now_ms=NOW)
    direct = parse_enqueue(envelope(meta={"tenant": "a"}, options={"unique": unique}), now_ms=NOW)
    assert merged.unique_fingerprint == direct.unique_fingerprint


def test_enqueue_without_unique_has_no_fingerprint() -> None:
    job = parse_enqueue(envelope(), now_ms=NOW)
    assert job.unique_policy is None
    assert job.unique_fingerprint is None


def test_enqueue_rejects_args_keys_missing_from_args() -> None:
    with pytest.raises(OJSError) as caught:
        parse_enqueue(envelope(options={"unique": {"args_keys": ["account"]}}), now_ms=NOW)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.details["field"] == "options.unique.args_keys"


def test_enqueue_rejects_a_bad_policy_with_its_field() -> None:
    with pytest.raises(OJSError) as caught:
        parse_enqueue(envelope(options={"unique": {"states": ["gone"]}}), now_ms=NOW)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.details["field"] == "options.unique.states"
