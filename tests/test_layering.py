"""Imports point one way (ARCHITECTURE.md §3); this reads every module's imports and checks the rules."""

from __future__ import annotations

import ast
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Rule:
    layer: str
    # Modules (and their submodules) the layer must not import.
    forbidden: tuple[str, ...] = ()
    # When set, only the standard library, the layer itself and `allowed` may be imported.
    stdlib_only: bool = False
    allowed: tuple[str, ...] = ()


RULES = (
    Rule("server.domain", stdlib_only=True),
    # Values shared by the store, the services and rpc: pure like the domain they are built from.
    Rule("server.model", stdlib_only=True, allowed=("server.domain",)),
    Rule(
        "server.store",
        forbidden=("server.service", "server.rpc", "server.loops", "server.app", "gateway", "grpc", "ojs"),
    ),
    Rule(
        "server.service",
        forbidden=("server.rpc", "server.loops", "server.app", "gateway", "grpc", "ojs", "google.protobuf"),
    ),
    Rule("server.loops", forbidden=("server.rpc", "server.app", "gateway")),
    # The servicer translates messages and calls services; it never reaches the store or Redis.
    Rule("server.rpc", forbidden=("server.store", "redis", "server.loops", "server.app")),
    Rule("gateway", forbidden=("server",)),
    # Shared by the gateway and the gRPC adapter: protobuf and the stdlib only.
    Rule("ojs_json", forbidden=("server", "gateway", "grpc", "aiohttp", "redis")),
)


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _resolve_relative(module_name: str, is_package: bool, level: int, target: str | None) -> str:
    parts = module_name.split(".")
    # For a module, level 1 is its package; for a package's __init__, the package itself.
    base = parts if is_package else parts[:-1]
    if level - 1 > len(base) - 1:
        raise ValueError(f"relative import beyond the top-level package in {module_name}")
    anchor = base[: len(base) - (level - 1)]
    return ".".join([*anchor, target] if target else anchor)


def imported_modules(source: str, module_name: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import, including `importlib.import_module("literal")`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module_name, is_package, node.level, node.module)
                if node.level
                else (node.module or "")
            )
            yield node.lineno, base
            # `from server import rpc` imports server.rpc.
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            yield node.lineno, node.args[0].value


def violations(source: str, module_name: str, *, is_package: bool = False) -> list[str]:
    found: list[str] = []
    for rule in RULES:
        if not _is_within(module_name, rule.layer):
            continue
        for line, imported in imported_modules(source, module_name, is_package=is_package):
            if _is_within(imported, rule.layer) or any(_is_within(imported, a) for a in rule.allowed):
                continue
            top = imported.split(".")[0]
            if rule.stdlib_only and top not in sys.stdlib_module_names:
                found.append(f"{module_name}:{line} imports {imported} ({rule.layer} may import only the stdlib)")
            bad = next((f for f in rule.forbidden if _is_within(imported, f)), None)
            if bad is not None:
                found.append(f"{module_name}:{line} imports {imported} ({rule.layer} must not import {bad})")
    return found


def _modules() -> Iterator[tuple[Path, str, bool]]:
    for top in ("server", "gateway", "ojs_json"):
        for path in sorted((REPO / top).rglob("*.py")):
            relative = path.relative_to(REPO).with_suffix("")
            is_package = relative.name == "__init__"
            parts = relative.parts[:-1] if is_package else relative.parts
            yield path, ".".join(parts), is_package


