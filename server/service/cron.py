"""Cron entries: registration, listing, and firing due occurrences exactly once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson
from opentelemetry.trace import Span, SpanKind

from server.domain.clock import SYSTEM_CLOCK, Clock, format_rfc3339_ms
from server.domain.cron import next_fire_ms, parse_cron
from server.domain.cron_entry import CronEntry, firing_envelope, parse_registration
from server.domain.errors import OJSError, invalid, not_found
from server.domain.validation import parse_enqueue
from server.observability import tracing
from server.store.facade import Store

log = logging.getLogger(__name__)

# Due entries handled per scheduler step.
FIRE_BATCH = 100


class CronService:
    def __init__(self, store: Store, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._store = store

    async def register(self, body: Any) -> tuple[bool, CronEntry]:
        """Create or update (by name); returns whether it was created."""
        now = self._clock.now_ms()
        registration = parse_registration(body, now_ms=now)
        schedule = registration.schedule
        next_run = next_fire_ms(schedule, now) if registration.enabled else None
        fields: dict[str, str | bytes | int] = {
            "name": registration.name,
            "expression": schedule.expression,
            "timezone": schedule.timezone,
            "overlap_policy": registration.overlap_policy,
            "enabled": "1" if registration.enabled else "0",
            "template": orjson.dumps(registration.template),
            "description": registration.description,
        }
        return await self._store.cron.register_cron(registration.name, fields, next_run_ms=next_run, now_ms=now)

    async def unregister(self, name: str) -> None:
        if not name:
            raise invalid("name is required", field="name")
        if not await self._store.cron.unregister_cron(name):
            raise not_found("cron entry", name)

    async def get(self, name: str) -> CronEntry:
        entry = await self._store.cron.get_cron(name) if name else None
        if entry is None:
            raise not_found("cron entry", name)
        return entry

    async def entries(self) -> list[CronEntry]:
        return await self._store.cron.list_crons()

    async def fire_due(self) -> int:
        """Fire every due occurrence; safe to run in any number of processes at once.

        After downtime an entry fires once for all the occurrences it missed,
        then continues on schedule from now.
        """
        now = self._clock.now_ms()
        fired = 0
        for name, occurrence in await self._store.cron.due_crons(now_ms=now, limit=FIRE_BATCH):
            entry = await self._store.cron.get_cron(name)
            if entry is None or not entry.enabled:
                continue
            with _trigger_span(name, occurrence) as span:
                try:
                    schedule = parse_cron(entry.expression, entry.timezone)
                    envelope = firing_envelope(
                        orjson.loads(entry.template_json),
                        cron_name=name,
                        occurrence_iso=format_rfc3339_ms(occurrence),
                    )
                    if span is not None:
                        tracing.inject_into_meta(envelope)
                    job = parse_enqueue(envelope, now_ms=now)
                except OJSError as exc:
                    log.error("cron entry %s cannot fire: %s", name, exc.message)
                    continue
                outcome, job_id = await self._store.cron.fire_cron(
                    name, occurrence_ms=occurrence, next_run_ms=next_fire_ms(schedule, max(occurrence, now)), job=job
                )
                if span is not None:
                    span.set_attributes({"ojs.cron.outcome": outcome, "ojs.job.id": job_id, "ojs.job.type": job.type})
                    span.set_attributes({"ojs.job.queue": job.queue, "messaging.destination.name": job.queue})
            if outcome == "fired":
                fired += 1
            elif outcome == "skipped":
                log.info("cron entry %s skipped an occurrence: job %s is still unfinished", name, job_id)
        return fired


@contextlib.contextmanager
def _trigger_span(name: str, occurrence_ms: int) -> Iterator[Span | None]:
    """`ojs.cron.trigger` while tracing is on: current while the job is built, so the job carries its context."""
    tracer = tracing.TRACER
    if tracer is None:
        yield None
        return
    attributes: dict[str, str | int] = {
        **tracing.BASE_ATTRIBUTES,
        "ojs.cron.name": name,
        "ojs.cron.occurrence_ms": occurrence_ms,
    }
    with tracer.start_as_current_span("ojs.cron.trigger", kind=SpanKind.INTERNAL, attributes=attributes) as span:
        yield span
