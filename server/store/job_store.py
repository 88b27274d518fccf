"""The job store: every Redis read and write of jobs, queues and events.

Each state transition is one Lua script, so one Redis round trip and atomic.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from server.domain.cron_entry import CronEntry
from server.domain.errors import ErrorCode, OJSError, conflict, not_found
from server.domain.job import NewJob, StoredJob
from server.domain.states import JobState
from server.store import codec
from server.store.keys import KeySchema
from server.store.scripts import Scripts

# Error entries kept per job (the spec asks for at least 10).
ERROR_HISTORY_CAP = 50
# Due scheduled/retryable jobs promoted per queue by one fetch.
PROMOTE_BATCH = 100

P = ParamSpec("P")
R = TypeVar("R")


def translate_redis_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Redis being unreachable is the caller's UNAVAILABLE, not a crash."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise OJSError(ErrorCode.BACKEND_UNAVAILABLE, f"backend unavailable: {exc}") from exc
        except redis_errors.BusyLoadingError as exc:
            raise OJSError(ErrorCode.BACKEND_UNAVAILABLE, "backend is loading its data") from exc

    return wrapper


@dataclasses.dataclass(frozen=True)
class Retention:
    """How long terminal jobs are kept (ms; 0 keeps them until deleted)."""

    completed_ms: int = 7 * 86_400_000
    cancelled_ms: int = 7 * 86_400_000
    discarded_ms: int = 30 * 86_400_000
    dead_letter_ms: int = 180 * 86_400_000
    dead_letter_max_count: int = 10_000


@dataclasses.dataclass(frozen=True)
class HeartbeatOutcome:
    directive: str
    extended: list[str]
    cancelled: list[str]
    not_held: list[str]
    # Lease deadline of the last extended job, if any.
    new_deadline_ms: int | None


@dataclasses.dataclass(frozen=True)
class ReapOutcome:
    examined: int
    timed_out: int
    requeued: int


@dataclasses.dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    last_heartbeat_ms: int
    state: str
    directive: str
    active_jobs: int


@dataclasses.dataclass(frozen=True)
class EnqueueOutcome:
    state: JobState
    enqueued_at_ms: int | None
    # Set when a unique policy with on_conflict=ignore kept an existing job instead.
    existing: StoredJob | None = None
    # When scheduled: the due time (a replace_except_schedule keeps the replaced job's).
    scheduled_at_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class QueueRow:
    name: str
    created_at_ms: int
    available: int
    paused: bool
    paused_at_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class QueueStatsRow:
    name: str
    known: bool
    available: int
    active: int
    scheduled: int
    retryable: int
    pending: int
    dead: int
    completed: int
    discarded: int
    cancelled: int
    paused: bool
    completed_last_hour: int
    failed_last_hour: int
    avg_duration_ms: float
    avg_wait_ms: float
    throughput_per_second: float


@dataclasses.dataclass(frozen=True)
class EventRecord:
    cursor: str
    type: str
    job_id: str
    queue: str
    job_type: str
    state: str
    time_ms: int
    data_json: bytes


@dataclasses.dataclass(frozen=True)
class FailureReport:
    code: str
    message: str
    error_type: str
    details: dict[str, Any] | None
    backtrace: str | None
    # False: end the job now; None: the retry policy decides.
    retryable: bool | None
    requeue: bool
    # With requeue: the job never reached a worker, so its attempt is given back.
    undelivered: bool = False


@dataclasses.dataclass(frozen=True)
class Settlement:
    """One entry of a batch settle: an ack, or a nack when `failure` is set."""

    job_id: str
    worker_id: str = ""
    lease_token: int | None = None
    result_json: bytes | None = None
    failure: FailureReport | None = None


@dataclasses.dataclass(frozen=True)
class SettleReply:
    job_id: str
    # The state after the entry, or the job's current state when refused for its state.
    state: str | None
    # The whole job, when asked for.
    job: StoredJob | None
    error: OJSError | None

    def settled_job(self) -> StoredJob:
        """The job after the entry (asked for with return_jobs), or the refusal raised."""
        if self.error is not None:
            raise self.error
        assert self.job is not None
        return self.job


def _error_tail(failure: FailureReport, now_ms: int) -> bytes:
    """The error record as stored, but for its "attempt", which the script adds."""
    return codec.encode_error_without_attempt(
        code=failure.code,
        message=failure.message,
        error_type=failure.error_type,
        retryable=failure.retryable is not False,
        occurred_at_ms=now_ms,
        details=failure.details,
        backtrace=failure.backtrace,
    )


def _refusal(reply: list[Any], job_id: str, *, expected: str, action: str) -> OJSError:
    """The error for a script's refusal of a job transition."""
    status = reply[0]
    if status == b"not_found":
        return not_found("job", job_id)
    if status == b"stale_lease":
        return conflict(
            f"cannot {action} job '{job_id}': the lease was granted again since",
            job_id=job_id,
            current_lease_token=int(reply[1] or 0),
        )
    if status == b"not_owner":
        return conflict(
            f"cannot {action} job '{job_id}': it is held by another worker",
            job_id=job_id,
            current_worker=reply[1].decode(),
        )
    return _state_conflict(job_id, reply[1], expected, action)


