"""Job operations: validate, decide, then one store call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import orjson

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import ErrorCode, OJSError, invalid, not_found
from server.domain.ids import is_uuid7
from server.domain.job import NewJob, StoredJob
from server.domain.limits import DEFAULT_MAX_JOB_BYTES, MAX_DURATION_MS, MAX_FETCH_QUEUES, check_name_bytes
from server.domain.states import JobState
from server.domain.validation import QUEUE_PATTERN, parse_enqueue, validate_name
from server.model.records import EnqueueOutcome, FailureReport, Settlement, SettleReply
from server.service.intake import batch_entry_error, batch_error, check_defaults, check_job_size
from server.service.settle import SettleGroup
from server.store.facade import Store
from server.store.notifications import JobNotifier

MAX_FETCH_COUNT = 1000
# Longest long poll a fetch may ask for.
MAX_WAIT_MS = 60_000
# Waiters look again this often even without a wake-up, in case one was lost.
RECHECK_S = 15.0
# A full stream re-checks its jobs this often, for acks served by other processes.
SETTLE_RECHECK_S = 0.25


def _job_id(job_id: str) -> str:
    if not job_id:
        raise invalid("job_id is required", field="job_id")
    return job_id


# How a stream gives back jobs it claimed but never delivered.
_UNDELIVERED = FailureReport(
    code="undelivered",
    message="the job stream closed before the job was delivered",
    error_type="undelivered",
    details=None,
    backtrace=None,
    retryable=None,
    requeue=True,
    undelivered=True,
)


# How a fetch ends a claimed job whose stored data cannot be rendered.
_UNRENDERABLE = FailureReport(
    code="invalid_stored_job",
    message="the stored job holds a value that cannot be delivered",
    error_type="invalid_stored_job",
    details=None,
    backtrace=None,
    retryable=False,
    requeue=False,
)


class _StreamWindow:
    """The jobs a stream has delivered and not yet seen settled (job id -> lease token)."""

    def __init__(self) -> None:
        self.held: dict[str, int] = {}
        self.changed = asyncio.Event()
        # A job of the window was settled through this process since the last re-check: its worker's
        # settlements come here, so there is nothing to look up in Redis yet.
        self.settled_here = False


class JobService:
    def __init__(
        self,
        store: Store,
        *,
        default_visibility_timeout_ms: int,
        default_timeout_ms: int = 0,
        max_batch: int = 10_000,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        notifier: JobNotifier | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._store = store
        self._max_batch = max_batch
        self._max_job_bytes = max_job_bytes
        self._notifier = notifier
        self._settle_group = SettleGroup(store, clock=clock)
        # Requeues of undelivered jobs still running (kept referenced until done).
        self._background: set[asyncio.Future[Any]] = set()
        # The streams holding each delivered job, told when it is acked or nacked here.
        self._windows_by_job: dict[str, set[_StreamWindow]] = {}
        self.stopping = asyncio.Event()
        self._default_lease_ms = default_visibility_timeout_ms
        self._default_timeout_ms = default_timeout_ms

    async def enqueue(self, envelope: Mapping[str, Any]) -> tuple[StoredJob, bool]:
        """Store a job given in the OJS JSON form (already decoded).

        Returns the job and whether it is an existing one kept by a unique policy
        (on_conflict "ignore") instead of the new one.
        """
        job = parse_enqueue(envelope, now_ms=self._clock.now_ms())
        check_job_size(job, self._max_job_bytes)
        own = self._wake_local([job])
        outcome = await self._store.jobs.enqueue(job, own_notification=own)
        if outcome.existing is not None:
            return outcome.existing, True
        return _stored(job, outcome), False

    async def enqueue_batch(self, body: Any) -> list[tuple[StoredJob, bool]]:
        """All or nothing: every job is validated first, then all are stored in one script."""
        if not isinstance(body, Mapping):
            raise OJSError(ErrorCode.INVALID_PAYLOAD, "request body must be a JSON object")
        entries = body.get("jobs")
        if not isinstance(entries, list) or not entries:
            raise invalid("jobs must be a non-empty list", field="jobs")
        if len(entries) > self._max_batch:
            raise OJSError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"a batch holds at most {self._max_batch} jobs, got {len(entries)}",
                details={"max_jobs": self._max_batch, "jobs": len(entries)},
            )
        defaults = body.get("default_options") or {}
        if not isinstance(defaults, Mapping):
            raise invalid("default_options must be a JSON object", field="default_options")
        now = self._clock.now_ms()
        check_defaults(defaults, now)
        jobs: list[NewJob] = []
        errors: list[dict[str, Any]] = []
        seen_ids: set[str] = set()
        held_fingerprints: set[str] = set()
        for index, entry in enumerate(entries):
            try:
                if isinstance(entry, Mapping) and defaults:
                    entry = _with_defaults(entry, defaults)
                job = parse_enqueue(entry, now_ms=now)
                check_job_size(job, self._max_job_bytes)
                if job.id in seen_ids:
                    raise invalid(f"id '{job.id}' appears twice in the batch", field="id")
                # A rejecting job meeting an earlier job of the batch with its fingerprint
                # could only be stored by breaking the all-or-nothing promise.
                if job.unique_fingerprint and job.unique_policy:
                    if job.unique_policy.on_conflict == "reject" and job.unique_fingerprint in held_fingerprints:
                        raise OJSError(ErrorCode.DUPLICATE, "an earlier job of the batch has the same unique key")
                    held_fingerprints.add(job.unique_fingerprint)
            except OJSError as exc:
                errors.append(batch_entry_error(index, exc))
                continue
            seen_ids.add(job.id)
            jobs.append(job)
        if errors:
            raise batch_error(errors, len(entries))
        own = self._wake_local(jobs)
        outcomes = await self._store.jobs.enqueue_batch(jobs, now_ms=now, own_notification=own)
        return [
            (outcome.existing, True) if outcome.existing is not None else (_stored(job, outcome), False)
            for job, outcome in zip(jobs, outcomes, strict=True)
        ]

    def _wake_local(self, jobs: Sequence[NewJob]) -> bool:
        """Wake this process's waiters of the queues these jobs are about to become available in.

        Done before the enqueue is sent: their fetches then follow it on the same connection and find the
        jobs without waiting for the notification to come back. True: the enqueue's notification is to be
        marked as this process's (the notifier skips it).
        """
        notifier = self._notifier
        if notifier is None:
            return False
        for queue in {job.queue for job in jobs if job.initial_state is JobState.AVAILABLE}:
            notifier.wake_local(queue)
        return True

    async def get(self, job_id: str) -> StoredJob:
        job = await self._store.jobs.get(_job_id(job_id)) if is_uuid7(job_id) else None
        if job is None:
            raise not_found("job", job_id)
        return job

    async def cancel(self, job_id: str, *, reason: str = "") -> tuple[JobState, StoredJob]:
        return await self._store.jobs.cancel(_job_id(job_id), reason=reason, now_ms=self._clock.now_ms())

    async def activate(self, job_id: str) -> StoredJob:
        return await self._store.jobs.activate(_job_id(job_id), now_ms=self._clock.now_ms())

    def _fetch_args(
        self,
        queues: Sequence[str],
        count: int,
        visibility_timeout_ms: int | None,
        worker_id: str,
        *,
        maximum: int = MAX_FETCH_COUNT,
    ) -> tuple[list[str], int]:
        if not queues:
            raise invalid("queues must name at least one queue", field="queues")
        if len(queues) > MAX_FETCH_QUEUES:
            raise invalid(f"a fetch names at most {MAX_FETCH_QUEUES} queues, got {len(queues)}", field="queues")
        for index, queue in enumerate(queues):
            validate_name(queue, field=f"queues[{index}]", pattern=QUEUE_PATTERN)
        count = count or 1
        if not 1 <= count <= maximum:
            raise invalid(f"count must be between 1 and {maximum}", field="count")
        if visibility_timeout_ms is not None and not 0 < visibility_timeout_ms <= MAX_DURATION_MS:
            raise invalid(
                f"visibility_timeout_ms must be between 1 and {MAX_DURATION_MS}", field="visibility_timeout_ms"
            )
        check_name_bytes(worker_id, field="worker_id")
        # A queue named twice would be scanned twice for nothing.
        return list(dict.fromkeys(queues)), count

    async def _claim(
        self, queues: list[str], count: int, worker_id: str, visibility_timeout_ms: int | None
    ) -> list[StoredJob]:
        """Claim jobs; those claimed for a caller cancelled meanwhile (a client gone, a deadline passed, a stream
        closed) go back to their queues at once, not when their leases run out."""
        return await self._store.leases.fetch(
            queues,
            count=count,
            worker_id=worker_id,
            lease_ms=visibility_timeout_ms,
            default_lease_ms=self._default_lease_ms,
            now_ms=self._clock.now_ms(),
            default_timeout_ms=self._default_timeout_ms,
            abandoned=lambda jobs: self._release(jobs, worker_id),
        )

    async def fetch(
        self,
        queues: Sequence[str],
        *,
        count: int,
        worker_id: str,
        visibility_timeout_ms: int | None,
        wait_ms: int = 0,
    ) -> list[StoredJob]:
        """Claim jobs now; with `wait_ms`, wait that long for one when none is ready (a long poll)."""
        ordered, count = self._fetch_args(queues, count, visibility_timeout_ms, worker_id)
        if not 0 <= wait_ms <= MAX_WAIT_MS:
            raise invalid(f"wait_ms must be between 0 and {MAX_WAIT_MS}", field="wait_ms")
        jobs = await self._claim(ordered, count, worker_id, visibility_timeout_ms)
        if jobs or wait_ms == 0 or self._notifier is None:
            return jobs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        with self._notifier.watch(ordered) as watch:
            while not self.stopping.is_set():
                # Registered before this check, so a job arriving now still wakes the wait below.
                watch.clear()
                jobs = await self._claim(ordered, count, worker_id, visibility_timeout_ms)
                remaining = deadline - loop.time()
                if jobs or remaining <= 0:
                    return jobs
                await watch.wait(min(remaining, RECHECK_S))
        return []

    async def stream(
        self,
        queues: Sequence[str],
        *,
        worker_id: str,
        max_concurrent: int,
        visibility_timeout_ms: int | None,
        max_batch: int = 1,
    ) -> AsyncGenerator[list[StoredJob], None]:
        """Jobs pushed as they become available, never more than `max_concurrent` unsettled at once.

        Jobs come in lists of at most `max_batch` (0: whatever one claim got). A job
        stops counting once it is no longer active under the lease it was streamed
        with (acked, nacked, cancelled or re-leased). Acks served by this process wake
        the stream at once; acks elsewhere are noticed by a short re-check, which is
        skipped while this process sees the stream's jobs settled.
        """
        ordered, size = self._fetch_args(queues, max_concurrent, visibility_timeout_ms, worker_id)
        if max_batch < 0:
            raise invalid("max_batch must not be negative", field="max_batch")
        if self._notifier is None:
            raise OJSError(ErrorCode.UNSUPPORTED, "job streams are not available on this server")
        loop = asyncio.get_running_loop()
        window = _StreamWindow()
        recheck_at = loop.time() + SETTLE_RECHECK_S
        try:
            with self._notifier.watch(ordered) as watch:
                while not self.stopping.is_set():
                    if window.held and loop.time() >= recheck_at:
                        if window.settled_here:
                            window.settled_here = False
                        else:
                            await self._recheck(window)
                        recheck_at = loop.time() + SETTLE_RECHECK_S
                    free = size - len(window.held)
                    if free > 0:
                        # This claim covers every wake-up so far; one during it means another look.
                        watch.clear()
                        jobs = await self._claim(ordered, free, worker_id, visibility_timeout_ms)
                        step = max_batch or len(jobs) or 1
                        handed = 0
                        try:
                            for start in range(0, len(jobs), step):
                                batch = jobs[start : start + step]
                                for job in batch:
                                    window.held[job.id] = job.lease_token
                                    self._windows_by_job.setdefault(job.id, set()).add(window)
                                handed += len(batch)
                                yield batch
                        finally:
                            # Closed mid-claim: the jobs not yet handed to the stream were never delivered.
                            self._release(jobs[handed:], worker_id)
                        if len(jobs) == free:
                            continue
                    if len(window.held) >= size:
                        window.changed.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout_at(recheck_at):
                                await window.changed.wait()
                    else:
                        await watch.wait(RECHECK_S)
        finally:
            for job_id in list(window.held):
                self._forget(job_id, window)

    async def give_back(self, jobs: Sequence[StoredJob], worker_id: str) -> None:
        """Claimed jobs that will not be delivered (a reply too large, a failure after the claim) go back now.

        Their attempt is not counted; a job whose lease already changed hands is left alone.
        """
        if jobs:
            entries = [
                Settlement(job.id, worker_id=worker_id, lease_token=job.lease_token, failure=_UNDELIVERED)
                for job in jobs
            ]
            await self._store.leases.settle_batch(entries, now_ms=self._clock.now_ms(), return_jobs=False)

    async def fail_undeliverable(self, jobs: Sequence[StoredJob], worker_id: str) -> None:
        """Claimed jobs whose stored data cannot be sent end as failed (no retry), so they stop blocking a queue."""
        if jobs:
            entries = [
                Settlement(job.id, worker_id=worker_id, lease_token=job.lease_token, failure=_UNRENDERABLE)
                for job in jobs
            ]
            await self._store.leases.settle_batch(entries, now_ms=self._clock.now_ms(), return_jobs=False)

    async def _recheck(self, window: _StreamWindow) -> None:
        """Settled by another process, or re-leased after the lease ran out: only Redis knows.

        Settles served here were already taken off by _settled.
        """
        held = list(window.held.items())
        states = await self._store.jobs.lease_tokens([job_id for job_id, _ in held])
        for (job_id, token), (state, current) in zip(held, states, strict=True):
            if state != JobState.ACTIVE.value or current != token:
                self._forget(job_id, window)

    def _release(self, jobs: Sequence[StoredJob], worker_id: str) -> None:
        """Put claimed but undelivered jobs back at once, their attempt not counted."""
        if not jobs:
            return
        entries = [
            Settlement(job.id, worker_id=worker_id, lease_token=job.lease_token, failure=_UNDELIVERED) for job in jobs
        ]
        task = asyncio.ensure_future(
            self._store.leases.settle_batch(entries, now_ms=self._clock.now_ms(), return_jobs=False)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _forget(self, job_id: str, window: _StreamWindow) -> None:
        window.held.pop(job_id, None)
        windows = self._windows_by_job.get(job_id)
        if windows is not None:
            windows.discard(window)
            if not windows:
                del self._windows_by_job[job_id]

    def _settled(self, job_id: str) -> None:
        """A job was acked or nacked through this process: the streams holding it have room again."""
        for window in self._windows_by_job.pop(job_id, ()):
            window.held.pop(job_id, None)
            window.settled_here = True
            window.changed.set()

    def stop_waiting(self) -> None:
        """Shutdown: end long polls and streams promptly."""
        self.stopping.set()
        for windows in self._windows_by_job.values():
            for window in windows:
                window.changed.set()
        if self._notifier is not None:
            self._notifier.wake_all()

    async def flush(self) -> None:
        """Wait for grouped acks still being written and for requeues of undelivered jobs."""
        await self._settle_group.flush()
        while self._background:
            await asyncio.wait(set(self._background))

    async def ack(
        self, job_id: str, *, result_json: bytes | None, worker_id: str, lease_token: int | None = None
    ) -> StoredJob:
        entry = Settlement(_job_id(job_id), worker_id=worker_id, lease_token=lease_token, result_json=result_json)
        return self._settled_job(await self._settle_group.settle(entry))

    async def nack(
        self, job_id: str, failure: FailureReport, *, worker_id: str, lease_token: int | None = None
    ) -> StoredJob:
        entry = Settlement(_job_id(job_id), worker_id=worker_id, lease_token=lease_token, failure=failure)
        return self._settled_job(await self._settle_group.settle(entry))

    def _settled_job(self, reply: SettleReply) -> StoredJob:
        job = reply.settled_job()
        self._settled(job.id)
        return job

    async def settle_batch(self, entries: Sequence[Settlement], *, return_jobs: bool) -> list[SettleReply]:
        """Ack and nack many jobs in one script call; entries are refused one by one, never the call."""
        if not entries:
            raise invalid("entries must list at least one job", field="entries")
        if len(entries) > self._max_batch:
            raise OJSError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"a batch holds at most {self._max_batch} entries, got {len(entries)}",
                details={"max_entries": self._max_batch, "entries": len(entries)},
            )
        valid = [entry for entry in entries if entry.job_id]
        replies = iter(
            await self._store.leases.settle_batch(valid, now_ms=self._clock.now_ms(), return_jobs=return_jobs)
            if valid
            else []
        )
        out: list[SettleReply] = []
        for index, entry in enumerate(entries):
            if not entry.job_id:
                error = invalid(f"entries[{index}].job_id is required", field=f"entries[{index}].job_id")
                out.append(SettleReply(entry.job_id, state=None, job=None, error=error))
                continue
            reply = next(replies)
            if reply.error is None:
                self._settled(reply.job_id)
            out.append(reply)
        return out


def failure_report(
    *,
    code: str,
    message: str,
    error_type: str,
    details: dict[str, Any] | None,
    backtrace: str | None,
    retryable: bool | None,
    requeue: bool,
) -> FailureReport:
    """A worker's failure report, with the defaults the spec gives an incomplete one."""
    code = code or "handler_error"
    # The type matched against non_retryable_errors (SPEC-GUIDE §0.13).
    if not error_type:
        error_class = (details or {}).get("error_class")
        error_type = error_class if isinstance(error_class, str) and error_class else code
    return FailureReport(
        code=code,
        message=message,
        error_type=error_type,
        details=details,
        backtrace=backtrace,
        retryable=retryable,
        requeue=requeue,
    )


