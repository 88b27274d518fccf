"""The cron object C, in the field names of both cron dialects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from ojs.v1 import service_pb2

from gateway.convert.common import loads_exact, struct_to_py, value_to_py
from ojs_json.options import enqueue_options_to_json
from ojs_json.scalars import timestamp


def _cron_template(entry: service_pb2.CronEntry) -> tuple[Any, Mapping[str, Any]]:
    """The job template to render and its parsed form.

    The server's `job_template_json` is embedded as sent; a template it does not
    carry (or one that is not a JSON object) is assembled from the official fields.
    """
    raw = entry.job_template_json
    if raw:
        try:
            parsed = loads_exact(raw)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return orjson.Fragment(raw), parsed
    template: dict[str, Any] = {"type": entry.type, "args": [value_to_py(value) for value in entry.args]}
    if entry.HasField("options"):
        options, meta = enqueue_options_to_json(entry.options, meta_to_json=struct_to_py)
        if meta is not None:
            template["meta"] = meta
        template["options"] = options
    return template, template


_CronTimestamp = Literal["next_run_at", "last_run_at", "created_at", "updated_at"]
_CRON_TIMESTAMPS: tuple[_CronTimestamp, ...] = ("next_run_at", "last_run_at", "created_at", "updated_at")


def cron_to_json(entry: service_pb2.CronEntry) -> dict[str, Any]:
    """The cron object C, carrying the field names of both cron dialects."""
    template, parsed = _cron_template(entry)
    out: dict[str, Any] = {
        "name": entry.name,
        "expression": entry.cron,
        "cron": entry.cron,
        "timezone": entry.timezone,
        "overlap_policy": entry.overlap_policy,
        "enabled": entry.enabled,
        "job_template": template,
        "type": parsed.get("type", entry.type),
        "args": parsed.get("args", []),
        "options": parsed.get("options") or {},
        "run_count": entry.run_count,
    }
    # Unset times are null, not absent: a disabled entry has no next run, a new one no last run.
    for name in _CRON_TIMESTAMPS:
        out[name] = timestamp(getattr(entry, name)) if entry.HasField(name) else None
    if entry.last_job_id:
        out["last_job_id"] = entry.last_job_id
    if entry.description:
        out["description"] = entry.description
    return out


def render_crons(response: service_pb2.ListCronResponse) -> dict[str, Any]:
    crons = [cron_to_json(entry) for entry in response.entries]
    count = len(crons)
    return {
        "crons": crons,
        "cron_jobs": crons,
        "count": count,
        "pagination": {"total": count, "limit": count, "has_more": False},
    }
