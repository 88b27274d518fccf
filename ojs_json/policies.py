"""Retry and unique policies, protobuf -> OJS JSON: the one mapping used everywhere.

The gateway renders a job's `retry`/`unique` with it, and the gRPC adapter turns
typed `EnqueueOptions` into the JSON envelope the service validates with it, so a
policy reads the same whichever way it came in or goes out.

proto3 cannot tell zero from unset: a zero number, an empty string or an
UNSPECIFIED enum is left out, so the reader applies its default. A bool has no
such escape; `jitter` is always written as it is.
"""

from __future__ import annotations

from typing import Any

from ojs.v1 import job_pb2

from ojs_json.scalars import iso_duration

__all__ = ["CONFLICT_ACTIONS", "JOB_STATE_NAMES", "retry_policy_to_json", "unique_policy_to_json"]

JOB_STATE_NAMES: dict[int, str] = {
    number: name.removeprefix("JOB_STATE_").lower() for name, number in job_pb2.JobState.items() if number
}
CONFLICT_ACTIONS: dict[int, str] = {
    number: name.removeprefix("UNIQUE_CONFLICT_ACTION_").lower()
    for name, number in job_pb2.UniqueConflictAction.items()
    if number
}


def retry_policy_to_json(policy: job_pb2.RetryPolicy) -> dict[str, Any]:
    """The `retry` object (ojs-retry.md); intervals as ISO 8601 durations."""
    out: dict[str, Any] = {}
    if policy.max_attempts:
        out["max_attempts"] = policy.max_attempts
    if policy.HasField("initial_interval"):
        out["initial_interval"] = iso_duration(policy.initial_interval)
    if policy.backoff_coefficient:
        out["backoff_coefficient"] = policy.backoff_coefficient
    if policy.HasField("max_interval"):
        out["max_interval"] = iso_duration(policy.max_interval)
    out["jitter"] = policy.jitter
    out["non_retryable_errors"] = list(policy.non_retryable_errors)
    if policy.on_exhaustion:
        out["on_exhaustion"] = policy.on_exhaustion
    if policy.backoff_strategy:
        out["backoff_strategy"] = policy.backoff_strategy
    return out


def unique_policy_to_json(policy: job_pb2.UniquePolicy) -> dict[str, Any]:
    """The `unique` object (ojs-unique-jobs.md).

    `key` (1) names the fingerprint's dimensions in the published binding, as `keys` does in the JSON form
    (`keys`, 100, is this server's older alias of it); argument fields are `args_keys`. The JSON form's own
    `key` (argument fields, in the core envelope) is never produced.
    """
    out: dict[str, Any] = {}
    dimensions = list(dict.fromkeys([*policy.key, *policy.keys]))
    if dimensions:
        out["keys"] = dimensions
    if policy.args_keys:
        out["args_keys"] = list(policy.args_keys)
    if policy.meta_keys:
        out["meta_keys"] = list(policy.meta_keys)
    if policy.HasField("period"):
        out["period"] = iso_duration(policy.period)
    if policy.on_conflict in CONFLICT_ACTIONS:
        out["on_conflict"] = CONFLICT_ACTIONS[policy.on_conflict]
    states = [JOB_STATE_NAMES[state] for state in policy.states if state in JOB_STATE_NAMES]
    if states:
        out["states"] = states
    return out
