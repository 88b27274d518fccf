"""Leases: fetch, settle (ack and nack), heartbeats, and the reaper's, promoter's and expirer's passes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from server.domain.job import StoredJob
from server.model.records import FailureReport, HeartbeatOutcome, ReapOutcome, Settlement, SettleReply
from server.store import codec
from server.store.context import ERROR_HISTORY_CAP, StoreContext
from server.store.errors import refusal, translate_redis_errors
from server.store.keys import KeySchema
from server.store.status import ScriptStatus, status_of

# Due scheduled/retryable jobs promoted per queue by one fetch.
PROMOTE_BATCH = 100


class LeaseStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

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
        abandoned: Callable[[list[StoredJob]], None] | None = None,
    ) -> list[StoredJob]:
        """Claim up to `count` jobs; `abandoned` gets the jobs claimed for a caller cancelled meanwhile."""
        c = self._ctx
        k = c.keys
        keys = [k.active, k.events, k.sequence, k.expiring, k.workers, k.paused]
        for queue in queues:
            keys.append(k.available(queue))
            keys.append(k.delayed(queue))
        reply = await c.scripts.call(
            "fetch",
            keys,
            [
                now_ms,
                c.events_maxlen,
                count,
                worker_id,
                "" if lease_ms is None else lease_ms,
                default_lease_ms,
                k.errors_prefix,
                PROMOTE_BATCH,
                default_timeout_ms,
                c.retention.discarded_ms,
                c.script_context,
                *queues,
            ],
            abandoned=None if abandoned is None else lambda reply: abandoned(_claimed(reply)),
        )
        return _claimed(reply)

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
    async def settle_batch(self, entries: Sequence[Settlement], *, now_ms: int, return_jobs: bool) -> list[SettleReply]:
        """Ack or nack every entry in one script call; each entry succeeds or is refused on its own."""
        c = self._ctx
        k = c.keys
        args: list[Any] = [
            now_ms,
            c.events_maxlen,
            c.retention.completed_ms,
            c.retention.discarded_ms,
            c.retention.dead_letter_ms,
            ERROR_HISTORY_CAP,
            "1" if return_jobs else "0",
            c.script_context,
            # One JSON argument: packing many separate arguments costs the client more than decoding costs the script.
            codec.dumps([self._settle_row(entry, now_ms) for entry in entries]),
        ]
        replies = await c.scripts.call("settle_batch", [k.active, k.events, k.sequence, k.dead, k.expiring], args)
        return [_settle_reply(entry, reply, return_jobs) for entry, reply in zip(entries, replies, strict=True)]

    def _settle_row(self, entry: Settlement, now_ms: int) -> list[str]:
        """One entry as settle_batch.lua reads it."""
        token = "" if entry.lease_token is None else str(entry.lease_token)
        failure = entry.failure
        if failure is None:
            result = entry.result_json
            return [
                entry.job_id,
                "ack",
                entry.worker_id,
                token,
                "0" if result is None else "1",
                (result or b"").decode(),
            ]
        return [
            entry.job_id,
            "nack",
            entry.worker_id,
            token,
            _error_tail(failure, now_ms).decode(),
            failure.error_type,
            "0" if failure.retryable is False else "",
            "1" if failure.requeue else "0",
            repr(self._ctx.jitter()),
            failure.code,
            failure.message,
            "1" if failure.undelivered else "0",
        ]

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
        c = self._ctx
        k = c.keys
        # Without a worker id the registry is untouched; the key is only a placeholder.
        worker_key = k.worker(worker_id) if worker_id else k.worker_prefix
        directive, extended, cancelled, not_held, deadline = await c.scripts.call(
            "heartbeat",
            [k.active, k.events, k.workers, worker_key],
            [
                now_ms,
                c.events_maxlen,
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
    async def reap(self, *, now_ms: int, batch: int) -> ReapOutcome:
        c = self._ctx
        k = c.keys
        examined, timed_out, requeued = await c.scripts.call(
            "reap",
            [k.active, k.events, k.sequence, k.dead, k.expiring],
            [
                now_ms,
                c.events_maxlen,
                batch,
                *_job_prefixes(k),
                ERROR_HISTORY_CAP,
                repr(c.jitter()),
                c.retention.discarded_ms,
                c.retention.dead_letter_ms,
                c.script_context,
            ],
        )
        return ReapOutcome(examined=int(examined), timed_out=int(timed_out), requeued=int(requeued))

    @translate_redis_errors
    async def promote(self, queues: Sequence[str], *, now_ms: int, batch: int) -> int:
        c = self._ctx
        keys = [c.keys.sequence]
        for queue in queues:
            keys.append(c.keys.available(queue))
            keys.append(c.keys.delayed(queue))
        return int(await c.scripts.call("promote", keys, [now_ms, c.script_context, batch]))

    @translate_redis_errors
    async def expire(self, *, now_ms: int, batch: int) -> tuple[int, int]:
        """(entries examined, jobs expired) for one batch of due expiries."""
        c = self._ctx
        k = c.keys
        examined, expired = await c.scripts.call(
            "expire",
            [k.expiring, k.events, k.sequence, k.active],
            [
                now_ms,
                c.events_maxlen,
                batch,
                *_job_prefixes(k),
                c.retention.discarded_ms,
                c.script_context,
            ],
        )
        return int(examined), int(expired)


def _claimed(reply: list[Any]) -> list[StoredJob]:
    return [codec.decode_job(job_id.decode(), flat, history, changes) for flat, history, changes, job_id in reply]


def _job_prefixes(keys: KeySchema) -> list[str]:
    """The per-job and per-queue key prefixes, in the order the sweeping scripts (reap, expire) read them."""
    return [keys.job_prefix, keys.errors_prefix, keys.available_prefix, keys.delayed_prefix]


def _settle_reply(entry: Settlement, reply: list[Any], return_jobs: bool) -> SettleReply:
    status = status_of(reply[0], "settle_batch")
    if status is not ScriptStatus.OK:
        action = "acknowledge" if entry.failure is None else "fail"
        error = refusal("settle_batch", reply, entry.job_id, expected="active", action=action)
        current = reply[1].decode() if status is ScriptStatus.CONFLICT else None
        return SettleReply(entry.job_id, state=current, job=None, error=error)
    if return_jobs:
        flat, history = reply[1]
        job = codec.decode_job(entry.job_id, flat, history)
        return SettleReply(entry.job_id, state=job.state.value, job=job, error=None)
    return SettleReply(entry.job_id, state=reply[1].decode(), job=None, error=None)


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
