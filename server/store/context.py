"""What every part of the store shares: the client, the keys, the scripts and the script context."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from redis.asyncio import Redis

from server.domain.retry import DEFAULT_RETRY_POLICY
from server.model.records import Retention
from server.store import codec
from server.store.errors import RoundTripObservers
from server.store.keys import KeySchema
from server.store.scripts import Scripts

# Error entries kept per job (the spec asks for at least 10).
ERROR_HISTORY_CAP = 50


def draw_jitter() -> float:
    """The factor a retry delay is multiplied by when its policy has jitter."""
    return random.uniform(0.5, 1.5)


@dataclasses.dataclass(frozen=True)
class StoreContext:
    redis: Redis
    keys: KeySchema
    scripts: Scripts
    events_maxlen: int
    retention: Retention
    # The JSON most scripts receive: key prefixes, retention and the default retry policy.
    script_context: bytes
    # The same with `origin` added: the notifications of calls made with it are marked as this process's, which
    # wakes its own waiters itself (see JobNotifier.wake_local) and skips them when they come back.
    origin_script_context: bytes
    jitter: Callable[[], float] = draw_jitter
    # Told of every round trip, for metrics (see translate_redis_errors).
    round_trips: RoundTripObservers = dataclasses.field(default_factory=lambda: RoundTripObservers())


def script_context(keys: KeySchema, retention: Retention, *, origin: str = "") -> bytes:
    """Prefixes and settings the scripts need inside any transition that may end a job or move a workflow.

    A flat JSON object of strings: the hot scripts decode it on every call, and strings are what cjson
    decodes fastest (numbers and nested objects cost about as much again).
    `origin`: appended to the notifications the call publishes (see notify.lua)."""
    policy = DEFAULT_RETRY_POLICY
    context: dict[str, str] = {
        "wf": keys.workflow_prefix,
        "nodes": keys.workflow_nodes_prefix,
        "job": keys.job_prefix,
        "errors": keys.errors_prefix,
        "available": keys.available_prefix,
        "delayed": keys.delayed_prefix,
        # Numbers as strings too: cjson parses strings faster, and the scripts convert where they compute.
        "ttl_done": str(retention.completed_ms),
        "ttl_cancelled": str(retention.cancelled_ms),
        "counts": keys.queue_counts_prefix,
        "minutes": keys.queue_minutes_prefix,
        "sminutes": keys.stats_minutes_prefix,
        # The per-state job indexes (index_move.lua).
        "sidx": keys.state_index_prefix,
        "qidx": keys.queue_state_index_prefix,
        "metrics": keys.queue_metrics_prefix,
        "qconf": keys.queue_limits_prefix,
        "rate": keys.queue_rate_prefix,
        "unique": keys.unique_prefix,
        "notify": keys.notify_channel,
        # The policy of jobs stored without their own, as default_retry.lua parses it (retry_delay.lua,
        # fail_active.lua): not a nested object, which would cost every script call its decoding.
        "retry": ",".join(
            [
                str(policy.max_attempts),
                str(policy.initial_interval_ms),
                repr(policy.backoff_coefficient),
                str(policy.max_interval_ms),
                "1" if policy.jitter else "0",
                policy.strategy.value,
                policy.on_exhaustion.value,
            ]
        ),
    }
    if origin:
        context["origin"] = origin
    return codec.dumps(context)
