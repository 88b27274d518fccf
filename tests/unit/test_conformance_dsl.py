"""Unit tests of the conformance DSL runner: matchers, JSONPath, templates, assertions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import dsl
from tests.conformance.dsl import MISSING, match_value, matches, resolve_path

UUID_V7 = "019539a4-5b6c-7d8e-9f01-23456789abcd"
UUID_V4 = "3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"


# --------------------------------------------------------------------------- string matchers


def test_uuidv7_accepts_v7_and_rejects_v4() -> None:
    assert matches("string:uuidv7", UUID_V7)
    assert not matches("string:uuidv7", UUID_V4)


def test_uuidv7_rejects_bad_variant_and_uppercase() -> None:
    assert not matches("string:uuidv7", "019539a4-5b6c-7d8e-cf01-23456789abcd")
    assert not matches("string:uuidv7", UUID_V7.upper())


def test_uuid_accepts_any_version_but_not_garbage() -> None:
    assert matches("string:uuid", UUID_V4)
    assert matches("string:uuid", UUID_V7)
    assert not matches("string:uuid", "not-a-uuid")
    assert not matches("string:uuid", 42)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-01-15T10:30:00Z", True),
        ("2024-01-15T10:30:00.123456Z", True),
        ("2024-01-15T10:30:00+02:00", True),
        ("2024-01-15 10:30:00Z", False),
        ("2024-01-15", False),
        ("2024-01-15T10:30:00", False),
    ],
)
def test_datetime(value: str, ok: bool) -> None:
    assert matches("string:datetime", value) is ok


def test_nonempty_aliases_and_type_strictness() -> None:
    for m in ("string:nonempty", "string:non_empty"):
        assert matches(m, "x")
        assert not matches(m, "")
        assert not matches(m, 1)
        assert not matches(m, MISSING)


def test_string_contains_and_pattern() -> None:
    assert matches("string:contains:not found", "job not found here")
    assert not matches("string:contains:Not Found", "job not found here")
    assert matches("string:pattern(^test\\..*)", "test.echo")
    assert not matches("string:pattern(^test\\..*)", "atest.echo")


def test_unknown_typed_matcher_fails() -> None:
    err = match_value("string:bogus", "x")
    assert err is not None and "unknown matcher" in err


def test_literal_string_is_exact() -> None:
    assert matches("available", "available")
    assert not matches("available", "Available")
    assert not matches("42", 42)


# --------------------------------------------------------------------------- literals, null, absence


def test_numbers_compare_as_floats_and_bool_is_not_a_number() -> None:
    assert matches(1, 1.0)
    assert matches(3.14, 3.14)
    assert not matches(1, True)
    assert not matches(0, False)
    assert not matches(True, 1)
    assert matches(False, False)
    assert not matches(1, "1")


def test_null_counts_as_absent() -> None:
    for m in ("absent", None, {"$exists": False}):
        assert matches(m, None), m
        assert matches(m, MISSING), m
        assert not matches(m, 0), m
        assert not matches(m, ""), m


def test_any_and_exists() -> None:
    assert matches("any", 0)
    assert not matches("any", None)
    assert not matches("any", MISSING)
    assert matches("exists", None)
    assert not matches("exists", MISSING)
    assert matches({"$exists": True}, "x")
    assert not matches({"$exists": True}, MISSING)


# --------------------------------------------------------------------------- numbers


def test_approximate_default_tolerance() -> None:
    assert matches("~1000", 1400)
    assert matches("~1000", 500)
    assert matches("~1000", 1500)
    assert not matches("~1000", 1600)
    assert not matches("~1000", 499)
    assert not matches("~1000", "1000")


def test_approximate_minimum_tolerance_and_custom_pct() -> None:
    assert matches("~50", 150)
    assert not matches("~50", 151)
    assert not matches("~1000", 1150, tolerance_pct=10)
    assert matches("~1000", 1100, tolerance_pct=10)


def test_number_matchers() -> None:
    assert matches("number:positive", 1)
    assert not matches("number:positive", 0)
    assert matches("number:non_negative", 0)
    assert not matches("number:non_negative", -0.5)
    assert matches("number:range(0,100)", 100)
    assert not matches("number:range(0,100)", 100.5)
    assert not matches("number:positive", True)
    assert not matches("number:positive", "5")


# --------------------------------------------------------------------------- arrays


def test_array_matchers() -> None:
    assert matches("array:nonempty", [1])
    assert not matches("array:nonempty", [])
    assert matches("array:empty", [])
    assert not matches("array:empty", [None])
    assert not matches("array:empty", MISSING)
    for m in ("array:length:2", "array:length(2)"):
        assert matches(m, [1, 2])
        assert not matches(m, [1, 2, 3])
    for m in ("array:min_length:2", "array:min:2"):
        assert matches(m, [1, 2, 3])
        assert not matches(m, [1])
    assert not matches("array:nonempty", {"a": 1})


def test_contains_uses_go_formatting() -> None:
    assert matches("contains:urgent", ["a", "urgent"])
    assert not matches("contains:urgent", ["urgently"])
    assert matches("contains:42", [42.0])
    assert matches("contains:true", [True])
    assert matches("not_contains:deleted", ["a", "b"])
    assert not matches("not_contains:b", ["a", "b"])
    assert not matches("contains:a", "a")


def test_positional_array_requires_exact_length() -> None:
    m = ["string:nonempty", 42, None, {"nested": "value"}]
    assert matches(m, ["x", 42, None, {"nested": "value"}])
    assert not matches(m, ["x", 42, None])
    assert not matches(m, ["", 42, None, {"nested": "value"}])
    assert not matches(m, ["x", 42, None, {"nested": "other"}])
    assert not matches(m, ["x", 42, None, {"nested": "value", "extra": 1}])


# --------------------------------------------------------------------------- object operators


def test_exists_with_type() -> None:
    m = {"$exists": True, "$type": "string"}
    assert matches(m, "x")
    assert not matches(m, 5)
    assert not matches(m, MISSING)


@pytest.mark.parametrize(
    ("type_name", "good", "bad"),
    [
        ("string", "s", 1),
        ("number", 1.5, True),
        ("boolean", False, 0),
        ("null", None, "null"),
        ("array", [], {}),
        ("object", {}, []),
    ],
)
def test_type_operator(type_name: str, good: Any, bad: Any) -> None:
    assert matches({"$type": type_name}, good)
    assert not matches({"$type": type_name}, bad)


def test_type_null_accepts_missing_like_go_nil() -> None:
    assert matches({"$type": "null"}, MISSING)
    assert not matches({"$type": "string"}, MISSING)


def test_match_in_or() -> None:
    assert matches({"$match": "^Valid.*"}, "Validation")
    assert not matches({"$match": "^Valid.*"}, "invalid")
    assert not matches({"$match": ".*"}, 5)
    assert matches({"$in": [200, 201]}, 201)
    assert not matches({"$in": [200, 201]}, 202)
    assert matches({"$in": ["string:uuidv7", "absent"]}, MISSING)
    assert matches({"$or": ["string:nonempty", {"$exists": False}]}, MISSING)
    assert matches({"$or": ["string:nonempty", {"$exists": False}]}, "x")
    assert not matches({"$or": ["string:nonempty", {"$exists": False}]}, "")


def test_size_empty_range() -> None:
    assert matches({"$size": 3}, [1, 2, 3])
    assert not matches({"$size": 3}, [1, 2])
    assert matches({"$size": {"$gte": 1}}, [1])
    assert not matches({"$size": {"$gte": 1}}, [])
    assert not matches({"$size": 0}, MISSING)
    assert matches({"$empty": True}, None)
    assert matches({"$empty": True}, {})
    assert not matches({"$empty": True}, {"a": 1})
    assert matches({"$empty": False}, [1])
    assert matches({"range": {"min": 1000, "max": 3000}}, 2999.5)
    assert not matches({"range": {"min": 1000, "max": 3000}}, 3001)
    assert matches({"range": {"min": 1000}}, 10**6)
    assert not matches({"range": {"max": 5}}, 6)


# --------------------------------------------------------------------------- Go %v formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (42, "42"),
        (42.0, "42"),
        (3.14, "3.14"),
        (123456, "123456"),
        (1234567, "1.234567e+06"),
        (1e6, "1e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        (None, "<nil>"),
        (True, "true"),
        ([1, "a", [2]], "[1 a [2]]"),
        ({"b": 1, "a": "x"}, "map[a:x b:1]"),
    ],
)
def test_go_format(value: Any, text: str) -> None:
    assert dsl.go_format(value) == text


# --------------------------------------------------------------------------- JSONPath


DOC: dict[str, Any] = {
    "job": {"id": "j1", "args": ["a", 42], "error": None},
    "jobs": [
        {"id": "a", "state": "active", "tags": ["x"], "priority": 5},
        {"id": "b", "state": "available", "tags": ["y", "z"]},
        {"id": "c", "state": "active"},
    ],
    "matrix": [[1, 2], [3, 4]],
}


def test_jsonpath_dot_and_index() -> None:
    assert resolve_path(DOC, "$.job.id") == "j1"
    assert resolve_path(DOC, "$.job.args[1]") == 42
    assert resolve_path(DOC, "$.jobs[0].id") == "a"
    assert resolve_path(DOC, "$.matrix[1][0]") == 3
    assert resolve_path(DOC, "$") is DOC


def test_jsonpath_missing_versus_null() -> None:
    assert resolve_path(DOC, "$.job.error") is None
    assert resolve_path(DOC, "$.job.result") is MISSING
    assert resolve_path(DOC, "$.jobs[9].id") is MISSING
    assert resolve_path(DOC, "$.job[0]") is MISSING
    assert resolve_path(DOC, "$.jobs.id") is MISSING
    assert resolve_path(MISSING, "$.a") is MISSING
    assert resolve_path("text", "$.a") is MISSING


def test_jsonpath_wildcard_collects_and_skips_missing() -> None:
    assert resolve_path(DOC, "$.jobs[*].id") == ["a", "b", "c"]
    assert resolve_path(DOC, "$.jobs[*].priority") == [5]
    assert resolve_path(DOC, "$.jobs[*].tags[*]") == ["x", "y", "z"]
    assert resolve_path(DOC, "$.jobs[*].tags") == [["x"], ["y", "z"]]
    assert resolve_path(DOC, "$.job[*]") is MISSING


def test_jsonpath_filter_returns_first_match() -> None:
    assert resolve_path(DOC, "$.jobs[?(@.state=='active')].id") == "a"
    assert resolve_path(DOC, '$.jobs[?(@.state=="available")].id') == "b"
    assert resolve_path(DOC, "$.jobs[?(@.priority==5)].id") == "a"
    assert resolve_path(DOC, "$.jobs[?(@.state=='gone')].id") is MISSING


def test_body_top_level_or() -> None:
    expected: dict[str, Any] = {"$or": [{"$.jobs": "array:empty"}, {"$.jobs[0].state": "active"}]}
    assert dsl.check_body(expected, DOC) == []
    assert dsl.check_body(expected, {"jobs": []}) == []
    errors = dsl.check_body(expected, {"jobs": [{"state": "available"}]})
    assert len(errors) == 1 and "no alternative matched" in errors[0]


def test_body_failure_names_path_expected_and_actual() -> None:
    errors = dsl.check_body({"$.job.id": "string:uuidv7", "$.job.args": ["a", 42]}, DOC)
    assert len(errors) == 1
    assert "$.job.id" in errors[0] and '"j1"' in errors[0]


# --------------------------------------------------------------------------- templates


BODIES: dict[str, Any] = {
    "enqueue": {
        "job": {"id": UUID_V7, "attempt": 2, "ratio": 1.5, "whole": 3.0, "gone": None, "opts": {"b": 1, "a": 2}}
    },
    "fetch": {"jobs": [{"id": "fetched-1"}]},
}


def test_template_in_path_and_integer_rendering() -> None:
    assert (
        dsl.render_template("/ojs/v1/jobs/{{steps.enqueue.response.body.job.id}}", BODIES) == f"/ojs/v1/jobs/{UUID_V7}"
    )
    assert dsl.render_template("n={{steps.enqueue.response.body.job.attempt}}", BODIES) == "n=2"
    assert dsl.render_template("n={{steps.enqueue.response.body.job.whole}}", BODIES) == "n=3"
    assert dsl.render_template("n={{steps.enqueue.response.body.job.ratio}}", BODIES) == "n=1.5"
    assert dsl.render_template("{{steps.fetch.response.body.jobs[0].id}}!", BODIES) == "fetched-1!"
    assert dsl.render_template("o={{steps.enqueue.response.body.job.opts}}", BODIES) == 'o={"a":2,"b":1}'


def test_unresolved_templates_stay_literal() -> None:
    for text in (
        "{{steps.nope.response.body.job.id}}",
        "x {{steps.enqueue.response.body.job.missing}}",
        "{{steps.enqueue.response.body.job.gone}}",
    ):
        assert dsl.render_template(text, BODIES) == text
        assert dsl.resolve_templates(text, BODIES) == text


def test_exact_template_keeps_json_type_in_bodies_and_matchers() -> None:
    body = {
        "job_id": "{{steps.enqueue.response.body.job.id}}",
        "attempt": "{{steps.enqueue.response.body.job.attempt}}",
        "nested": ["{{steps.fetch.response.body.jobs}}", "id-{{steps.enqueue.response.body.job.attempt}}"],
        "{{steps.fetch.response.body.jobs[0].id}}": True,
    }
    resolved = dsl.resolve_templates(body, BODIES)
    assert resolved == {
        "job_id": UUID_V7,
        "attempt": 2,
        "nested": [[{"id": "fetched-1"}], "id-2"],
        "fetched-1": True,
    }
    assert BODIES["fetch"]["jobs"] is not resolved["nested"][0]


def test_whole_body_template() -> None:
    assert dsl.resolve_templates("{{steps.fetch.response.body}}", BODIES) == BODIES["fetch"]


# --------------------------------------------------------------------------- status, headers, timing


def test_status_forms() -> None:
    assert dsl.check_status(201, 201) is None
    assert dsl.check_status(201, 200) is not None
    assert dsl.check_status("number:range(400,422)", 409) is None
    assert dsl.check_status("number:range(400,422)", 500) is not None
    assert dsl.check_status("one_of:200,201,409", 409) is None
    assert dsl.check_status("one_of:200,201,409", 404) is not None
    assert dsl.check_status({"$in": [200, 409]}, 409) is None
    assert dsl.check_status({"$in": [200, 409]}, 400) is not None
    assert dsl.check_status_in([200, 201], 201) is None
    assert dsl.check_status_in([200, 201], 204) is not None


def test_headers_exact_match_eq_and_ignored_forms() -> None:
    headers = dsl.first_headers([("Content-Type", "application/openjobspec+json"), ("X-A", "1"), ("x-a", "2")])
    assert dsl.check_headers({"content-type": "application/openjobspec+json"}, headers) == []
    assert dsl.check_headers({"Content-Type": "application/json"}, headers) != []
    assert dsl.check_headers({"Content-Type": {"$match": "application/(openjobspec\\+)?json"}}, headers) == []
    assert dsl.check_headers({"Content-Type": {"$match": "^text/"}}, headers) != []
    assert dsl.check_headers({"X-A": {"$eq": "1"}}, headers) == []
    assert dsl.check_headers({"X-A": {"$eq": "2"}}, headers) != []
    assert dsl.check_headers({"X-Missing": "v"}, headers) != []
    assert dsl.check_headers({"X-Missing": {"$whatever": 1}}, headers) == []


def test_timing() -> None:
    assert dsl.check_timing({"less_than": 500}, 499) == []
    assert dsl.check_timing({"less_than": 500}, 500) != []
    assert dsl.check_timing({"greater_than": 1000}, 1000) != []
    assert dsl.check_timing({"greater_than": 1000}, 1001) == []
    assert dsl.check_timing({"approximate": 3000}, 4500) == []
    assert dsl.check_timing({"approximate": 3000}, 4501) != []
    assert dsl.check_timing({"approximate": 50}, 150) == []


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> dsl.HttpResponse:
    return dsl.HttpResponse(status=status, headers=dsl.first_headers((headers or {}).items()), raw=body, elapsed_ms=5)


def test_body_assertions_only_on_json_objects() -> None:
    assertions = {"status": 400, "body": {"$.error.code": "invalid_payload"}}
    failures, warnings = dsl.check_assertions(assertions, _response(400, b"<html>oops</html>"))
    assert failures == []
    assert warnings and "skipped" in warnings[0]
    failures, _ = dsl.check_assertions(assertions, _response(400, b'{"error":{"code":"other"}}'))
    assert len(failures) == 1 and "invalid_payload" in failures[0]


def test_body_absent_and_contains() -> None:
    resp = _response(200, b'{"job":{"state":"completed","error":null,"result":1}}')
    assertions = {
        "body_absent": ["$.job.error", "$.job.started_at", "$.job.result"],
        "body_contains": ['"state":"completed"', "nope"],
    }
    failures, _ = dsl.check_assertions(assertions, resp)
    assert len(failures) == 2
    assert "$.job.result" in failures[0]
    assert "nope" in failures[1]


# --------------------------------------------------------------------------- steps and cases


def _step(step_id: str, **extra: Any) -> dsl.Step:
    raw: dict[str, Any] = {"id": step_id, "action": "POST", "path": "/x", **extra}
    return dsl._parse_step(raw, "test")


def test_parallel_with_groups_steps() -> None:
    steps = [
        _step("s1"),
        _step("s2", parallel_with="s3"),
        _step("s3", parallel_with="s2"),
        _step("s4"),
        _step("s5", parallel_with=["s7"]),
        _step("s6"),
        _step("s7"),
    ]
    groups = [[s.id for s in g] for g in dsl.group_steps(steps)]
    assert groups == [["s1"], ["s2", "s3"], ["s4"], ["s5", "s7"], ["s6"]]


def test_prepare_request_body_and_content_type() -> None:
    req = dsl.prepare_request(_step("a", body={"b": 2.0, "a": "{{steps.fetch.response.body.jobs[0].id}}"}), BODIES)
    assert req.data == b'{"a":"fetched-1","b":2}'
    assert req.headers == {"Content-Type": dsl.OJS_MEDIA_TYPE}
    assert req.method == "POST"

    own = dsl.prepare_request(_step("b", body={}, headers={"content-type": "application/json"}), BODIES)
    assert own.headers == {"content-type": "application/json"}

    raw_only = dsl.prepare_request(_step("c", raw_body="{ invalid json }", headers={"Content-Type": "x"}), BODIES)
    assert raw_only.data is None


def test_load_case_ignores_unknown_keys(tmp_path: Path) -> None:
    case_file = tmp_path / "c.json"
    case_file.write_text(
        json.dumps(
            {
                "test_id": "T-1",
                "name": "c",
                "level": 0,
                "setup": {"steps": [{"id": "s0", "action": "WAIT", "duration_ms": 10}]},
                "steps": [{"id": "s1", "action": "GET", "path": "/p", "captures": {"x": "$.y"}, "body_comment": "c"}],
            }
        )
    )
    case = dsl.load_case(case_file)
    assert case.test_id == "T-1"
    assert [s.id for s in case.setup] == ["s0"]
    assert case.setup[0].duration_ms == 10
    assert case.steps[0].body is MISSING
    assert case.teardown == ()


def test_discover_sorts_by_test_id_and_keeps_duplicates(tmp_path: Path) -> None:
    for rel, test_id in (
        ("b/z.json", "L0-A-002"),
        ("a/y.json", "L0-A-010"),
        ("c/x.json", "L0-A-002"),
        ("w.json", "L0-A-001"),
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"test_id": test_id, "steps": []}))
    found = [p.relative_to(tmp_path).as_posix() for p in dsl.discover(tmp_path)]
    assert found == ["w.json", "b/z.json", "c/x.json", "a/y.json"]


def test_discover_missing_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        dsl.discover(tmp_path / "nope")


def test_conformance_root_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(dsl.CONFORMANCE_DIR_ENV, str(tmp_path))
    assert dsl.conformance_root() == tmp_path.resolve()
    monkeypatch.delenv(dsl.CONFORMANCE_DIR_ENV)
    repo = Path(dsl.__file__).resolve().parents[2]
    assert dsl.conformance_root() == (repo.parent / "shared" / "ojs-conformance").resolve()


def test_missing_suite_yields_failing_param(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(dsl.CONFORMANCE_DIR_ENV, str(tmp_path))
    params = dsl.make_level_params("level-0-core")
    assert len(params) == 1
    value = params[0].values[0]
    assert isinstance(value, dsl.MissingSuite)
    with pytest.raises(pytest.fail.Exception, match="OJS_CONFORMANCE_DIR"):
        dsl.load_param_case(value)
