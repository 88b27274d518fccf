"""Cron entries: validating a registration in either wire dialect, and the stored form."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from server.domain.cron import CronSchedule, parse_cron
from server.domain.errors import OJSError, invalid
from server.domain.job import TOP_LEVEL_OPTION_FIELDS
from server.domain.validation import parse_enqueue

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-\.]*$")
MAX_NAME_LENGTH = 255
# "skip": no new job while the previous firing's job is unfinished (the default);
# "allow": fire regardless.
OVERLAP_POLICIES = ("skip", "allow")
# Template fields a firing copies into the job envelope.
_TEMPLATE_FIELDS = ("type", "args", "meta", "options", "schema")
# Job options a registration without job_template may give at its top level (the reference server's
# dialect: {name, schedule, timezone, type, queue}); they go into the template's options.
_TOP_LEVEL_OPTIONS = (*TOP_LEVEL_OPTION_FIELDS, "unique", "max_attempts")


@dataclasses.dataclass(frozen=True)
class CronRegistration:
    name: str
    schedule: CronSchedule
    overlap_policy: str
    enabled: bool
    # The job envelope each firing enqueues: {type, args, meta?, options?, schema?}.
    template: dict[str, Any]
    description: str


@dataclasses.dataclass(frozen=True)
class CronEntry:
    """A registered entry as stored, with its run history."""

    name: str
    expression: str
    timezone: str
    overlap_policy: str
    enabled: bool
    template_json: bytes
    description: str
    created_at_ms: int
    updated_at_ms: int
    next_run_at_ms: int | None
    last_run_at_ms: int | None
    run_count: int
    last_job_id: str


def _string(body: Mapping[str, Any], key: str, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(f"{key} must be a string", field=key)
    return value


def _flat_template(body: Mapping[str, Any]) -> dict[str, Any]:
    """The job of a registration that has it at the top level; options set there win over top-level ones."""
    template = {key: body[key] for key in _TEMPLATE_FIELDS if key in body}
    top_level = {key: body[key] for key in _TOP_LEVEL_OPTIONS if body.get(key) is not None}
    if top_level:
        options = template.get("options")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise invalid("options must be a JSON object", field="options")
        template["options"] = {**top_level, **options}
    return template


def parse_registration(body: Any, *, now_ms: int) -> CronRegistration:
    """Accepts {name, expression, job_template, ...}, {name, cron, type, args, options, ...} and
    {name, schedule, type, queue, ...} (job fields at the top level, args optional)."""
    if not isinstance(body, Mapping):
        raise invalid("the cron registration must be a JSON object", field="body")
    name = _string(body, "name")
    if not name:
        raise invalid("name is required", field="name")
    if len(name) > MAX_NAME_LENGTH or NAME_PATTERN.match(name) is None:
        raise invalid(
            f"name must match {NAME_PATTERN.pattern} and be at most {MAX_NAME_LENGTH} characters", field="name"
        )

    expression = _string(body, "expression") or _string(body, "cron") or _string(body, "schedule")
    if not expression:
        raise invalid("expression is required", field="expression")
    schedule = parse_cron(expression, _string(body, "timezone", "UTC") or "UTC")

    overlap = _string(body, "overlap_policy", "skip") or "skip"
    if overlap not in OVERLAP_POLICIES:
        raise invalid(f"overlap_policy must be one of {', '.join(OVERLAP_POLICIES)}", field="overlap_policy")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise invalid("enabled must be a boolean", field="enabled")

    raw_template = body.get("job_template")
    if raw_template is None:
        raw_template = _flat_template(body)
    if not isinstance(raw_template, Mapping):
        raise invalid("job_template must be a JSON object", field="job_template")
    template = {key: raw_template[key] for key in _TEMPLATE_FIELDS if raw_template.get(key) is not None}
    template.setdefault("args", [])
    try:
        # Validated now, so a bad template fails the registration, not every firing.
        parse_enqueue(template, now_ms=now_ms)
    except OJSError as exc:
        field = exc.details.get("field")
        exc.message = f"job_template: {exc.message}"
        if isinstance(field, str):
            exc.details["field"] = f"job_template.{field}"
        raise
    return CronRegistration(
        name=name,
        schedule=schedule,
        overlap_policy=overlap,
        enabled=enabled,
        template=template,
        description=_string(body, "description"),
    )


def firing_envelope(template: Mapping[str, Any], *, cron_name: str, occurrence_iso: str) -> dict[str, Any]:
    """The job envelope of one firing: the template, tagged with the entry and the occurrence."""
    envelope = dict(template)
    meta = dict(envelope.get("meta") or {})
    meta["cron_name"] = cron_name
    meta["cron_triggered_at"] = occurrence_iso
    envelope["meta"] = meta
    return envelope
