"""The cron object C, in the field names of both cron dialects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from ojs.v1 import job_pb2, service_pb2

from gateway.convert.common import duration_ms, loads_exact, struct_to_py, timestamp, value_to_py
from ojs_json.policies import iso_duration, retry_policy_to_json, unique_policy_to_json


def enqueue_options_to_json(options: job_pb2.EnqueueOptions) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Official enqueue options as the JSON `options` object, plus the job `meta` they carry (if any)."""
    out: dict[str, Any] = {}
    if options.queue:
        out["queue"] = options.queue
    if options.priority:
        out["priority"] = options.priority
    if options.HasField("delay_until"):
        out["delay_until"] = timestamp(options.delay_until)
    if options.HasField("timeout"):
        out["timeout_ms"] = duration_ms(options.timeout)
    if options.HasField("visibility_timeout"):
        out["visibility_timeout_ms"] = duration_ms(options.visibility_timeout)
    if options.HasField("ttl"):
        out["expires_at"] = "+" + iso_duration(options.ttl)
    if options.tags:
        out["tags"] = list(options.tags)
    if options.max_attempts:
        out["max_attempts"] = options.max_attempts
    if options.HasField("retry"):
        out["retry"] = retry_policy_to_json(options.retry)
    if options.HasField("unique"):
        out["unique"] = unique_policy_to_json(options.unique)
    if options.pending:
        out["pending"] = True
    meta = struct_to_py(options.meta) if options.HasField("meta") else None
    if options.trace_id:
        meta = {**(meta or {}), "trace_id": options.trace_id}
    return out, meta


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
        options, meta = enqueue_options_to_json(entry.options)
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
