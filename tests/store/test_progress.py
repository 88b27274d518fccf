"""The progress script on real Redis (7 and 6.2): fencing, lease extension, attempts, events."""

from __future__ import annotations

import orjson
import pytest

from server.domain.clock import now_ms
from server.domain.errors import ErrorCode, OJSError
from server.domain.progress import parse_report
from server.domain.states import JobState
from server.domain.validation import parse_enqueue
from server.store.facade import Store
from tests.store.test_leases import LEASE_MS, enqueue, failure, fetch


async def test_report_stores_extends_the_lease_and_emits_an_event(store: Store) -> None:
    progress = store.progress
    job_id = await enqueue(store, visibility_timeout_ms=5_000)
    t0 = now_ms()
    [job] = await fetch(store, "w1", t0, lease_ms=None)
    assert job.progress is None

    report = parse_report(job_id=job_id, percentage=40, message="rows", data={"rows": 4}, worker_id="w1")
    outcome = await progress.report(report, default_lease_ms=LEASE_MS, now_ms=t0 + 100)

    assert outcome.accepted and outcome.lease_expires_at_ms == t0 + 100 + 5_000
    assert outcome.row.progress is not None and outcome.row.progress.value == 0.4
    stored = await store.jobs.get(job_id)
    assert stored is not None and stored.lease_expires_at_ms == t0 + 5_100
    assert stored.progress is not None
    assert (stored.progress.value, stored.progress.message, stored.progress.data_json) == (0.4, "rows", b'{"rows":4}')
    # The lease reaper sees the new deadline: nothing is reaped before it.
    assert (await store.leases.reap(now_ms=t0 + 5_000, batch=10)).requeued == 0
    events = [e for e in await store.events.read_events(after=None, count=100) if e.type == "job.progress"]
    assert [(e.job_id, e.state) for e in events] == [(job_id, "active")]
    assert orjson.loads(events[0].data_json)["progress_percent"] == 40


async def test_reports_are_fenced_and_never_lower_the_value(store: Store) -> None:
    progress = store.progress
    job_id = await enqueue(store)
    t0 = now_ms()
    [job] = await fetch(store, "w1", t0)

    for worker, token in (("w2", None), ("", job.lease_token - 1)):
        with pytest.raises(OJSError) as refused:
            report = parse_report(job_id=job_id, progress=0.9, worker_id=worker, lease_token=token)
            await progress.report(report, default_lease_ms=LEASE_MS, now_ms=t0)
        assert refused.value.code is ErrorCode.CONFLICT

    for value, expected in ((0.5, 0.5), (0.2, 0.5), (0.8, 0.8)):
        report = parse_report(job_id=job_id, progress=value, lease_token=job.lease_token)
        outcome = await progress.report(report, default_lease_ms=LEASE_MS, now_ms=t0 + 1)
        assert outcome.row.progress is not None and outcome.row.progress.value == expected

    with pytest.raises(OJSError) as missing:
        await progress.report(parse_report(job_id="nope", progress=0.1), default_lease_ms=LEASE_MS, now_ms=t0)
    assert missing.value.code is ErrorCode.NOT_FOUND


async def test_attempts_completion_and_reports_after_the_end(store: Store) -> None:
    progress = store.progress
    job = parse_enqueue(
        {"type": "p.t", "args": [], "options": {"retry": {"max_attempts": 3, "initial_interval_ms": 1}}},
        now_ms=now_ms(),
    )
    await store.jobs.enqueue(job)
    t0 = now_ms()
    await fetch(store, "w1", t0)
    await progress.report(parse_report(job_id=job.id, progress=0.7), default_lease_ms=LEASE_MS, now_ms=t0)
    await store.leases.nack(job.id, failure(), worker_id="w1", now_ms=t0 + 1)
    (row,) = await progress.read([job.id])
    assert row is not None and row.state is JobState.RETRYABLE
    assert row.progress is not None and row.progress.value == 0.7

    [again] = await fetch(store, "w1", t0 + 100)
    assert again.attempt == 2 and again.progress is None
    await progress.report(parse_report(job_id=job.id, message="only text"), default_lease_ms=LEASE_MS, now_ms=t0 + 101)
    await store.leases.ack(job.id, result_json=None, worker_id="w1", now_ms=t0 + 102)

    (done,) = await progress.read([job.id])
    assert done is not None and done.progress is not None
    assert (done.state, done.progress.value, done.progress.message) == (JobState.COMPLETED, 1.0, "only text")
    late = await progress.report(parse_report(job_id=job.id, progress=0.1), default_lease_ms=LEASE_MS, now_ms=t0 + 200)
    assert late.accepted is False and late.lease_expires_at_ms is None
    assert late.row.progress is not None and late.row.progress.value == 1.0
    assert await progress.read(["gone"]) == [None]
