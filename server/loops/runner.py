"""Periodic background work under one runner.

Every task is safe to run in several server processes at once: each step is
one atomic Lua script that only acts on what is due. A backend outage is
logged and retried; any other exception stops the runner and is reported
through `failure`, so the process goes down loudly instead of limping on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from server.domain.errors import ErrorCode, OJSError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval_s: float
    step: Callable[[], Awaitable[object]]


class LoopRunner:
    def __init__(self, tasks: list[PeriodicTask]) -> None:
        self._tasks = tasks
        self._running: list[asyncio.Task[None]] = []
        self._stopping = False
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        for task in self._tasks:
            self._running.append(asyncio.create_task(self._run(task), name=f"loop:{task.name}"))

    async def _run(self, task: PeriodicTask) -> None:
        while not self._stopping:
            try:
                await task.step()
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
            await asyncio.sleep(task.interval_s)

    def _fail(self, task: PeriodicTask, exc: BaseException) -> None:
        log.critical("background task %s crashed", task.name, exc_info=exc)
        if not self.failure.done():
            self.failure.set_result(exc)

    async def stop(self) -> None:
        """Cancel every task and wait for it; each step is one short script call.

        A cancellation can be lost inside a library call (the step then returns
        normally), so the flag ends each loop too, and a task still running is
        cancelled again.
        """
        self._stopping = True
        pending = {running for running in self._running if not running.done()}
        while pending:
            for running in pending:
                running.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
        self._running.clear()
