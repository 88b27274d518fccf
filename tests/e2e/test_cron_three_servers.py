"""Three `ojs-server` processes on one Redis fire a cron entry exactly once per occurrence.

The entry uses the 6-field form with seconds ("* * * * * *"), so an occurrence
is due every second and 30 of them take half a minute of real time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest

from .processes import Launcher

OCCURRENCES = 30
QUEUE = "cron-three"
MAX_COALESCED = 3


@pytest.mark.slow
def test_every_occurrence_fires_exactly_once_across_three_servers(launch: Launcher, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "OJS_KEY_PREFIX": f"three{time.time_ns()}"}
    servers = [launch(**env) for _ in range(3)]
    for server in servers:
        server.wait_ready(check_grpc=False)

    status, body = servers[0].request(
        "POST",
        "/ojs/v1/cron",
        {
            "name": "every-second",
            "expression": "* * * * * *",
            "overlap_policy": "allow",
            "job_template": {"type": "cron.tick", "args": [], "options": {"queue": QUEUE}},
        },
    )
    assert status == 201, body
    time.sleep(OCCURRENCES + 3)
    status, body = servers[1].request("DELETE", "/ojs/v1/cron/every-second")
    assert status == 200, body

    occurrences: list[str] = []
    while True:
        status, body = servers[2].request("POST", "/ojs/v1/workers/fetch", {"queues": [QUEUE], "count": 1000})
        assert status == 200, body
        if not body["jobs"]:
            break
        occurrences.extend(job["meta"]["cron_triggered_at"] for job in body["jobs"])

    duplicates = {when: n for when, n in Counter(occurrences).items() if n > 1}
    assert not duplicates, f"occurrences fired more than once: {duplicates}"
    assert len(occurrences) >= OCCURRENCES, f"only {len(occurrences)} occurrences fired"
    instants = sorted(dt.datetime.fromisoformat(when.replace("Z", "+00:00")) for when in occurrences)
    assert all(instant.microsecond == 0 for instant in instants)
    # A scheduler running late coalesces the seconds it missed into one firing (the
    # misfire policy); with three schedulers ticking every 250 ms that should be rare.
    span = int((instants[-1] - instants[0]).total_seconds()) + 1
    assert span - len(instants) <= MAX_COALESCED, f"{span - len(instants)} of {span} seconds were coalesced"
    status, body = servers[0].request("GET", "/ojs/v1/events?types=cron.triggered&limit=1000")
    assert status == 200, body
    assert len(body["events"]) == len(occurrences)
    for server in servers:
        assert server.terminate() == 0, server.output