def test_every_module_respects_the_layering() -> None:
    modules = list(_modules())
    layers_seen = {rule.layer for rule in RULES for _, name, _ in modules if _is_within(name, rule.layer)}
    # Guards against the walk silently finding nothing.
    assert {"server.domain", "server.model", "server.rpc", "gateway", "ojs_json"} <= layers_seen
    problems = [
        problem
        for path, name, is_package in modules
        for problem in violations(path.read_text(encoding="utf-8"), name, is_package=is_package)
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("server.domain.job", "import redis\n", "may import only the stdlib"),
        ("server.domain.job", "from orjson import dumps\n", "may import only the stdlib"),
        ("server.domain.job", "from google.protobuf import struct_pb2\n", "may import only the stdlib"),
        ("server.domain.job", "from ..store import keys\n", "may import only the stdlib"),
        ("server.domain.job", "from server.config import Settings\n", "may import only the stdlib"),
        ("server.domain.job", "import importlib\nimportlib.import_module('grpc')\n", "may import only the stdlib"),
        ("server.store.jobs", "from server.service import jobs\n", "must not import server.service"),
        ("server.store.jobs", "from server import rpc\n", "must not import server.rpc"),
        ("server.store.jobs", "import ojs.v1.job_pb2\n", "must not import ojs"),
        ("server.model.records", "import redis\n", "may import only the stdlib"),
        ("server.model.records", "from server.store.keys import KeySchema\n", "may import only the stdlib"),
        ("server.model.records", "from ..service.jobs import JobService\n", "may import only the stdlib"),
        ("server.rpc.servicer", "from server.store.facade import Store\n", "must not import server.store"),
        ("server.rpc.convert", "from ..store import codec\n", "must not import server.store"),
        ("server.rpc.servicer", "import redis.asyncio\n", "must not import redis"),
        ("server.rpc.servicer", "from redis import exceptions\n", "must not import redis"),
        ("server.service.jobs", "from ..rpc.convert import to_proto\n", "must not import server.rpc"),
        ("server.service.jobs", "import grpc\n", "must not import grpc"),
        ("server.service.jobs", "from ojs.v1 import job_pb2\n", "must not import ojs"),
        ("server.service", "from .. import rpc\n", "must not import server.rpc"),
        ("server.loops.reaper", "from server.rpc.servicer import X\n", "must not import server.rpc"),
        ("server.loops.reaper", "import gateway.app\n", "must not import gateway"),
        ("gateway.routes", "from server.domain.errors import ErrorCode\n", "must not import server"),
        ("gateway.routes", "import server\n", "must not import server"),
    ],
)
def test_checker_finds_violations(module: str, source: str, expected: str) -> None:
    is_package = module == "server.service"
    problems = violations(source, module, is_package=is_package)
    assert problems, f"{module}: {source!r} was accepted"
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("server.domain.job", "from __future__ import annotations\nimport dataclasses, enum\nfrom typing import Any\n"),
        ("server.domain.job", "from .errors import OJSError\nfrom server.domain.ids import new_id\n"),
        ("server.store.jobs", "import redis.asyncio\nfrom ..domain.job import Job\nimport orjson\n"),
        ("server.service.jobs", "from server.store.facade import Store\nfrom server.domain import states\n"),
        (
            "server.model.records",
            "import dataclasses\nfrom server.domain.job import StoredJob\nfrom ..domain import errors\n",
        ),
        (
            "server.rpc.convert",
            "from server.model.records import Settlement\nfrom server.service.jobs import JobService\n",
        ),
        ("server.loops.reaper", "from server.service.jobs import JobService\n"),
        ("gateway.routes", "import grpc\nfrom aiohttp import web\nfrom ojs.v1 import service_pb2\n"),
        ("gateway.errors", "from google.rpc import error_details_pb2\nfrom .convert import x\n"),
        ("server.rpc.servicer", "import grpc\nfrom ojs.v1 import service_pb2_grpc\nfrom ..service import jobs\n"),
    ],
)
def test_checker_accepts_allowed_imports(module: str, source: str) -> None:
    assert violations(source, module) == []


def test_relative_imports_resolve() -> None:
    assert _resolve_relative("server.store.jobs", False, 2, "domain.job") == "server.domain.job"
    assert _resolve_relative("server.store", True, 1, "keys") == "server.store.keys"
    assert _resolve_relative("server.store", True, 2, None) == "server"
