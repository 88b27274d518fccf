"""Manifest and health."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import OJSError
from server.domain.progress import EXTENSION_URI as PROGRESS_EXTENSION_URI
from server.model.metrics import Overview
from server.store.facade import Store

IMPLEMENTATION_NAME = "ojs-server-python"
IMPLEMENTATION_VERSION = "0.1.0"
SPEC_VERSION = "1.0"
CONFORMANCE_LEVEL = 4


@dataclasses.dataclass(frozen=True)
class HealthReport:
    healthy: bool
    uptime_seconds: int
    latency_ms: float | None
    error: str | None
    # Queues and workers (ojs-observability.md §10), when Redis answered.
    overview: Overview | None = None


@dataclasses.dataclass(frozen=True)
class Implementation:
    name: str
    version: str
    language: str


@dataclasses.dataclass(frozen=True)
class Extension:
    name: str
    uri: str
    version: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    spec_version: str
    implementation: Implementation
    conformance_level: int
    conformance_tier: str
    protocols: tuple[str, ...]
    backend: str
    # Capability name -> supported, in the order the manifest lists them.
    capabilities: tuple[tuple[str, bool], ...]
    official_extensions: tuple[Extension, ...]
    experimental_extensions: tuple[Extension, ...]
    schema_validation: bool
    unique_job_strength: str
    event_delivery: str
    # Endpoint name -> path.
    endpoints: tuple[tuple[str, str], ...]


MANIFEST = Manifest(
    spec_version=SPEC_VERSION,
    implementation=Implementation(name=IMPLEMENTATION_NAME, version=IMPLEMENTATION_VERSION, language="python"),
    conformance_level=CONFORMANCE_LEVEL,
    conformance_tier="runtime",
    protocols=("http", "grpc"),
    backend="redis",
    capabilities=(
        ("batch_enqueue", True),
        ("cron_jobs", True),
        ("dead_letter", True),
        ("delayed_jobs", True),
        ("job_ttl", True),
        ("priority_queues", True),
        ("rate_limiting", True),
        ("schema_validation", False),
        ("unique_jobs", True),
        ("workflows", True),
        ("pause_resume", True),
    ),
    official_extensions=(Extension(name="progress", uri=PROGRESS_EXTENSION_URI, version="1.0.0-rc.1"),),
    experimental_extensions=(),
    schema_validation=False,
    unique_job_strength="strong",
    event_delivery="at_least_once",
    endpoints=(("base_url", "/ojs/v1"), ("manifest", "/ojs/manifest"), ("health", "/ojs/v1/health")),
)


class SystemService:
    def __init__(
        self,
        store: Store,
        *,
        backend_down: Callable[[], str | None] = lambda: None,
        ping_timeout_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`backend_down`: why the backend is known to be down, or None; health then answers without asking it."""
        self._store = store
        self._clock = clock
        self._started = time.monotonic()
        self._backend_down = backend_down
        self._ping_timeout_s = ping_timeout_s

    def manifest(self) -> Manifest:
        """What this server implements (HTTP binding §21, conformance §4)."""
        return MANIFEST

    async def health(self) -> HealthReport:
        uptime = int(time.monotonic() - self._started)
        reason = self._backend_down()
        if reason is not None:
            return HealthReport(healthy=False, uptime_seconds=uptime, latency_ms=None, error=reason)
        try:
            # Bounded: a stalled backend makes health report it down, never hang.
            async with asyncio.timeout(self._ping_timeout_s):
                latency = await self._store.ping_ms()
                overview = await self._store.metrics.overview(now_ms=self._clock.now_ms())
        except OJSError as exc:
            return HealthReport(healthy=False, uptime_seconds=uptime, latency_ms=None, error=exc.message)
        except TimeoutError:
            error = f"backend did not answer within {self._ping_timeout_s:g} s"
            return HealthReport(healthy=False, uptime_seconds=uptime, latency_ms=None, error=error)
        return HealthReport(healthy=True, uptime_seconds=uptime, latency_ms=latency, error=None, overview=overview)
