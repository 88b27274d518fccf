"""`--workers 2`: whichever worker answers a scrape, request figures are the sum over both workers."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.processes import _OPENER, Launcher, ServerProcess

REQUESTS = 40


def _scrape(server: ServerProcess) -> list[tuple[str, dict[str, str], float]]:
    with _OPENER.open(f"http://127.0.0.1:{server.http_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_a_scrape_of_either_worker_sums_both(launch: Launcher) -> None:
    server = launch(OJS_WORKERS="2")
    server.wait_ready()
    # Every urllib request opens its own connection, so the kernel spreads them over both workers.
    for i in range(REQUESTS):
        assert server.request("POST", "/ojs/v1/jobs", {"type": "t.x", "args": [i]})[0] == 201
    seen_pids: set[str] = set()
    for _ in range(12):
        samples = _scrape(server)
        enqueued = [
            value
            for name, labels, value in samples
            if name == "ojs_http_requests_total" and labels.get("route") == "/ojs/v1/jobs"
        ]
        assert enqueued == [REQUESTS]
        jobs = [value for name, labels, value in samples if name == "ojs_job_enqueued_total"]
        assert jobs == [REQUESTS]
        seen_pids |= {labels["pid"] for name, labels, _ in samples if name == "ojs_worker_process_cpu_seconds_total"}
    assert len(seen_pids) == 2
    assert server.terminate() == 0
