"""The eight job states and the transitions between them (ojs-core §6)."""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    RETRYABLE = "retryable"
    CANCELLED = "cancelled"
    DISCARDED = "discarded"


TERMINAL = frozenset({JobState.COMPLETED, JobState.CANCELLED, JobState.DISCARDED})

# Legal transitions. The Lua scripts enforce them atomically; this table is
# their specification and the source of the conflict messages.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SCHEDULED: frozenset({JobState.AVAILABLE, JobState.CANCELLED, JobState.DISCARDED}),
    JobState.AVAILABLE: frozenset({JobState.ACTIVE, JobState.CANCELLED, JobState.DISCARDED}),
    JobState.PENDING: frozenset({JobState.AVAILABLE, JobState.CANCELLED}),
    JobState.ACTIVE: frozenset(
        {JobState.COMPLETED, JobState.RETRYABLE, JobState.DISCARDED, JobState.CANCELLED, JobState.AVAILABLE}
    ),
    JobState.RETRYABLE: frozenset({JobState.AVAILABLE, JobState.CANCELLED, JobState.DISCARDED}),
    JobState.COMPLETED: frozenset(),
    JobState.CANCELLED: frozenset(),
    # Only a manual dead-letter retry brings a discarded job back.
    JobState.DISCARDED: frozenset({JobState.AVAILABLE}),
}


def can_transition(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]
