"""Scalars, JSON parsing and request-field checks shared by every resource's conversions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import orjson
from google.protobuf import struct_pb2, timestamp_pb2
from multidict import MultiMapping

from gateway.errors import invalid_payload, invalid_request
from ojs_json.scalars import timestamp

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def enum_names(items: Sequence[tuple[str, int]], prefix: str) -> dict[int, str]:
    return {number: name.removeprefix(prefix).lower() for name, number in items}


T = TypeVar("T")


def now() -> str:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return timestamp(ts)


def value_to_py(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        # Value holds doubles; show whole numbers as JSON integers, as they were most likely sent.
        if number.is_integer() and abs(number) <= 2**53:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_py(value.struct_value)
    if kind == "list_value":
        return [value_to_py(item) for item in value.list_value.values]
    return None


def struct_to_py(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: value_to_py(value) for key, value in struct.fields.items()}


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(data: bytes | str) -> Any:
    """Parse JSON keeping every number's original text (as orjson.Fragment).

    Slower than orjson.loads; used where numbers must survive a re-encode
    unchanged (integers beyond 64 bits, float spellings).
    """
    return json.loads(data, parse_int=orjson.Fragment, parse_float=orjson.Fragment, parse_constant=_reject_constant)


# Numbers orjson.loads could round (long digit runs, exponents); only then pay for loads_exact.
_INEXACT_NUMBER = re.compile(rb"\d{16,}|\d[eE][-+]?\d")


def encode_value(value: Any, raw_body: bytes, key: str) -> bytes:
    """JSON for `value` (found under `key` of the body object), numbers kept as sent."""
    try:
        if _INEXACT_NUMBER.search(raw_body):
            exact = loads_exact(raw_body)
            if isinstance(exact, dict) and key in exact:
                return orjson.dumps(exact[key])
        return orjson.dumps(value)
    except (TypeError, ValueError, RecursionError):
        raise invalid_payload(f"'{key}' cannot be represented as JSON text") from None


def exact_value(raw_body: bytes, key: str) -> Any:
    """body[key] with numbers kept as sent, when the body has numbers orjson could round; else None."""
    if not _INEXACT_NUMBER.search(raw_body):
        return None
    try:
        exact = loads_exact(raw_body)
    except (ValueError, RecursionError):
        raise invalid_payload("request body is not valid JSON") from None
    return exact.get(key) if isinstance(exact, dict) else None


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or 400 invalid_payload."""
    if not body.strip():
        raise invalid_payload("request body is empty; expected a JSON object")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses some valid JSON (numbers beyond double range); judge by the grammar alone.
        try:
            parsed = loads_exact(body)
        except (ValueError, RecursionError):
            raise invalid_payload(f"request body is not valid JSON: {exc}") from None
        # The grammar allows "\ud800", but a lone surrogate is no Unicode text: nothing could store or send it.
        try:
            orjson.dumps(parsed)
        except TypeError:
            raise invalid_payload("request body holds a string that is not valid Unicode (a lone surrogate)") from None
    if not isinstance(parsed, dict):
        raise invalid_payload("request body must be a JSON object")
    return parsed


def _typed(body: Mapping[str, Any], key: str, kind: type[T], noun: str, where: str) -> T | None:
    """body[key] when present and of `kind`; None when absent or null; else 400 naming the field."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise invalid_request(f"'{where}{key}' must be {noun}", field=f"{where}{key}")
    return value


def string_field(body: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
    return _typed(body, key, str, "a string", where)


def boolean_field(body: Mapping[str, Any], key: str, *, where: str = "") -> bool | None:
    return _typed(body, key, bool, "a boolean", where)


def bounded_integer(value: Any, name: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_request(f"'{name}' must be an integer", field=name)
    if not bounds[0] <= value <= bounds[1]:
        raise invalid_request(f"'{name}' is out of range", field=name)
    return value


def optional_integer(body: Mapping[str, Any], key: str, bounds: tuple[int, int]) -> int | None:
    value = body.get(key)
    return None if value is None else bounded_integer(value, key, bounds)


def string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_request(f"'{name}' must be an array of strings", field=name)
    return value


def query_values(query: MultiMapping[str], key: str) -> list[str]:
    """Values of a list parameter, given as repeats (?a=x&a=y) and/or comma-separated (?a=x,y)."""
    values: list[str] = []
    for raw in query.getall(key, ()):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def query_int(query: Mapping[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid_request(f"query parameter '{key}' must be an integer", field=key) from None
    return bounded_integer(value, key, INT32)


def pagination(total: int, limit: int, next_cursor: str) -> dict[str, Any]:
    pagination: dict[str, Any] = {"total": total, "limit": limit, "has_more": bool(next_cursor)}
    if next_cursor:
        pagination["next_cursor"] = next_cursor
    return pagination