def _with_defaults(entry: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The job with the batch's default options where it sets none itself (in options or at top level)."""
    options = dict(entry.get("options") or {})
    for name, value in defaults.items():
        if name not in options and entry.get(name) is None:
            options[name] = value
    return {**entry, "options": options}


def _stored(job: NewJob, outcome: EnqueueOutcome) -> StoredJob:
    """The stored form of a job just inserted, without reading it back."""
    return StoredJob(
        id=job.id,
        type=job.type,
        queue=job.queue,
        state=outcome.state,
        priority=job.priority,
        attempt=0,
        max_attempts=job.retry.max_attempts,
        args_json=orjson.dumps(job.args),
        meta_json=orjson.dumps(job.meta),
        retry=job.retry,
        created_at_ms=job.created_at_ms,
        enqueued_at_ms=outcome.enqueued_at_ms,
        scheduled_at_ms=outcome.scheduled_at_ms or job.scheduled_at_ms,
        expires_at_ms=job.expires_at_ms,
        timeout_ms=job.timeout_ms,
        visibility_timeout_ms=job.visibility_timeout_ms,
        tags=job.tags,
        extra_json=orjson.dumps(job.extra) if job.extra else None,
        schema=job.schema,
        trace_id=job.trace_id,
        unique=job.unique,
    )