def _state_conflict(job_id: str, current: bytes | str, expected: str, action: str) -> OJSError:
    state = current.decode() if isinstance(current, bytes) else current
    return conflict(
        f"cannot {action} job '{job_id}': it is {state}, not {expected}",
        job_id=job_id,
        current_state=state,
        expected_state=expected,
    )


class JobStore:
    def __init__(
        self, redis: Redis, keys: KeySchema, *, events_maxlen: int = 100_000, retention: Retention | None = None
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._events_maxlen = events_maxlen
        self.retention = retention or Retention()
        # Prefixes and retention the workflow engine needs inside any script that ends a job.
        self._workflow_context = codec.dumps(
            {
                "wf": keys.workflow_prefix,
                "nodes": keys.workflow_nodes_prefix,
                "job": keys.job_prefix,
                "errors": keys.errors_prefix,
                "available": keys.available_prefix,
                "delayed": keys.delayed_prefix,
                "ttl_done": self.retention.completed_ms,
                "ttl_cancelled": self.retention.cancelled_ms,
                "counts": keys.queue_counts_prefix,
                "minutes": keys.queue_minutes_prefix,
                "qconf": keys.queue_limits_prefix,
                "rate": keys.queue_rate_prefix,
                "unique": keys.unique_prefix,
                "notify": keys.notify_channel,
            }
        )
        self._scripts = Scripts(redis)

    @property
    def keys(self) -> KeySchema:
        return self._keys

    @translate_redis_errors
    async def load_scripts(self) -> None:
        await self._scripts.preload(self._redis)

    @translate_redis_errors
    async def ping_ms(self) -> float:
        started = time.perf_counter()
        await self._redis.ping()
        return (time.perf_counter() - started) * 1000

    def _insert_keys(self, job: NewJob) -> list[str]:
        k = self._keys
        return [k.job(job.id), k.available(job.queue), k.delayed(job.queue), k.queues, k.sequence, k.events, k.expiring]

    @staticmethod
    def _unique_conflict(existing_id: bytes, state: bytes) -> OJSError:
        return OJSError(
            ErrorCode.DUPLICATE,
            f"a job with the same unique key exists: '{existing_id.decode()}' ({state.decode()})",
            details={"existing_job_id": existing_id.decode(), "existing_job_state": state.decode()},
        )

    @staticmethod
    def _insert_entry(job: NewJob) -> list[str]:
        """The job as the insert scripts read it (job_from_list in lib.lua), all strings."""
        state = job.initial_state
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
            *_unique_args(job),
            *codec.new_job_fields(job),
        ]

    @translate_redis_errors
    async def enqueue(self, job: NewJob) -> EnqueueOutcome:
        reply = await self._scripts.call(
            "enqueue",
            [*self._insert_keys(job), self._keys.active],
            [job.created_at_ms, self._events_maxlen, self._workflow_context, codec.dumps(self._insert_entry(job))],
        )
        status = reply[0]
        if status == b"duplicate":
            raise OJSError(
                ErrorCode.DUPLICATE,
                f"a job with id '{job.id}' already exists",
                details={"existing_job_id": job.id, "existing_job_state": reply[1].decode()},
            )
        if status == b"unique_conflict":
            raise self._unique_conflict(reply[1], reply[2])
        if status == b"unique_existing":
            flat, history = reply[2]
            existing = codec.decode_job(flat, history)
            return EnqueueOutcome(state=existing.state, enqueued_at_ms=existing.enqueued_at_ms, existing=existing)
        return _inserted(reply)

    @translate_redis_errors
    async def enqueue_batch(self, jobs: Sequence[NewJob], *, now_ms: int) -> list[EnqueueOutcome]:
        """All or nothing; an "ignore" uniqueness hit yields the existing job for that entry."""
        k = self._keys
        # One JSON argument for the whole batch: packing thousands of separate
        # arguments costs the client more than the script's decoding.
        entries = codec.dumps([self._insert_entry(job) for job in jobs])
        args: list[Any] = [now_ms, self._events_maxlen, self._workflow_context, entries]
        reply = await self._scripts.call("enqueue_batch", [k.queues, k.sequence, k.events, k.expiring, k.active], args)
        status = reply[0]
        if status == b"duplicate":
            raise OJSError(
                ErrorCode.DUPLICATE,
                f"jobs[{int(reply[1])}]: a job with id '{reply[2].decode()}' already exists",
                details={"index": int(reply[1]), "existing_job_id": reply[2].decode()},
            )
        if status == b"unique_conflict":
            error = self._unique_conflict(reply[2], reply[3])
            error.details["index"] = int(reply[1])
            error.message = f"jobs[{int(reply[1])}]: {error.message}"
            raise error
        existing_ids = [entry[1].decode() for entry in reply[1] if entry[0] == b"unique_existing"]
        existing = {j.id: j for j in await self.get_many(existing_ids)} if existing_ids else {}
        outcomes = []
        for entry in reply[1]:
            if entry[0] == b"unique_existing":
                found = existing.get(entry[1].decode())
                if found is None:
                    raise not_found("job", entry[1].decode())
                outcomes.append(EnqueueOutcome(state=found.state, enqueued_at_ms=found.enqueued_at_ms, existing=found))
            else:
                outcomes.append(
                    EnqueueOutcome(
                        state=JobState(entry[2].decode()), enqueued_at_ms=int(entry[1]) if entry[1] else None
                    )
                )
        return outcomes

    @translate_redis_errors
    async def fetch(
        self,
        queues: Sequence[str],
        *,
        count: int,
        worker_id: str,
        lease_ms: int | None,
        default_lease_ms: int,
        now_ms: int,
        default_timeout_ms: int = 0,
    ) -> list[StoredJob]:
        k = self._keys
        keys = [k.active, k.events, k.sequence, k.expiring, k.workers, k.paused]
        for queue in queues:
            keys.append(k.available(queue))
            keys.append(k.delayed(queue))
        reply = await self._scripts.call(
            "fetch",
            keys,
            [
                now_ms,
                self._events_maxlen,
                count,
                worker_id,
                "" if lease_ms is None else lease_ms,
                default_lease_ms,
                k.errors_prefix,
                PROMOTE_BATCH,
                default_timeout_ms,
                self.retention.discarded_ms,
                self._workflow_context,
                *queues,
            ],
        )
        return [codec.decode_job(flat, history, changes) for flat, history, changes in reply]

    async def ack(
        self,
        job_id: str,
        *,
        result_json: bytes | None,
        worker_id: str,
        now_ms: int,
        lease_token: int | None = None,
    ) -> StoredJob:
        entry = Settlement(job_id, worker_id=worker_id, lease_token=lease_token, result_json=result_json)
        return await self._settle_one(entry, now_ms=now_ms)

    async def nack(
        self,
        job_id: str,
        failure: FailureReport,
        *,
        worker_id: str,
        now_ms: int,
        lease_token: int | None = None,
    ) -> StoredJob:
        entry = Settlement(job_id, worker_id=worker_id, lease_token=lease_token, failure=failure)
        return await self._settle_one(entry, now_ms=now_ms)

    async def _settle_one(self, entry: Settlement, *, now_ms: int) -> StoredJob:
        (reply,) = await self.settle_batch([entry], now_ms=now_ms, return_jobs=True)
        return reply.settled_job()

    @translate_redis_errors
    async def cancel(self, job_id: str, *, reason: str, now_ms: int) -> tuple[JobState, StoredJob]:
        k = self._keys
        reply = await self._scripts.call(
            "cancel",
            [k.job(job_id), k.errors(job_id), k.active, k.events, k.expiring, k.sequence],
            [
                now_ms,
                self._events_maxlen,
                job_id,
                k.available_prefix,
                k.delayed_prefix,
                reason,
                self.retention.cancelled_ms,
                self._workflow_context,
            ],
        )
        if reply[0] == b"ok":
            flat, history = reply[2]
            return JobState(reply[1].decode()), codec.decode_job(flat, history)
        return JobState.CANCELLED, self._job_reply(reply, job_id, expected="non-terminal", action="cancel")

    @translate_redis_errors
    async def activate(self, job_id: str, *, now_ms: int) -> StoredJob:
        k = self._keys
        reply = await self._scripts.call(
            "activate",
            [k.job(job_id), k.errors(job_id), k.sequence, k.events],
            [now_ms, self._events_maxlen, job_id, k.available_prefix, self._workflow_context],
        )
        return self._job_reply(reply, job_id, expected="pending", action="activate")

    def _job_reply(self, reply: list[Any], job_id: str, *, expected: str, action: str) -> StoredJob:
        if reply[0] == b"ok":
            flat, history = reply[1]
            return codec.decode_job(flat, history)
        raise _refusal(reply, job_id, expected=expected, action=action)

    @translate_redis_errors
    async def settle_batch(self, entries: Sequence[Settlement], *, now_ms: int, return_jobs: bool) -> list[SettleReply]:
        """Ack or nack every entry in one script call; each entry succeeds or is refused on its own."""
        k = self._keys
        args: list[Any] = [
            now_ms,
            self._events_maxlen,
            self.retention.completed_ms,
            self.retention.discarded_ms,
            self.retention.dead_letter_ms,
            ERROR_HISTORY_CAP,
            "1" if return_jobs else "0",
            self._workflow_context,
        ]
        rows: list[list[str]] = []
        for entry in entries:
            token = "" if entry.lease_token is None else str(entry.lease_token)
            failure = entry.failure
            if failure is None:
                result = entry.result_json
                rows.append(
                    [
                        entry.job_id,
                        "ack",
                        entry.worker_id,
                        token,
                        "0" if result is None else "1",
                        (result or b"").decode(),
                    ]
                )
                continue
            rows.append(
                [
                    entry.job_id,
                    "nack",
                    entry.worker_id,
                    token,
                    _error_tail(failure, now_ms).decode(),
                    failure.error_type,
                    "0" if failure.retryable is False else "",
                    "1" if failure.requeue else "0",
                    repr(random.uniform(0.5, 1.5)),
                    failure.code,
                    failure.message,
                    "1" if failure.undelivered else "0",
                ]
            )
        # One JSON argument: packing many separate arguments costs the client more than decoding costs the script.
        args.append(codec.dumps(rows))
        replies = await self._scripts.call("settle_batch", [k.active, k.events, k.sequence, k.dead, k.expiring], args)
        out: list[SettleReply] = []
        for entry, reply in zip(entries, replies, strict=True):
            action = "acknowledge" if entry.failure is None else "fail"
            if reply[0] != b"ok":
                error = _refusal(reply, entry.job_id, expected="active", action=action)
                current = reply[1].decode() if reply[0] == b"conflict" else None
                out.append(SettleReply(entry.job_id, state=current, job=None, error=error))
            elif return_jobs:
                flat, history = reply[1]
                job = codec.decode_job(flat, history)
                out.append(SettleReply(entry.job_id, state=job.state.value, job=job, error=None))
            else:
                out.append(SettleReply(entry.job_id, state=reply[1].decode(), job=None, error=None))
        return out

    @translate_redis_errors
    async def get(self, job_id: str) -> StoredJob | None:
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.job(job_id))
            pipe.lrange(k.errors(job_id), 0, -1)
            raw, history = await pipe.execute()
        if not raw or b"state" not in raw:
            return None
        flat = [item for pair in raw.items() for item in pair]
        return codec.decode_job(flat, history)

    @translate_redis_errors
    async def list_queues(self) -> list[QueueRow]:
        k = self._keys
        registry = cast(dict[bytes, bytes], await self._redis.hgetall(k.queues))
        names = sorted(name.decode() for name in registry)
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.paused)
            for name in names:
                pipe.zcard(k.available(name))
            paused, *counts = await pipe.execute()
        return [
            QueueRow(
                name=name,
                created_at_ms=int(registry[name.encode()]),
                available=int(count),
                paused=name.encode() in paused,
                paused_at_ms=int(paused[name.encode()]) if name.encode() in paused else None,
            )
            for name, count in zip(names, counts, strict=True)
        ]

    @translate_redis_errors
    async def set_paused(self, queue: str, *, paused: bool, now_ms: int) -> QueueRow:
        k = self._keys
        since = await self._scripts.call(
            "queue_pause",
            [k.paused, k.queues, k.events],
            [now_ms, self._events_maxlen, queue, "1" if paused else "0", self._workflow_context, k.available(queue)],
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.queues, queue)
            pipe.zcard(k.available(queue))
            created, available = await pipe.execute()
        return QueueRow(
            name=queue,
            created_at_ms=int(created or now_ms),
            available=int(available),
            paused=paused,
            paused_at_ms=int(since) if since else None,
        )

    @translate_redis_errors
    async def queue_stats(self, queue: str, *, now_ms: int) -> QueueStatsRow:
        """Counts from the queue's counters and per-minute buckets: one round trip, no scans."""
        k = self._keys
        minute = now_ms // 60_000
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.available(queue))
            pipe.hgetall(k.queue_counts(queue))
            pipe.hget(k.paused, queue)
            pipe.hexists(k.queues, queue)
            for back in range(60):
                pipe.hgetall(k.queue_minute(queue, minute - back))
            available, counts, paused_at, known, *minutes = await pipe.execute()

        def total(buckets: list[dict[bytes, bytes]], field: bytes) -> int:
            return sum(int(bucket.get(field, 0)) for bucket in buckets)

        def count(field: bytes) -> int:
            return max(int(counts.get(field, 0)), 0)

        completed_hour = total(minutes, b"completed")
        started_hour = total(minutes, b"started")
        return QueueStatsRow(
            name=queue,
            known=bool(known),
            available=int(available),
            active=count(b"active"),
            scheduled=count(b"scheduled"),
            retryable=count(b"retryable"),
            pending=count(b"pending"),
            dead=count(b"dead"),
            completed=count(b"completed"),
            discarded=count(b"discarded"),
            cancelled=count(b"cancelled"),
            paused=paused_at is not None,
            completed_last_hour=completed_hour,
            failed_last_hour=total(minutes, b"failed"),
            avg_duration_ms=total(minutes, b"duration_ms") / completed_hour if completed_hour else 0.0,
            avg_wait_ms=total(minutes, b"wait_ms") / started_hour if started_hour else 0.0,
            # The last complete minute: the current one is still filling.
            throughput_per_second=total(minutes[1:2], b"completed") / 60.0,
        )

    @translate_redis_errors
    async def read_events(self, *, after: str | None, count: int) -> list[EventRecord]:
        start = f"({after}" if after else "-"
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(self._keys.events, min=start, max="+", count=count),
        )
        records = [decode_event(entry_id, fields) for entry_id, fields in entries]
        return records

    # ---- leases, heartbeats and workers ----

    @translate_redis_errors
    async def reap(self, *, now_ms: int, batch: int) -> ReapOutcome:
        k = self._keys
        examined, timed_out, requeued = await self._scripts.call(
            "reap",
            [k.active, k.events, k.sequence, k.dead, k.expiring],
            [
                now_ms,
                self._events_maxlen,
                batch,
                k.job_prefix,
                k.errors_prefix,
                k.available_prefix,
                k.delayed_prefix,
                ERROR_HISTORY_CAP,
                repr(random.uniform(0.5, 1.5)),
                self.retention.discarded_ms,
                self.retention.dead_letter_ms,
                self._workflow_context,
            ],
        )
        return ReapOutcome(examined=int(examined), timed_out=int(timed_out), requeued=int(requeued))

    @translate_redis_errors
    async def heartbeat(
        self,
        *,
        worker_id: str,
        job_ids: Sequence[str],
        lease_ms: int | None,
        default_lease_ms: int,
        reported_state: str,
        lease_token: int | None,
        now_ms: int,
    ) -> HeartbeatOutcome:
        k = self._keys
        # Without a worker id the registry is untouched; the key is only a placeholder.
        worker_key = k.worker(worker_id) if worker_id else k.worker_prefix
        directive, extended, cancelled, not_held, deadline = await self._scripts.call(
            "heartbeat",
            [k.active, k.events, k.workers, worker_key],
            [
                now_ms,
                self._events_maxlen,
                worker_id,
                "" if lease_ms is None else lease_ms,
                default_lease_ms,
                k.job_prefix,
                reported_state,
                "" if lease_token is None else lease_token,
                *job_ids,
            ],
        )
        return HeartbeatOutcome(
            directive=directive.decode(),
            extended=[i.decode() for i in extended],
            cancelled=[i.decode() for i in cancelled],
            not_held=[i.decode() for i in not_held],
            new_deadline_ms=int(deadline) if deadline else None,
        )

    @translate_redis_errors
    async def set_worker_directive(self, worker_id: str, directive: str, *, now_ms: int) -> WorkerRow:
        k = self._keys
        raw = await self._scripts.call(
            "set_directive", [k.workers, k.worker(worker_id)], [now_ms, worker_id, directive]
        )
        return _worker_row(worker_id, codec.pairs_to_dict(raw))

    @translate_redis_errors
    async def list_workers(self) -> list[WorkerRow]:
        k = self._keys
        seen = cast(list[tuple[bytes, float]], await self._redis.zrange(k.workers, 0, -1, withscores=True))
        if not seen:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for worker_id, _ in seen:
                pipe.hgetall(k.worker(worker_id.decode()))
            hashes = await pipe.execute()
        rows = [_worker_row(worker_id.decode(), raw) for (worker_id, _), raw in zip(seen, hashes, strict=True)]
        return sorted(rows, key=lambda row: row.worker_id)

    @translate_redis_errors
    async def prune_workers(self, *, cutoff_ms: int, batch: int) -> int:
        k = self._keys
        return int(await self._scripts.call("prune_workers", [k.workers], [cutoff_ms, k.worker_prefix, batch]))

    # ---- scheduled and retrying jobs ----

    @translate_redis_errors
    async def lease_tokens(self, job_ids: Sequence[str]) -> list[tuple[str, int]]:
        """(state, lease token) of each job; ("", 0) for a job that is gone."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self._keys.job(job_id), "state", "lease_token")
            rows = await pipe.execute()
        return [((state or b"").decode(), int(token or 0)) for state, token in rows]

    @translate_redis_errors
    async def queue_names(self) -> list[str]:
        names = cast(list[bytes], await self._redis.hkeys(self._keys.queues))
        return sorted(name.decode() for name in names)

    @translate_redis_errors
    async def promote(self, queues: Sequence[str], *, now_ms: int, batch: int) -> int:
        k = self._keys
        keys = [k.sequence]
        for queue in queues:
            keys.append(k.available(queue))
            keys.append(k.delayed(queue))
        return int(await self._scripts.call("promote", keys, [now_ms, self._workflow_context, batch]))

    @translate_redis_errors
    async def expire(self, *, now_ms: int, batch: int) -> tuple[int, int]:
        """(entries examined, jobs expired) for one batch of due expiries."""
        k = self._keys
        examined, expired = await self._scripts.call(
            "expire",
            [k.expiring, k.events, k.sequence, k.active],
            [
                now_ms,
                self._events_maxlen,
                batch,
                k.job_prefix,
                k.errors_prefix,
                k.available_prefix,
                k.delayed_prefix,
                self.retention.discarded_ms,
                self._workflow_context,
            ],
        )
        return int(examined), int(expired)

    # ---- dead letter ----

    @translate_redis_errors
    async def dead_letter_ids(self) -> list[str]:
        """Dead-lettered job ids, newest first."""
        return [job_id for job_id, _ in await self.dead_letter_entries()]

    @translate_redis_errors
    async def dead_letter_entries(self) -> list[tuple[str, int]]:
        """(job id, discarded_at ms), newest first (ties: higher id first)."""
        rows = cast(list[tuple[bytes, float]], await self._redis.zrevrange(self._keys.dead, 0, -1, withscores=True))
        return [(job_id.decode(), int(score)) for job_id, score in rows]

    @translate_redis_errors
    async def job_summaries(self, job_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(queue, type) of each job; ("", "") for a job that is gone."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self._keys.job(job_id), "queue", "type")
            rows = await pipe.execute()
        return [((q or b"").decode(), (t or b"").decode()) for q, t in rows]

    @translate_redis_errors
    async def get_many(self, job_ids: Sequence[str]) -> list[StoredJob]:
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(k.job(job_id))
                pipe.lrange(k.errors(job_id), 0, -1)
            replies = await pipe.execute()
        jobs = []
        for raw, history in zip(replies[::2], replies[1::2], strict=True):
            if raw and b"state" in raw:
                jobs.append(codec.decode_job([item for pair in raw.items() for item in pair], history))
        return jobs

    @translate_redis_errors
    async def retry_dead(self, job_id: str, *, now_ms: int) -> StoredJob:
        k = self._keys
        reply = await self._scripts.call(
            "retry_dead",
            [k.job(job_id), k.errors(job_id), k.dead, k.sequence, k.events],
            [now_ms, self._events_maxlen, job_id, k.available_prefix, self._workflow_context],
        )
        if reply[0] == b"not_found":
            raise not_found("dead letter job", job_id)
        return self._job_reply(reply, job_id, expected="discarded", action="retry")

    @translate_redis_errors
    async def delete_dead(self, job_id: str) -> bool:
        k = self._keys
        return bool(
            await self._scripts.call(
                "delete_dead", [k.job(job_id), k.errors(job_id), k.dead], [job_id, self._workflow_context]
            )
        )

    @translate_redis_errors
    async def prune_dead(self, *, now_ms: int, batch: int) -> int:
        k = self._keys
        cutoff = now_ms - self.retention.dead_letter_ms if self.retention.dead_letter_ms else 0
        return int(
            await self._scripts.call(
                "prune_dead",
                [k.dead],
                [
                    cutoff,
                    self.retention.dead_letter_max_count,
                    batch,
                    k.job_prefix,
                    k.errors_prefix,
                    self._workflow_context,
                ],
            )
        )

    # ---- workflows ----

    @translate_redis_errors
    async def create_workflow(
        self, workflow_id: str, *, name: str, kind: str, nodes: list[dict[str, Any]], now_ms: int
    ) -> None:
        k = self._keys
        await self._scripts.call(
            "wf_create",
            [k.workflow(workflow_id), k.workflow_nodes(workflow_id), k.events, k.sequence, k.queues, k.expiring],
            [now_ms, self._events_maxlen, workflow_id, name, kind, self._workflow_context, codec.dumps(nodes)],
        )

    @translate_redis_errors
    async def workflow_hashes(self, workflow_id: str) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        """The workflow hash and its node table; empty when the workflow is unknown."""
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.workflow(workflow_id))
            pipe.hgetall(k.workflow_nodes(workflow_id))
            workflow, nodes = await pipe.execute()
        return workflow, nodes

    @translate_redis_errors
    async def job_states(self, job_ids: Sequence[str]) -> list[tuple[str, str, bytes | None]]:
        """(state, type, result JSON) of each job; ("", "", None) for a job that is gone."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self._keys.job(job_id), "state", "type", "result")
            rows = await pipe.execute()
        return [((state or b"").decode(), (kind or b"").decode(), result) for state, kind, result in rows]

    @translate_redis_errors
    async def cancel_workflow(self, workflow_id: str, *, now_ms: int) -> tuple[int, int]:
        """(nodes cancelled, nodes already completed)."""
        k = self._keys
        reply = await self._scripts.call(
            "wf_cancel",
            [k.workflow(workflow_id), k.workflow_nodes(workflow_id), k.events, k.active, k.expiring],
            [now_ms, self._events_maxlen, workflow_id, self._workflow_context],
        )
        if reply[0] == b"not_found":
            raise not_found("workflow", workflow_id)
        if reply[0] == b"conflict":
            state = reply[1].decode()
            raise conflict(
                f"cannot cancel workflow '{workflow_id}': it is {state}", workflow_id=workflow_id, current_state=state
            )
        return int(reply[1]), int(reply[2])

    # ---- cron ----

    @translate_redis_errors
    async def register_cron(
        self, name: str, fields: Mapping[str, str | bytes | int], *, next_run_ms: int | None, now_ms: int
    ) -> tuple[bool, CronEntry]:
        k = self._keys
        flat = [item for pair in fields.items() for item in pair]
        created, raw = await self._scripts.call(
            "cron_register",
            [k.cron(name), k.cron_names, k.cron_due],
            [now_ms, name, "" if next_run_ms is None else next_run_ms, *flat],
        )
        return bool(created), codec.decode_cron(codec.pairs_to_dict(raw))

    @translate_redis_errors
    async def unregister_cron(self, name: str) -> bool:
        k = self._keys
        return bool(await self._scripts.call("cron_unregister", [k.cron(name), k.cron_names, k.cron_due], [name]))

    @translate_redis_errors
    async def get_cron(self, name: str) -> CronEntry | None:
        raw = cast(dict[bytes, bytes], await self._redis.hgetall(self._keys.cron(name)))
        return codec.decode_cron(raw) if raw else None

    @translate_redis_errors
    async def list_crons(self) -> list[CronEntry]:
        names = cast(list[bytes], await self._redis.zrange(self._keys.cron_names, 0, -1))
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._keys.cron(name.decode()))
            hashes = await pipe.execute()
        return sorted((codec.decode_cron(raw) for raw in hashes if raw), key=lambda entry: entry.name)

    @translate_redis_errors
    async def due_crons(self, *, now_ms: int, limit: int) -> list[tuple[str, int]]:
        due = cast(
            list[tuple[bytes, float]],
            await self._redis.zrangebyscore(self._keys.cron_due, "-inf", now_ms, start=0, num=limit, withscores=True),
        )
        return [(name.decode(), int(score)) for name, score in due]

    @translate_redis_errors
    async def fire_cron(self, name: str, *, occurrence_ms: int, next_run_ms: int, job: NewJob) -> tuple[str, str]:
        """('fired', job id) | ('skipped', unfinished job id) | ('stale', '')."""
        k = self._keys
        reply = await self._scripts.call(
            "cron_fire",
            [k.cron(name), k.cron_due, *self._insert_keys(job)],
            [
                job.created_at_ms,
                self._events_maxlen,
                name,
                occurrence_ms,
                next_run_ms,
                self._workflow_context,
                codec.dumps(self._insert_entry(job)),
            ],
        )
        return reply[0].decode(), reply[1].decode() if len(reply) > 1 else ""


