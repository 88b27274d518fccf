"""How scripts are assembled from their includes, and the statuses both sides agree on."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from server.domain.errors import ErrorCode, OJSError
from server.store.errors import refusal
from server.store.scripts import (
    SCRIPT_NAMES,
    ScriptSourceError,
    declared_includes,
    program,
    read_source,
    resolve_includes,
)
from server.store.status import ScriptStatus, status_of

LUA = resources.files("server.store").joinpath("lua")
INCLUDES = sorted(path.name[:-4] for path in LUA.joinpath("include").iterdir() if path.name.endswith(".lua"))


def _include(name: str) -> str:
    return LUA.joinpath(f"include/{name}.lua").read_text()


def _code(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("--"))


def _defined(source: str) -> set[str]:
    code = _code(source)
    return set(re.findall(r"^local function (\w+)", code, re.M)) | set(re.findall(r"^local (\w+) = ", code, re.M))


def test_both_sides_define_the_same_statuses() -> None:
    table = re.findall(r"^\s*(\w+) = '(\w+)',?$", _include("status"), re.M)
    assert table, "no statuses found in status.lua"
    assert {name: value for name, value in table} == {s.value: s.value for s in ScriptStatus}


def test_an_unknown_status_is_an_internal_error_not_a_conflict() -> None:
    with pytest.raises(OJSError) as caught:
        status_of(b"maybe", "cancel")
    assert caught.value.code is ErrorCode.BACKEND_ERROR
    # A status the script may send, in a reply where it may not.
    assert (
        refusal("cancel", [b"fired", b"x"], "job-1", expected="active", action="cancel").code is ErrorCode.BACKEND_ERROR
    )
    assert refusal("cancel", [b"conflict", b"completed"], "job-1", expected="active", action="cancel").code is (
        ErrorCode.CONFLICT
    )


@pytest.mark.parametrize("name", [*SCRIPT_NAMES, *(f"include/{name}" for name in INCLUDES)])
def test_each_source_declares_exactly_the_includes_it_calls(name: str) -> None:
    source = LUA.joinpath(f"{name}.lua").read_text()
    own = _defined(source)
    code = _code(source)
    used = {
        include
        for include in INCLUDES
        if include != name.removeprefix("include/")
        and any(re.search(rf"(?<![\w.]){symbol}\b", code) for symbol in _defined(_include(include)) - own)
    }
    assert sorted(declared_includes(source)) == sorted(used)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_a_program_defines_each_include_once_before_its_use(name: str) -> None:
    text = program(name)
    definitions = re.findall(r"^local function (\w+)", text, re.M)
    assert len(definitions) == len(set(definitions))
    assert "flush_stats()" in text
    for include in declared_includes(LUA.joinpath(f"{name}.lua").read_text()):
        assert re.search(rf"^local (function )?{include}\b", text, re.M) or include in ("status", "stats")


def test_includes_resolve_transitively_once_each_dependencies_first() -> None:
    sources = {"a": "-- include: b, c\n", "b": "-- include: c\n", "c": "-- leaf\n", "d": "-- include: c\n"}
    assert resolve_includes(["a", "d"], sources.__getitem__) == ["c", "b", "a", "d"]


def test_an_include_line_counts_only_in_the_leading_comments() -> None:
    assert declared_includes("-- x: y\n-- include: a, b\n-- include: c\nlocal z = 1\n-- include: d\n") == [
        "a",
        "b",
        "c",
    ]


def test_an_include_cycle_is_rejected_with_its_path() -> None:
    sources = {"a": "-- include: b\n", "b": "-- include: c\n", "c": "-- include: a\n"}
    with pytest.raises(ScriptSourceError, match="include cycle: a -> b -> c -> a"):
        resolve_includes(["a"], sources.__getitem__)


def test_an_unknown_include_is_named() -> None:
    with pytest.raises(ScriptSourceError, match="no Lua include named 'nope'"):
        program("promote", lambda name: "-- include: nope\n" if name == "stats" else read_source(name, include=True))
