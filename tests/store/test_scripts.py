"""How scripts are assembled from their includes, and the statuses both sides agree on."""

from __future__ import annotations

import itertools
import re
from importlib import resources

import pytest
from redis.asyncio import Redis

from server.domain.errors import ErrorCode, OJSError
from server.domain.states import JobState
from server.store.errors import refusal
from server.store.facade import Store
from server.store.keys import KeySchema
from server.store.scripts import (
    SCRIPT_NAMES,
    ScriptSourceError,
    declared_includes,
    library,
    library_names,
    program,
    read_source,
    resolve_includes,
)
from server.store.status import ScriptStatus, status_of
from tests.store.helpers import body, new_job, stored

_users = itertools.count()

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


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_a_library_resets_the_per_call_state_of_its_includes_first(name: str) -> None:
    function, text = library(name)
    assert text.startswith(f"#!lua name={function}\n") and f"redis.register_function('{function}'," in text
    defined = set(re.findall(r"^local function (reset_\w+)\(\)", text, re.M))
    assert {"reset_stats", "reset_events"} <= defined
    wrapper = text[text.index("redis.register_function(") :]
    assert all(f"  {reset}()" in wrapper for reset in defined)
    assert wrapper.index("run_script(keys, args)") > max(wrapper.index(f"{reset}()") for reset in defined)


def test_a_library_is_named_after_its_source() -> None:
    edited = library("promote", lambda include: read_source(include, include=True) + "\n-- edited")[0]
    assert edited != library("promote")[0]
    assert edited.startswith("ojs_promote_")


async def test_loading_the_scripts_deletes_the_libraries_of_other_versions(store: Store, store_redis: Redis) -> None:
    if int((await store_redis.info("server"))["redis_version"].split(".")[0]) < 7:
        pytest.skip("Redis 6.2 has no functions")
    stale, foreign = "ojs_promote_0123456789abcdef", "ojs_someone_else"
    for name in (stale, foreign):
        await store_redis.function_load(
            f"#!lua name={name}\nredis.register_function('{name}', function() return 1 end)", replace=True
        )
    await store.load_scripts()
    names = set(await library_names(store_redis, "ojs_"))
    assert stale not in names and foreign in names
    assert {library(name)[0] for name in SCRIPT_NAMES} <= names
    await store_redis.function_delete(foreign)


async def test_a_server_that_refuses_function_load_runs_the_scripts_by_evalsha(
    store_redis: Redis, store_redis_url: str
) -> None:
    if int((await store_redis.info("server"))["redis_version"].split(".")[0]) < 7:
        pytest.skip("Redis 6.2 has no functions")
    # An ACL user as a managed Redis may hand out: everything but the FUNCTION command.
    user = f"nofunctions{next(_users)}"
    await store_redis.acl_setuser(
        user, enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all", "-function"]
    )
    limited = Redis.from_url(store_redis_url, username=user, password="")
    try:
        store = Store(limited, KeySchema(f"nofn{next(_users)}"), events_maxlen=100)
        await store.load_scripts()
        job = new_job(body())
        await store.jobs.enqueue(job)
        assert (await stored(store, job.id)).state is JobState.AVAILABLE
    finally:
        await limited.aclose()
        await store_redis.acl_deluser(user)
