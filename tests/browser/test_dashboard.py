"""The dashboard in a real headless Chromium against a real `ojs-server` process with an API key.

Each test leaves a screenshot of the page it drove in test-artifacts/screenshots/
(or $OJS_SCREENSHOT_DIR).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.webdriver import Browser, Driver, missing_browser
from tests.e2e.processes import REPO, ServerProcess, launcher
from tests.support import new_queue

API_KEY = "dashboard-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SHOTS = Path(os.environ.get("OJS_SCREENSHOT_DIR") or REPO / "test-artifacts" / "screenshots")
DEAD_LETTER = {"max_attempts": 1, "on_exhaustion": "dead_letter"}

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    start = launcher(tmp_path_factory.mktemp("dashboard"))
    process = next(start)(OJS_API_KEY=API_KEY)
    process.wait_ready()
    yield process
    process.terminate()
    next(start, None)


@pytest.fixture(scope="module")
def browser(server: ServerProcess) -> Iterator[Browser]:
    driver = Driver()
    session = Browser(driver)
    try:
        # The key is asked for once and kept for the tab.
        session.open(f"http://127.0.0.1:{server.http_port}/ojs/admin/")
        session.wait_js("return document.getElementById('key-dialog').open")
        session.type("#key-input", API_KEY)
        session.click("#key-form button[type=submit]")
        session.wait_js("return document.querySelector('#stat-available') !== null")
        yield session
    finally:
        session.quit()
        driver.stop()


def call(server: ServerProcess, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    got, payload = server.request(method, path, body, headers=AUTH)
    assert got == status, f"{method} {path}: {got} {payload}"
    return payload


def enqueue(server: ServerProcess, queue: str, job_type: str = "ui.work", **options: Any) -> str:
    body = {"type": job_type, "args": [{"to": "user@example.com"}], "options": {"queue": queue, **options}}
    return str(call(server, "POST", "/ojs/v1/jobs", body, 201)["job"]["id"])


def fetch(server: ServerProcess, queue: str, worker: str = "ui-worker") -> str:
    jobs = call(server, "POST", "/ojs/v1/workers/fetch", {"queues": [queue], "worker_id": worker})["jobs"]
    assert len(jobs) == 1
    return str(jobs[0]["id"])


def go(browser: Browser, server: ServerProcess, hash_route: str) -> None:
    browser.js("location.hash = arguments[0]", hash_route)
    browser.wait_js("return document.title.endsWith('OJS admin') && !document.querySelector('main p.muted:only-child')")


def test_overview_shows_counts_and_charts(browser: Browser, server: ServerProcess) -> None:
    queue = new_queue("ui")
    enqueue(server, queue)
    go(browser, server, "#/")
    browser.wait_js("return Number(document.querySelector('#stat-available .n').textContent.replace(/\\D/g, '')) >= 1")
    assert browser.js("return document.querySelectorAll('figure.chart svg polyline').length") == 3
    browser.screenshot(SHOTS / "overview.png")


def test_enqueued_jobs_appear_live(browser: Browser, server: ServerProcess) -> None:
    queue = new_queue("ui")
    go(browser, server, f"#/jobs?state=available&queue={queue}")
    browser.wait_js("return document.querySelector('main').textContent.includes('No jobs match')")
    # A marker on the page survives only if nothing reloads it.
    browser.js("window.__noReload = true")
    ids = [enqueue(server, queue, "ui.live") for _ in range(3)]
    browser.wait_js("return arguments[0].every((id) => document.querySelector(`tr[data-job='${id}']`))", ids)
    assert browser.js("return window.__noReload === true")
    assert browser.js("return document.getElementById('live').classList.contains('on')")
    browser.screenshot(SHOTS / "jobs.png")


def test_dead_letter_retry_with_a_click_then_the_job_completes(browser: Browser, server: ServerProcess) -> None:
    queue = new_queue("ui")
    job = enqueue(server, queue, "ui.fails", retry=DEAD_LETTER)
    assert fetch(server, queue) == job
    error = {"code": "smtp_refused", "message": "SMTP connection refused", "backtrace": ["mailer.py:42", "smtp.py:7"]}
    call(server, "POST", "/ojs/v1/workers/nack", {"job_id": job, "error": error})
    go(browser, server, f"#/dead-letter?queue={queue}")
    row = f"tr[data-job='{job}']"
    browser.wait_js("return document.querySelector(arguments[0]) !== null", row)
    browser.screenshot(SHOTS / "dead-letter.png")
    browser.click(f"{row} button[data-action=retry]")
    browser.wait_js("return document.querySelector(arguments[0]) === null", row)
    assert fetch(server, queue, "ui-worker-2") == job
    call(server, "POST", "/ojs/v1/workers/ack", {"job_id": job, "result": {"sent": True}})
    go(browser, server, f"#/jobs/{job}")
    browser.wait_js("return document.querySelector('h1 .badge').textContent === 'completed'")
    text = browser.text("main")
    assert "SMTP connection refused" in text and "mailer.py:42" in text and "job.completed" in text
    browser.screenshot(SHOTS / "job.png")


def test_pause_a_queue_from_the_ui(browser: Browser, server: ServerProcess) -> None:
    queue = new_queue("ui")
    enqueue(server, queue)
    go(browser, server, f"#/queues/{queue}")
    browser.wait_js("return document.getElementById('pause-queue') !== null")
    browser.click("#pause-queue")
    browser.wait_js("return document.getElementById('resume-queue') !== null")
    assert call(server, "GET", f"/ojs/v1/admin/queues/{queue}")["paused"] is True
    jobs = call(server, "POST", "/ojs/v1/workers/fetch", {"queues": [queue], "worker_id": "ui-w"})["jobs"]
    assert jobs == []
    browser.screenshot(SHOTS / "queue.png")
    go(browser, server, "#/queues")
    browser.wait_js("return document.querySelector(`tr[data-queue='${arguments[0]}'] .s-paused`) !== null", queue)
    browser.screenshot(SHOTS / "queues.png")


def test_workflow_graph_shows_step_states(browser: Browser, server: ServerProcess) -> None:
    queue = new_queue("ui")
    steps = [{"type": f"ui.step{i}", "args": [i], "options": {"queue": queue}} for i in range(3)]
    created = call(server, "POST", "/ojs/v1/workflows", {"type": "chain", "name": "ui-chain", "steps": steps}, 201)
    workflow_id = created["workflow"]["id"]
    first = fetch(server, queue)
    call(server, "POST", "/ojs/v1/workers/ack", {"job_id": first})
    go(browser, server, "#/workflows")
    browser.wait_js("return document.querySelector(`tr[data-workflow='${arguments[0]}']`) !== null", workflow_id)
    browser.screenshot(SHOTS / "workflows.png")
    go(browser, server, f"#/workflows/{workflow_id}")
    states = browser.wait_js(
        "const g = [...document.querySelectorAll('.graph g[data-step]')];"
        "return g.length === 3 && g.map((n) => n.dataset.state)"
    )
    assert states[0] == "completed" and states[1] in ("active", "pending") and states[2] == "waiting"
    assert browser.js("return document.querySelectorAll('.graph path[marker-end]').length") == 2
    browser.screenshot(SHOTS / "workflow.png")


def test_cron_shows_next_runs_in_the_viewers_zone(browser: Browser, server: ServerProcess) -> None:
    name = f"ui-nightly-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "expression": "0 3 * * *", "job_template": {"type": "ui.nightly", "args": []}}
    call(server, "POST", "/ojs/v1/cron", body, 201)
    go(browser, server, "#/cron")
    browser.wait_js("return document.querySelector(`tr[data-cron='${arguments[0]}']`) !== null", name)
    zone = browser.js("return Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert zone in browser.text("main")
    browser.screenshot(SHOTS / "cron.png")


def test_workers_quiet_from_the_ui(browser: Browser, server: ServerProcess) -> None:
    worker = f"ui-worker-{uuid.uuid4().hex[:6]}"
    queue = new_queue("ui")
    enqueue(server, queue)
    fetch(server, queue, worker)
    call(server, "POST", "/ojs/v1/workers/heartbeat", {"worker_id": worker, "active_jobs": []})
    go(browser, server, "#/workers")
    row = f"tr[data-worker='{worker}']"
    browser.wait_js("return document.querySelector(arguments[0]) !== null", row)
    # The job it holds is listed with it.
    browser.wait_js("return document.querySelector(arguments[0] + ' td.jobs a') !== null", row)
    browser.click(f"{row} button[data-action=quiet]")
    browser.wait_js("return document.querySelector(arguments[0] + ' .s-quiet') !== null", row)
    browser.screenshot(SHOTS / "workers.png")
    go(browser, server, f"#/workers/{worker}")
    browser.wait_js("return document.querySelector('main table') !== null")
    browser.screenshot(SHOTS / "worker.png")
