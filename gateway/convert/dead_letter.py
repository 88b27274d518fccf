"""The dead-letter listing."""

from __future__ import annotations

from typing import Any

from ojs.v1 import queue_pb2

from gateway.convert.common import pagination
from gateway.convert.jobs import job_to_json


def render_dead_letter(response: queue_pb2.ListDeadLetterResponse, limit: int) -> dict[str, Any]:
    return {
        "jobs": [job_to_json(job) for job in response.jobs],
        "pagination": pagination(response.total_count, limit, response.next_cursor),
    }
