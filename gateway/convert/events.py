"""Events as JSON, the event list and stream subscriptions, and Server-Sent Events frames."""

from __future__ import annotations

from typing import Any

import orjson
from multidict import MultiMapping
from ojs.v1 import events_pb2

from gateway.convert.common import query_int, query_values, struct_to_py
from ojs_json.scalars import timestamp

# Events carry no source in the proto; CloudEvents-style consumers need one.
EVENT_SOURCE = "ojs://ojs-server/events"


def list_events_request(query: MultiMapping[str]) -> events_pb2.ListEventsRequest:
    request = events_pb2.ListEventsRequest(
        types=query_values(query, "types"),
        queues=query_values(query, "queues"),
        job_types=query_values(query, "job_types"),
        after=query.get("after", ""),
        job_id=query.get("job_id", ""),
    )
    limit = query_int(query, "limit")
    if limit is not None:
        request.limit = limit
    return request


def stream_events_request(
    query: MultiMapping[str], last_event_id: str | None, *, job_id: str = "", queue: str = ""
) -> events_pb2.StreamEventsRequest:
    """The subscription of an SSE route; a reconnecting client's Last-Event-ID wins over `?after=`."""
    after = last_event_id.strip() if last_event_id is not None else ""
    return events_pb2.StreamEventsRequest(
        job_id=job_id,
        queues=[queue] if queue else [],
        event_types=query_values(query, "types"),
        after=after or query.get("after", ""),
    )


def event_to_json(event: events_pb2.Event) -> dict[str, Any]:
    out: dict[str, Any] = {"id": event.id, "type": event.type}
    if event.HasField("timestamp"):
        out["time"] = timestamp(event.timestamp)
    out["specversion"] = "1.0"
    out["source"] = EVENT_SOURCE
    if event.job_id:
        out["subject"] = event.job_id
        out["job_id"] = event.job_id
    if event.job_type:
        out["job_type"] = event.job_type
    if event.queue:
        out["queue"] = event.queue
    if event.workflow_id:
        out["workflow_id"] = event.workflow_id
    if event.state:
        out["state"] = event.state
    if event.data_json:
        out["data"] = orjson.Fragment(event.data_json)
    else:
        out["data"] = struct_to_py(event.data) if event.HasField("data") else {}
    return out


KEEPALIVE_EVENT = "stream.keepalive"
DROPPED_EVENT = "system.events_dropped"
_KEEPALIVE_FRAME = b": keepalive\n\n"


def _dropped_count(event: events_pb2.Event) -> int:
    data: Any = None
    if event.data_json:
        try:
            data = orjson.loads(event.data_json)
        except orjson.JSONDecodeError:
            data = None
    elif event.HasField("data"):
        data = struct_to_py(event.data)
    value = data.get("dropped") if isinstance(data, dict) else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _data_lines(payload: bytes) -> bytes:
    if b"\n" not in payload and b"\r" not in payload:
        return b"data: " + payload + b"\n"
    # A line break inside JSON is whitespace; SSE joins the data lines back with one.
    return b"".join(b"data: " + line + b"\n" for line in payload.splitlines())


def sse_frame(event: events_pb2.Event) -> bytes:
    """One event of a text/event-stream: the object GET /ojs/v1/events lists, keyed by its cursor."""
    if event.type == KEEPALIVE_EVENT:
        return _KEEPALIVE_FRAME
    if event.type == DROPPED_EVENT:
        payload = orjson.dumps({"dropped": _dropped_count(event)})
        return b"event: " + DROPPED_EVENT.encode() + b"\n" + _data_lines(payload) + b"\n"
    # Without a cursor, no id line: an empty one would reset the client's Last-Event-ID.
    frame = b"id: " + event.cursor.encode() + b"\n" if event.cursor else b""
    if event.type:
        frame += b"event: " + event.type.encode() + b"\n"
    return frame + _data_lines(orjson.dumps(event_to_json(event))) + b"\n"


def render_events(response: events_pb2.ListEventsResponse) -> dict[str, Any]:
    return {
        "events": [event_to_json(event) for event in response.events],
        "cursor": response.cursor,
        "has_more": response.has_more,
    }
