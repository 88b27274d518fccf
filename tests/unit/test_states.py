"""The job state machine table (ojs-core §6)."""

from __future__ import annotations

import itertools

import pytest

from server.domain.states import TERMINAL, TRANSITIONS, JobState, can_transition

S = JobState

LEGAL = {
    (S.SCHEDULED, S.AVAILABLE),
    (S.PENDING, S.AVAILABLE),
    (S.AVAILABLE, S.ACTIVE),
    (S.ACTIVE, S.COMPLETED),
    (S.ACTIVE, S.RETRYABLE),
    (S.ACTIVE, S.DISCARDED),
    (S.ACTIVE, S.CANCELLED),
    (S.ACTIVE, S.AVAILABLE),
    (S.RETRYABLE, S.AVAILABLE),
    (S.SCHEDULED, S.CANCELLED),
    (S.AVAILABLE, S.CANCELLED),
    (S.PENDING, S.CANCELLED),
    (S.RETRYABLE, S.CANCELLED),
    (S.DISCARDED, S.AVAILABLE),
}

ILLEGAL = {
    # ACK on anything but active.
    (S.AVAILABLE, S.COMPLETED),
    (S.SCHEDULED, S.COMPLETED),
    (S.PENDING, S.COMPLETED),
    (S.RETRYABLE, S.COMPLETED),
    # NACK on anything but active.
    (S.SCHEDULED, S.RETRYABLE),
    (S.AVAILABLE, S.RETRYABLE),
    # Only available jobs are fetched.
    (S.SCHEDULED, S.ACTIVE),
    (S.PENDING, S.ACTIVE),
    (S.RETRYABLE, S.ACTIVE),
    # Nothing goes back to an initial state.
    (S.ACTIVE, S.SCHEDULED),
    (S.AVAILABLE, S.PENDING),
    (S.RETRYABLE, S.SCHEDULED),
}


def test_terminal_states() -> None:
    assert frozenset({S.COMPLETED, S.CANCELLED, S.DISCARDED}) == TERMINAL


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_only_leave_by_a_dead_letter_retry(state: JobState) -> None:
    allowed = TRANSITIONS[state]
    if state is S.DISCARDED:
        assert allowed == frozenset({S.AVAILABLE})
    else:
        assert allowed == frozenset()
    for target in JobState:
        assert can_transition(state, target) == (state is S.DISCARDED and target is S.AVAILABLE)


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_legal_transitions(current: JobState, target: JobState) -> None:
    assert can_transition(current, target)


@pytest.mark.parametrize(("current", "target"), sorted(ILLEGAL))
def test_illegal_transitions(current: JobState, target: JobState) -> None:
    assert not can_transition(current, target)


def test_no_state_transitions_to_itself() -> None:
    for state in JobState:
        assert not can_transition(state, state)


def test_initial_only_states_are_never_targets() -> None:
    for current, target in itertools.product(JobState, (S.SCHEDULED, S.PENDING)):
        assert not can_transition(current, target)


def test_cancel_is_allowed_from_every_non_terminal_state() -> None:
    for state in JobState:
        assert can_transition(state, S.CANCELLED) == (state not in TERMINAL)


def test_table_matches_can_transition_everywhere() -> None:
    for current, target in itertools.product(JobState, JobState):
        assert can_transition(current, target) == (target in TRANSITIONS[current])
