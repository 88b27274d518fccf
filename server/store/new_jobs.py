"""A new job as the insert scripts read it (job_from_list.lua), and the keys its insert touches."""

from __future__ import annotations

from server.domain.job import NewJob
from server.domain.states import JobState
from server.store import codec
from server.store.keys import KeySchema


def insert_keys(keys: KeySchema, job: NewJob) -> list[str]:
    return [
        keys.job(job.id),
        keys.available(job.queue),
        keys.delayed(job.queue),
        keys.queues,
        keys.sequence,
        keys.events,
        keys.expiring,
    ]


def insert_entry(job: NewJob) -> list[str]:
    """id, type, queue, priority, state, due, expires, rate, concurrency, the unique policy, then the hash fields."""
    return [*_header(job, job.initial_state), *_unique_args(job), *codec.new_job_fields(job)]


def _header(job: NewJob, state: JobState) -> list[str]:
    return [
        job.id,
        job.type,
        job.queue,
        str(job.priority),
        state.value,
        str(job.scheduled_at_ms) if state is JobState.SCHEDULED else "",
        "" if job.expires_at_ms is None else str(job.expires_at_ms),
        "" if job.rate_per_second is None else str(job.rate_per_second),
        "" if job.concurrency is None else str(job.concurrency),
    ]


def member_entry(job: NewJob, state: JobState, fields: list[str]) -> dict[str, object]:
    """A workflow member job as wf_create.lua reads it: the insert header by name, and its hash fields."""
    header = _header(job, state)
    names = ("id", "type", "queue", "priority", "state", "due", "expires", "rate", "concurrency")
    return {**dict(zip(names, header, strict=True)), "fields": fields}


def _unique_args(job: NewJob) -> list[str]:
    policy = job.unique_policy
    if policy is None or job.unique_fingerprint is None:
        return ["", "", "", ""]
    return [
        job.unique_fingerprint,
        policy.on_conflict,
        ",".join(state.value for state in policy.states),
        "" if policy.period_ms is None else str(policy.period_ms),
    ]
