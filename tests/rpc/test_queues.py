"""Queues and events over a real grpc.aio channel: listing, pause and resume, statistics, the event log."""

from __future__ import annotations

import time
from typing import Any

import grpc
import orjson
from ojs.v1 import events_pb2, job_pb2, queue_pb2, worker_pb2

from tests.rpc.calls import all_queues, enqueue_reply, enqueue_simple, fetch, fetch_queue, get_job, ms_of, queue_stats
from tests.rpc.rich_status import error_info, failure
from tests.support import new_queue

S = job_pb2
Q = queue_pb2
W = worker_pb2


async def test_list_queues(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    for queue, count in (("beta", 2), ("alpha", 1), ("gamma", 3)):
        for _ in range(count):
            await enqueue_simple(stub, queue)
    await fetch(stub, ["gamma"])
    response = await stub.ListQueues(queue_pb2.ListQueuesRequest())
    assert [q.name for q in response.queues] == ["alpha", "beta", "gamma"]
    assert [q.available_count for q in response.queues] == [1, 2, 2]
    assert all(not q.paused for q in response.queues)
    assert all(q.HasField("created_at") for q in response.queues)
    assert response.total == 3
    assert response.next_cursor == ""


async def test_list_queues_pages(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    for queue in ("q1", "q2", "q3"):
        await enqueue_simple(stub, queue)
    first = await stub.ListQueues(queue_pb2.ListQueuesRequest(limit=2))
    assert [q.name for q in first.queues] == ["q1", "q2"]
    assert first.next_cursor
    second = await stub.ListQueues(queue_pb2.ListQueuesRequest(limit=2, cursor=first.next_cursor))
    assert [q.name for q in second.queues] == ["q3"]
    assert second.next_cursor == ""
    error = await failure(stub.ListQueues(queue_pb2.ListQueuesRequest(limit=5000)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_queues_after_flush_is_empty(stub: Any, ojs_http: Any) -> None:
    await enqueue_simple(stub, new_queue())
    await ojs_http.flush()
    response = await stub.ListQueues(queue_pb2.ListQueuesRequest())
    assert list(response.queues) == []


async def test_list_events_filters_by_type_and_queue(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue, other = new_queue("events"), new_queue("other")
    jobs = [await enqueue_simple(stub, queue) for _ in range(3)]
    await enqueue_simple(stub, other)
    await fetch(stub, [queue])
    response = await stub.ListEvents(events_pb2.ListEventsRequest(types=["job.enqueued"], queues=[queue]))
    assert [e.job_id for e in response.events] == [j.id for j in jobs]
    for event in response.events:
        assert event.type == "job.enqueued"
        assert event.queue == queue
        assert event.job_type == "test.echo"
        data = orjson.loads(event.data_json)
        assert data["job_type"] == "test.echo"
        assert data["queue"] == queue
        assert event.HasField("timestamp")
        assert event.cursor
    assert response.has_more is False


async def test_list_events_of_a_lifecycle(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.Ack(worker_pb2.AckRequest(job_id=job.id))
    response = await stub.ListEvents(events_pb2.ListEventsRequest(job_id=job.id))
    assert [e.type for e in response.events] == ["job.enqueued", "job.started", "job.completed"]
    started = orjson.loads(response.events[1].data_json)
    assert started["attempt"] == 1
    completed = orjson.loads(response.events[2].data_json)
    assert completed["duration_ms"] >= 0


async def test_list_events_type_patterns(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue = new_queue()
    job = await enqueue_simple(stub, queue)
    await fetch(stub, [queue])
    await stub.CancelJob(job_pb2.CancelJobRequest(job_id=job.id))
    everything = await stub.ListEvents(events_pb2.ListEventsRequest(types=["job.*"], queues=[queue]))
    assert [e.type for e in everything.events] == ["job.enqueued", "job.started", "job.cancelled"]
    some = await stub.ListEvents(events_pb2.ListEventsRequest(types=["job.started", "job.cancelled"]))
    assert [e.type for e in some.events] == ["job.started", "job.cancelled"]
    by_type = await stub.ListEvents(events_pb2.ListEventsRequest(job_types=["other.type"]))
    assert list(by_type.events) == []


async def test_list_events_pages_with_a_cursor(stub: Any, ojs_http: Any) -> None:
    await ojs_http.flush()
    queue = new_queue()
    jobs = [await enqueue_simple(stub, queue) for _ in range(5)]
    first = await stub.ListEvents(events_pb2.ListEventsRequest(queues=[queue], limit=2))
    assert [e.job_id for e in first.events] == [j.id for j in jobs[:2]]
    assert first.has_more is True
    rest = await stub.ListEvents(events_pb2.ListEventsRequest(queues=[queue], after=first.cursor, limit=10))
    assert [e.job_id for e in rest.events] == [j.id for j in jobs[2:]]
    error = await failure(stub.ListEvents(events_pb2.ListEventsRequest(after="bogus")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# --------------------------------------------------------------------------- pause and resume


async def test_pause_and_resume_report_queue_info(stub: Any) -> None:
    queue = new_queue()
    await enqueue_reply(stub, {"type": "pause.job", "args": [], "options": {"queue": queue}})
    before = int(time.time() * 1000)
    paused = (await stub.PauseQueue(Q.PauseQueueRequest(queue=queue))).queue
    assert paused.name == queue
    assert paused.paused is True
    assert paused.HasField("paused_at")
    assert before - 1000 <= ms_of(paused.paused_at) <= int(time.time() * 1000) + 1000
    assert paused.available_count == 1
    assert paused.HasField("created_at")

    again = (await stub.PauseQueue(Q.PauseQueueRequest(queue=queue))).queue
    assert again.paused is True
    assert ms_of(again.paused_at) == ms_of(paused.paused_at)

    accepted = await enqueue_reply(stub, {"type": "pause.job", "args": [], "options": {"queue": queue}})
    assert accepted.job.state == S.JOB_STATE_AVAILABLE
    assert await fetch_queue(stub, queue) == []
    listed = (await all_queues(stub))[queue]
    assert listed.paused is True
    assert ms_of(listed.paused_at) == ms_of(paused.paused_at)
    assert listed.available_count == 2
    assert (await queue_stats(stub, queue)).paused is True

    resumed = (await stub.ResumeQueue(Q.ResumeQueueRequest(queue=queue))).queue
    assert resumed.name == queue
    assert resumed.paused is False
    assert not resumed.HasField("paused_at")
    assert resumed.available_count == 2
    assert len(await fetch_queue(stub, queue)) == 2
    listed = (await all_queues(stub))[queue]
    assert listed.paused is False
    assert not listed.HasField("paused_at")


async def test_pause_rejects_a_bad_queue_name(stub: Any) -> None:
    for name in ("", "Upper Case"):
        error = await failure(stub.PauseQueue(Q.PauseQueueRequest(queue=name)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = await failure(stub.ResumeQueue(Q.ResumeQueueRequest(queue="")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# --------------------------------------------------------------------------- queue stats


async def test_queue_stats_fields(stub: Any) -> None:
    queue = new_queue()

    async def put(**options: Any) -> Any:
        return (
            await enqueue_reply(stub, {"type": "stats.job", "args": [], "options": {"queue": queue, **options}})
        ).job

    done, failed, cancelled, waiting = [await put() for _ in range(4)]
    await put(scheduled_at="+PT1H")
    await put(pending=True)
    first = await queue_stats(stub, queue)
    assert (first.available, first.active, first.scheduled, first.pending) == (4, 0, 1, 1)
    assert (first.completed, first.discarded, first.cancelled, first.completed_last_hour) == (0, 0, 0, 0)

    fetched = await fetch_queue(stub, queue, count=2)
    assert [j.id for j in fetched] == [done.id, failed.id]
    middle = await queue_stats(stub, queue)
    assert (middle.available, middle.active) == (2, 2)

    await stub.Ack(W.AckRequest(job_id=done.id))
    await stub.Nack(W.NackRequest(job_id=failed.id, error=S.JobError(code="boom", message="x"), retryable=False))
    await stub.CancelJob(S.CancelJobRequest(job_id=cancelled.id))
    final = await queue_stats(stub, queue)
    assert (final.available, final.active, final.scheduled, final.pending, final.retryable, final.dead) == (
        1,
        0,
        1,
        1,
        0,
        0,
    )
    assert (final.completed, final.discarded, final.cancelled) == (1, 1, 1)
    assert final.completed_last_hour == 1
    assert final.failed_last_hour == 1
    assert final.avg_duration_ms >= 0
    assert final.avg_wait_ms >= 0
    assert final.throughput_per_second >= 0
    assert final.paused is False
    assert (await get_job(stub, waiting.id)).state == S.JOB_STATE_AVAILABLE


async def test_queue_stats_of_an_unknown_queue_is_not_found(stub: Any) -> None:
    error = await failure(stub.QueueStats(Q.QueueStatsRequest(queue=new_queue("never"))))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "not_found"
    bad = await failure(stub.QueueStats(Q.QueueStatsRequest(queue="Bad Name")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_queue_stats_after_a_batch(stub: Any) -> None:
    queue = new_queue()
    jobs = [{"type": "stats.batch", "args": [i], "options": {"queue": queue}} for i in range(100)]
    await stub.EnqueueBatch(S.EnqueueBatchRequest(batch_json=orjson.dumps({"jobs": jobs})))
    assert (await queue_stats(stub, queue)).available == 100
