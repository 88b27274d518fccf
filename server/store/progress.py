"""Progress of jobs (urn:ojs:ext:progress): one script per report, pipelined reads."""

from __future__ import annotations

from collections.abc import Sequence

from server.domain.progress import ProgressReport
from server.domain.states import JobState
from server.model.progress import ProgressRow, ReportOutcome
from server.store import codec
from server.store.context import StoreContext
from server.store.errors import refusal, translate_redis_errors
from server.store.status import ScriptStatus, status_of

# Job hash fields a progress read needs.
_READ_FIELDS = (
    "state",
    "attempt",
    "type",
    "progress",
    "progress_attempt",
    "progress_message",
    "progress_data",
    "progress_at",
)


class ProgressStore:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    @translate_redis_errors
    async def report(self, report: ProgressReport, *, default_lease_ms: int, now_ms: int) -> ReportOutcome:
        """One script: check the lease holder, store the report, extend the lease, emit job.progress."""
        c = self._ctx
        reply = await c.scripts.call(
            "progress",
            [c.keys.active, c.keys.events],
            [
                now_ms,
                c.events_maxlen,
                c.keys.job_prefix,
                report.job_id,
                report.worker_id,
                "" if report.lease_token is None else report.lease_token,
                default_lease_ms,
                "" if report.value is None else repr(report.value),
                report.message or "",
                "0" if report.message is None else "1",
                report.data_json or b"",
                report.checkpoint_json or b"",
            ],
        )
        status = status_of(reply[0], "progress")
        if status not in (ScriptStatus.OK, ScriptStatus.IGNORED):
            raise refusal("progress", reply, report.job_id, expected="active", action="report progress of")
        _, state, value, message, data, attempt, stamp, job_type = reply
        accepted = status is ScriptStatus.OK
        raw = {
            b"state": state,
            b"attempt": attempt,
            b"progress": value,
            b"progress_attempt": attempt,
            b"progress_message": message,
            b"progress_data": data,
            # An accepted report was made now; an ignored one shows the last one (if any).
            b"progress_at": str(now_ms).encode() if accepted else stamp,
        }
        row = ProgressRow(
            job_id=report.job_id,
            type=job_type.decode(),
            state=JobState(state.decode()),
            attempt=int(attempt),
            progress=codec.decode_progress(raw),
        )
        return ReportOutcome(accepted=accepted, row=row, lease_expires_at_ms=int(stamp) if accepted else None)

    @translate_redis_errors
    async def read(self, job_ids: Sequence[str]) -> list[ProgressRow | None]:
        """Each job's progress (None for a job that is gone), in one pipelined round trip."""
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self._ctx.keys.job(job_id), *_READ_FIELDS)
            replies = await pipe.execute()
        rows: list[ProgressRow | None] = []
        for job_id, values in zip(job_ids, replies, strict=True):
            raw = {field.encode(): value for field, value in zip(_READ_FIELDS, values, strict=True) if value}
            if b"state" not in raw:
                rows.append(None)
                continue
            rows.append(
                ProgressRow(
                    job_id=job_id,
                    type=raw.get(b"type", b"").decode(),
                    state=JobState(raw[b"state"].decode()),
                    attempt=int(raw.get(b"attempt") or 0),
                    progress=codec.decode_progress(raw),
                )
            )
        return rows
