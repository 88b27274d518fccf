"""The one retry/unique policy mapping between protobuf and OJS JSON, round-tripped through the service's parsers.

Both directions a policy travels use `ojs_json.policies`: the gateway renders a job's
proto policy as JSON, and the gRPC adapter turns typed proto options into the JSON the
service validates. Each round trip must give back what it started from.
"""

from __future__ import annotations

from google.protobuf import duration_pb2
from hypothesis import given
from hypothesis import strategies as st
from ojs.v1 import job_pb2

from gateway.convert.jobs import job_to_json
from ojs_json.policies import retry_policy_to_json, unique_policy_to_json
from ojs_json.scalars import iso_duration
from server.domain.retry import BackoffStrategy, OnExhaustion, RetryPolicy, parse_retry_policy
from server.domain.states import JobState
from server.domain.unique import CONFLICT_ACTIONS, DIMENSIONS, parse_unique_policy
from server.rpc import convert as rpc_convert

_PATTERNS = st.lists(st.text(min_size=1, max_size=12), max_size=3).map(tuple)


@st.composite
def retry_policies(draw: st.DrawFn) -> RetryPolicy:
    initial = draw(st.integers(min_value=1, max_value=10**7))
    return RetryPolicy(
        # 0 (unlimited) is proto3's "unset" and reads back as the default: see test_zero_numbers_are_unset.
        max_attempts=draw(st.integers(min_value=1, max_value=1000)),
        initial_interval_ms=initial,
        backoff_coefficient=draw(st.floats(min_value=1.0, max_value=100.0, allow_nan=False)),
        max_interval_ms=draw(st.integers(min_value=initial, max_value=10**9)),
        jitter=draw(st.booleans()),
        non_retryable_errors=draw(_PATTERNS),
        on_exhaustion=draw(st.sampled_from(OnExhaustion)),
        strategy=draw(st.sampled_from(BackoffStrategy)),
    )


@given(retry_policies())
def test_retry_policy_round_trips(policy: RetryPolicy) -> None:
    # Stored policy -> proto (as the servicer sends it) -> JSON (as the gateway renders it) -> parsed again.
    message = rpc_convert.retry_policy(policy)
    rendered = retry_policy_to_json(message)
    assert parse_retry_policy(rendered) == policy
    # Typed options from a gRPC client -> JSON -> parsed -> the proto the client sent.
    assert rpc_convert.retry_policy(parse_retry_policy(rendered)) == message


def test_a_rendered_job_carries_the_same_mapping() -> None:
    policy = RetryPolicy(max_attempts=7, initial_interval_ms=1500, non_retryable_errors=("Fatal*",))
    job = job_pb2.Job(id="j", type="t", retry_policy=rpc_convert.retry_policy(policy))
    rendered = job_to_json(job)["retry"]
    assert rendered == retry_policy_to_json(job.retry_policy)
    assert rendered["initial_interval"] == "PT1.5S" and rendered["max_attempts"] == 7
    assert parse_retry_policy(rendered) == policy


def test_zero_numbers_are_unset() -> None:
    # proto3 cannot tell 0 from unset: the reader's default applies, and an options-level
    # max_attempts is not overridden by a retry object that never named one.
    rendered = retry_policy_to_json(job_pb2.RetryPolicy(jitter=True))
    assert rendered == {"jitter": True, "non_retryable_errors": []}
    assert parse_retry_policy(rendered, max_attempts_override=9).max_attempts == 9


_STATES = {state: getattr(job_pb2, f"JOB_STATE_{state.name}") for state in JobState}


@st.composite
def unique_policies(draw: st.DrawFn) -> job_pb2.UniquePolicy:
    names = st.lists(st.text(alphabet="abcxyz_.", min_size=1, max_size=8), min_size=1, max_size=3)
    dimensions = draw(st.lists(st.sampled_from(DIMENSIONS), min_size=1, max_size=4, unique=True))
    period = duration_pb2.Duration()
    period.FromMilliseconds(draw(st.integers(min_value=1, max_value=10**9)))
    return job_pb2.UniquePolicy(
        keys=["type", *(d for d in dimensions if d != "type")],
        args_keys=draw(names),
        meta_keys=draw(names),
        period=period,
        on_conflict=draw(st.sampled_from(list(job_pb2.UniqueConflictAction.values())[1:])),
        states=[_STATES[s] for s in draw(st.lists(st.sampled_from(JobState), min_size=1, unique=True))],
    )


@given(unique_policies())
def test_unique_policy_round_trips(message: job_pb2.UniquePolicy) -> None:
    rendered = unique_policy_to_json(message)
    parsed = parse_unique_policy(rendered)
    assert parsed.keys == tuple(message.keys)
    assert parsed.args_keys == tuple(message.args_keys)
    assert parsed.meta_keys == tuple(message.meta_keys)
    assert parsed.period_ms == message.period.ToMilliseconds()
    assert rendered["period"] == iso_duration(message.period)
    assert parsed.on_conflict == rendered["on_conflict"] and parsed.on_conflict in CONFLICT_ACTIONS
    assert [_STATES[state] for state in parsed.states] == list(message.states)


def test_unique_key_names_the_dimensions() -> None:
    # The published binding's `key` (1) lists dimensions, as the JSON `keys` does; `keys` (100) is its alias.
    rendered = unique_policy_to_json(job_pb2.UniquePolicy(key=["type", "args"], args_keys=["user_id"]))
    assert rendered == {"keys": ["type", "args"], "args_keys": ["user_id"]}
    parsed = parse_unique_policy(rendered)
    assert parsed.args_keys == ("user_id",) and parsed.keys == ("type", "args")
    both = unique_policy_to_json(job_pb2.UniquePolicy(key=["type", "queue"], keys=["queue", "args"]))
    assert both == {"keys": ["type", "queue", "args"]}
    # An unspecified action or state is left out rather than named.
    assert (
        unique_policy_to_json(
            job_pb2.UniquePolicy(
                on_conflict=job_pb2.UNIQUE_CONFLICT_ACTION_UNSPECIFIED, states=[job_pb2.JOB_STATE_UNSPECIFIED]
            )
        )
        == {}
    )
