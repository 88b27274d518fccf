"""Periodic background work under one runner.

Every task is safe to run in several server processes at once: each step is
one atomic Lua script that only acts on what is due. A backend outage is
logged and retried; any other exception stops the runner and is reported
through `failure`, so the process goes down loudly instead of limping on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from opentelemetry.trace import SpanKind

from server.domain.errors import ErrorCode, OJSError
from server.observability import tracing

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval_s: float
    step: Callable[[], Awaitable[object]]
    # Span recorded for a step that changed something (while tracing is on); idle steps record none.
    span_name: str = ""


def _work_done(result: object) -> int:
    """How many things a step changed: its int result, or the `changed` of a result object."""
    if isinstance(result, bool):
        return int(result)
    if isinstance(result, int):
        return result
    changed = getattr(result, "changed", None)
    return changed if isinstance(changed, int) else 0


def _record_step(task: PeriodicTask, started_ns: int, result: object) -> None:
    tracer = tracing.TRACER
    if tracer is None or not task.span_name:
        return
    done = _work_done(result)
    if done:
        attributes: dict[str, str | int] = {
            **tracing.BASE_ATTRIBUTES,
            "ojs.loop.name": task.name,
            "ojs.loop.changed": done,
        }
        tracer.start_span(task.span_name, kind=SpanKind.INTERNAL, attributes=attributes, start_time=started_ns).end()


class LoopRunner:
    def __init__(self, tasks: list[PeriodicTask]) -> None:
        self._tasks = tasks
        self._running: list[asyncio.Task[None]] = []
        self._stopping = False
        self._wake = asyncio.Event()
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        for task in self._tasks:
            self._running.append(asyncio.create_task(self._run(task), name=f"loop:{task.name}"))

    async def _run(self, task: PeriodicTask) -> None:
        while not self._stopping:
            started_ns = time.time_ns()
            try:
                _record_step(task, started_ns, await task.step())
            except OJSError as exc:
                if exc.code is not ErrorCode.BACKEND_UNAVAILABLE:
                    self._fail(task, exc)
                    return
                log.warning("%s: %s; retrying", task.name, exc.message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(task, exc)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), task.interval_s)

    def _fail(self, task: PeriodicTask, exc: BaseException) -> None:
        log.critical("background task %s crashed", task.name, exc_info=exc)
        if not self.failure.done():
            self.failure.set_result(exc)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop every loop at a safe point: a step under way finishes, sleeping loops wake and end.

        After `grace_s` the loops still running are cancelled (a step is a few short
        script calls, each atomic in Redis). A cancellation can be lost inside a library
        call (the step then returns normally), so the flag ends each loop too, and a
        task still running is cancelled again.
        """
        self._stopping = True
        self._wake.set()
        running_now = [running for running in self._running if not running.done()]
        if running_now:
            await asyncio.wait(running_now, timeout=grace_s)
        pending = {running for running in self._running if not running.done()}
        while pending:
            for running in pending:
                running.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
        self._running.clear()