def _worker_row(worker_id: str, raw: dict[bytes, bytes]) -> WorkerRow:
    return WorkerRow(
        worker_id=worker_id,
        last_heartbeat_ms=int(raw.get(b"last_heartbeat_at", b"0")),
        state=raw.get(b"state", b"running").decode(),
        directive=raw.get(b"directive", b"running").decode(),
        active_jobs=int(raw.get(b"active_jobs", b"0")),
    )


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


def _inserted(reply: list[bytes]) -> EnqueueOutcome:
    """{'ok', enqueued_at, state, due} of a job the script inserted."""
    return EnqueueOutcome(
        state=JobState(reply[2].decode()),
        enqueued_at_ms=int(reply[1]) if reply[1] else None,
        scheduled_at_ms=int(reply[3]) if len(reply) > 3 and reply[3] else None,
    )


def decode_event(entry_id: bytes, fields: dict[bytes, bytes]) -> EventRecord:
    return EventRecord(
        cursor=entry_id.decode(),
        type=fields.get(b"type", b"").decode(),
        job_id=fields.get(b"job_id", b"").decode(),
        queue=fields.get(b"queue", b"").decode(),
        job_type=fields.get(b"job_type", b"").decode(),
        state=fields.get(b"state", b"").decode(),
        time_ms=int(fields.get(b"time", b"0")),
        data_json=fields.get(b"data", b"{}"),
    )
