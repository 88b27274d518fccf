"""Jobs: insert (single and batch), read, cancel and activate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.domain.errors import ErrorCode, OJSError, not_found
from server.domain.job import NewJob, StoredJob
from server.domain.states import JobState
from server.model.records import EnqueueOutcome
from server.store import codec
from server.store.context import StoreContext
from server.store.errors import refusal, translate_redis_errors, unexpected, unique_conflict
from server.store.new_jobs import insert_entry, insert_keys
from server.store.status import ScriptStatus, status_of


class JobStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def enqueue(self, job: NewJob, *, own_notification: bool = False) -> EnqueueOutcome:
        """`own_notification`: the caller wakes this process's waiters itself; its notification is marked as this
        process's (see StoreContext.origin_script_context)."""
        c = self._ctx
        context = c.origin_script_context if own_notification else c.script_context
        reply = await c.scripts.call(
            "enqueue",
            [*insert_keys(c.keys, job), c.keys.active],
            [job.created_at_ms, c.events_maxlen, context, codec.dumps(insert_entry(job))],
        )
        status = status_of(reply[0], "enqueue")
        if status is ScriptStatus.OK:
            return _inserted(reply)
        if status is ScriptStatus.DUPLICATE:
            raise OJSError(
                ErrorCode.DUPLICATE,
                f"a job with id '{job.id}' already exists",
                details={"existing_job_id": job.id, "existing_job_state": reply[1].decode()},
            )
        if status is ScriptStatus.UNIQUE_CONFLICT:
            raise unique_conflict(reply[1], reply[2])
        if status is ScriptStatus.UNIQUE_EXISTING:
            flat, history = reply[2]
            existing = codec.decode_job(reply[1].decode(), flat, history)
            return EnqueueOutcome(state=existing.state, enqueued_at_ms=existing.enqueued_at_ms, existing=existing)
        raise unexpected("enqueue", status)

    @translate_redis_errors
    async def enqueue_batch(
        self, jobs: Sequence[NewJob], *, now_ms: int, own_notification: bool = False
    ) -> list[EnqueueOutcome]:
        """All or nothing; an "ignore" uniqueness hit yields the existing job for that entry.

        `own_notification`: as for `enqueue`.
        """
        c = self._ctx
        k = c.keys
        # One JSON argument for the whole batch: packing thousands of separate
        # arguments costs the client more than the script's decoding.
        entries = codec.dumps([insert_entry(job) for job in jobs])
        context = c.origin_script_context if own_notification else c.script_context
        args: list[Any] = [now_ms, c.events_maxlen, context, entries]
        reply = await c.scripts.call("enqueue_batch", [k.queues, k.sequence, k.events, k.expiring, k.active], args)
        status = status_of(reply[0], "enqueue_batch")
        if status is ScriptStatus.DUPLICATE:
            raise OJSError(
                ErrorCode.DUPLICATE,
                f"jobs[{int(reply[1])}]: a job with id '{reply[2].decode()}' already exists",
                details={"index": int(reply[1]), "existing_job_id": reply[2].decode()},
            )
        if status is ScriptStatus.UNIQUE_CONFLICT:
            error = unique_conflict(reply[2], reply[3])
            error.details["index"] = int(reply[1])
            error.message = f"jobs[{int(reply[1])}]: {error.message}"
            raise error
        if status is not ScriptStatus.OK:
            raise unexpected("enqueue_batch", status)
        return await self._batch_outcomes(reply[1])

    async def _batch_outcomes(self, entries: list[list[Any]]) -> list[EnqueueOutcome]:
        statuses = [status_of(entry[0], "enqueue_batch") for entry in entries]
        existing_ids = [
            entry[1].decode()
            for entry, status in zip(entries, statuses, strict=True)
            if status is ScriptStatus.UNIQUE_EXISTING
        ]
        existing = {j.id: j for j in await self.get_many(existing_ids)} if existing_ids else {}
        outcomes = []
        for entry, status in zip(entries, statuses, strict=True):
            if status is ScriptStatus.UNIQUE_EXISTING:
                found = existing.get(entry[1].decode())
                if found is None:
                    raise not_found("job", entry[1].decode())
                outcomes.append(EnqueueOutcome(state=found.state, enqueued_at_ms=found.enqueued_at_ms, existing=found))
            elif status is ScriptStatus.OK:
                outcomes.append(
                    EnqueueOutcome(
                        state=JobState(entry[2].decode()), enqueued_at_ms=int(entry[1]) if entry[1] else None
                    )
                )
            else:
                raise unexpected("enqueue_batch", status)
        return outcomes

    @translate_redis_errors
    async def cancel(self, job_id: str, *, reason: str, now_ms: int) -> tuple[JobState, StoredJob]:
        c = self._ctx
        k = c.keys
        reply = await c.scripts.call(
            "cancel",
            [k.job(job_id), k.errors(job_id), k.active, k.events, k.expiring, k.sequence],
            [
                now_ms,
                c.events_maxlen,
                job_id,
                k.available_prefix,
                k.delayed_prefix,
                reason,
                c.retention.cancelled_ms,
                c.script_context,
            ],
        )
        if status_of(reply[0], "cancel") is ScriptStatus.OK:
            flat, history = reply[2]
            return JobState(reply[1].decode()), codec.decode_job(job_id, flat, history)
        raise refusal("cancel", reply, job_id, expected="non-terminal", action="cancel")

    @translate_redis_errors
    async def activate(self, job_id: str, *, now_ms: int) -> StoredJob:
        c = self._ctx
        k = c.keys
        reply = await c.scripts.call(
            "activate",
            [k.job(job_id), k.errors(job_id), k.sequence, k.events],
            [now_ms, c.events_maxlen, job_id, k.available_prefix, c.script_context],
        )
        return job_reply("activate", reply, job_id, expected="pending", action="activate")

    @translate_redis_errors
    async def get(self, job_id: str) -> StoredJob | None:
        k = self._ctx.keys
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.job(job_id))
            pipe.lrange(k.errors(job_id), 0, -1)
            raw, history = await pipe.execute()
        if not raw or b"state" not in raw:
            return None
        flat = [item for pair in raw.items() for item in pair]
        return codec.decode_job(job_id, flat, history)

    @translate_redis_errors
    async def get_many(self, job_ids: Sequence[str]) -> list[StoredJob]:
        """The jobs that exist, in the order asked."""
        k = self._ctx.keys
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(k.job(job_id))
                pipe.lrange(k.errors(job_id), 0, -1)
            replies = await pipe.execute()
        jobs = []
        for job_id, raw, history in zip(job_ids, replies[::2], replies[1::2], strict=True):
            if raw and b"state" in raw:
                jobs.append(codec.decode_job(job_id, [item for pair in raw.items() for item in pair], history))
        return jobs

    @translate_redis_errors
    async def job_summaries(self, job_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(queue, type) of each job; ("", "") for a job that is gone."""
        rows = await self._fields(job_ids, "queue", "type")
        return [((q or b"").decode(), (t or b"").decode()) for q, t in rows]

    @translate_redis_errors
    async def job_states(self, job_ids: Sequence[str]) -> list[tuple[str, str, bytes | None]]:
        """(state, type, result JSON) of each job; ("", "", None) for a job that is gone."""
        rows = await self._fields(job_ids, "state", "type", "result")
        return [((state or b"").decode(), (kind or b"").decode(), result) for state, kind, result in rows]

    @translate_redis_errors
    async def lease_tokens(self, job_ids: Sequence[str]) -> list[tuple[str, int]]:
        """(state, lease token) of each job; ("", 0) for a job that is gone."""
        rows = await self._fields(job_ids, "state", "lease_token")
        return [((state or b"").decode(), int(token or 0)) for state, token in rows]

    async def _fields(self, job_ids: Sequence[str], *fields: str) -> list[list[bytes | None]]:
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self._ctx.keys.job(job_id), *fields)
            rows: list[list[bytes | None]] = await pipe.execute()
        return rows


def job_reply(script: str, reply: list[Any], job_id: str, *, expected: str, action: str) -> StoredJob:
    """The job of an {'ok', job} reply, or the refusal raised."""
    if status_of(reply[0], script) is ScriptStatus.OK:
        flat, history = reply[1]
        return codec.decode_job(job_id, flat, history)
    raise refusal(script, reply, job_id, expected=expected, action=action)


def _inserted(reply: list[Any]) -> EnqueueOutcome:
    """{'ok', enqueued_at, state, due} of a job the script inserted."""
    return EnqueueOutcome(
        state=JobState(reply[2].decode()),
        enqueued_at_ms=int(reply[1]) if reply[1] else None,
        scheduled_at_ms=int(reply[3]) if len(reply) > 3 and reply[3] else None,
    )
