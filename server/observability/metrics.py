"""Prometheus metrics: cluster-wide job figures read from Redis, per-process request and Redis figures.

Job counters, job histograms and queue depth are what every process counts into
Redis inside its scripts (server.store.metrics), read at scrape time: exact
across `--workers N` and across servers sharing one Redis, whichever process
the scrape reaches. Request, Redis-call and process figures belong to one
process. Under `--workers N` a scrape reaches one process (the ports are
shared), so the workers run prometheus-client's multiprocess mode: each writes
its figures to files in a directory the supervisor owns, and whichever worker
answers a scrape sums them all (process figures carry a `pid` label instead).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from server.model.metrics import DURATION_BOUNDS_MS, QUEUE_TIME_BOUNDS_MS, ClusterMetrics
from server.model.metrics import Histogram as StoredHistogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Request latencies of a job server: sub-millisecond to a long poll of 60 s.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

_COUNTER_HELP = {
    "enqueued": "Jobs enqueued",
    "completed": "Jobs that reached the completed state",
    "failed": "Jobs that reached the discarded state (attempts used up, non-retryable error or expired)",
    "retried": "Failed attempts that will be retried (retryable, requeued, or lease expired)",
    "dead_lettered": "Jobs moved to the dead letter queue",
    "expired": "Jobs discarded because they expired before they started",
    "cancelled": "Jobs cancelled",
}


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _Family:
    """A counter or histogram by label values, recorded with `record(labels, value)`."""

    def record(self, labels: tuple[str, ...], value: float) -> None:
        raise NotImplementedError


class _LocalFamily(_Family, Collector):
    """In-process values, read by the scrape: a few list operations per record, where prometheus-client's
    own objects take a lock per value (several µs per request on the dev machine)."""

    def __init__(self, name: str, text: str, labels: tuple[str, ...], buckets: tuple[float, ...] = ()) -> None:
        self._name, self._text, self._labels, self._bounds = name, text, labels, buckets
        # label values -> [count per bucket..., +Inf count, sum] for a histogram, [total] for a counter.
        self._rows: dict[tuple[str, ...], list[float]] = {}

    def record(self, labels: tuple[str, ...], value: float) -> None:
        row = self._rows.get(labels)
        if row is None:
            row = self._rows[labels] = [0.0] * (len(self._bounds) + 2 if self._bounds else 1)
        if self._bounds:
            row[bisect.bisect_left(self._bounds, value)] += 1
            row[-1] += value
        else:
            row[0] += value

    def collect(self) -> Iterator[Metric]:
        if not self._bounds:
            counter = CounterMetricFamily(self._name, self._text, labels=self._labels)
            for labels, row in list(self._rows.items()):
                counter.add_metric(list(labels), row[0])
            yield counter
            return
        histogram = HistogramMetricFamily(self._name, self._text, labels=self._labels)
        for labels, row in list(self._rows.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*(str(b) for b in self._bounds), "+Inf"), row[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            histogram.add_metric(list(labels), buckets, row[-1])
        yield histogram


class _SharedFamily(_Family):
    """prometheus-client's objects, whose values multiprocess mode keeps in the shared files."""

    def __init__(
        self,
        name: str,
        text: str,
        labels: tuple[str, ...],
        registry: CollectorRegistry,
        buckets: tuple[float, ...] = (),
    ) -> None:
        self._metric: Counter | Histogram = (
            Histogram(name, text, labels, buckets=buckets, registry=registry)
            if buckets
            else Counter(name.removesuffix("_total"), text, labels, registry=registry)
        )
        self._histogram = bool(buckets)
        self._children: dict[tuple[str, ...], Any] = {}

    def record(self, labels: tuple[str, ...], value: float) -> None:
        child: Any = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        if self._histogram:
            child.observe(value)
        else:
            child.inc(value)


class ProcessMetrics:
    """The figures of this process; in multiprocess mode their values live in the shared directory."""

    def __init__(self) -> None:
        # One `_created` series per labelled series doubles a scrape for no use here.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.multiprocess = multiprocess_dir() is not None
        # A registry per instance: tests run several servers in one process.
        self.registry = CollectorRegistry(auto_describe=False)

        def family(name: str, text: str, labels: tuple[str, ...], buckets: tuple[float, ...] = ()) -> _Family:
            if self.multiprocess:
                return _SharedFamily(name, text, labels, self.registry, buckets)
            local = _LocalFamily(name, text, labels, buckets)
            self.registry.register(local)
            return local

        self._http_requests = family(
            "ojs_http_requests_total",
            "HTTP requests answered, by route, method and status",
            ("route", "method", "status"),
        )
        self._http_latency = family(
            "ojs_http_request_duration_seconds",
            "HTTP request handling time, by route and method",
            ("route", "method"),
            _LATENCY_BUCKETS,
        )
        self._rpc_requests = family(
            "ojs_grpc_requests_total",
            "OJSService and OJSAdminService calls answered, by method and status code; transport: grpc, or in_process "
            "for REST calls",
            ("method", "code", "transport"),
        )
        self._rpc_latency = family(
            "ojs_grpc_request_duration_seconds",
            "OJSService and OJSAdminService call handling time, by method",
            ("method", "transport"),
            _LATENCY_BUCKETS,
        )
        self._redis_latency = family(
            "ojs_redis_command_duration_seconds",
            "Redis time of the store's calls, by store operation (one script call or pipeline each; script calls share "
            "their write with the others of an event-loop turn, so this is how long the caller waited for its reply)",
            ("operation",),
            _REDIS_BUCKETS,
        )
        self._redis_errors = family(
            "ojs_redis_errors_total", "Failed Redis round trips, by store operation and error", ("operation", "error")
        )
        self._process_gauges: dict[str, Gauge] = {}
        if self.multiprocess:
            # The process collector reads this process only; its figures are copied into per-pid gauges.
            self._own = ProcessCollector(registry=None)
            for name, text in (
                ("cpu_seconds_total", "Total user and system CPU time spent in seconds"),
                ("resident_memory_bytes", "Resident memory size in bytes"),
                ("open_fds", "Number of open file descriptors"),
                ("start_time_seconds", "Start time of the process since unix epoch in seconds"),
            ):
                self._process_gauges[f"process_{name}"] = Gauge(
                    f"ojs_worker_process_{name}", text, registry=self.registry, multiprocess_mode="liveall"
                )
        else:
            ProcessCollector(registry=self.registry)

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self._http_requests.record((route, method, str(status)), 1)
        self._http_latency.record((route, method), seconds)

    def observe_rpc(self, method: str, code: str, transport: str, seconds: float) -> None:
        self._rpc_requests.record((method, code, transport), 1)
        self._rpc_latency.record((method, transport), seconds)

    def observe_redis(self, operation: str, seconds: float, error: str | None) -> None:
        self._redis_latency.record((operation,), seconds)
        if error is not None:
            self._redis_errors.record((operation, error), 1)

    def refresh_process(self) -> None:
        """Multiprocess mode: copy this process's CPU, memory and descriptors into its per-pid gauges."""
        if not self.multiprocess:
            return
        for family in self._own.collect():
            for sample in family.samples:
                gauge = self._process_gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        self.refresh_process()
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def _histogram_family(
    family: HistogramMetricFamily, labels: list[str], bounds_ms: tuple[int, ...], stored: StoredHistogram
) -> None:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip((*(str(b / 1000) for b in bounds_ms), "+Inf"), stored.buckets, strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    family.add_metric(labels, buckets, stored.sum_ms / 1000)


class ClusterCollector(Collector):
    """One scrape's snapshot of the Redis-kept figures, in the names of ojs-observability.md §8."""

    def __init__(self, snapshot: ClusterMetrics) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        queues = self._snapshot.queues
        for name, text in _COUNTER_HELP.items():
            counter = CounterMetricFamily(
                f"ojs_job_{name}", f"{text} (all servers on this Redis)", labels=("queue", "type")
            )
            for q in queues:
                for (counter_name, job_type), value in sorted(q.counters.items()):
                    if counter_name == name:
                        counter.add_metric([q.queue, job_type], value)
            yield counter
        duration = HistogramMetricFamily(
            "ojs_job_duration_seconds",
            "Run time of an attempt, from start to the state it ended in (all servers on this Redis)",
            labels=("queue", "type", "state"),
        )
        queue_time = HistogramMetricFamily(
            "ojs_job_queue_time_seconds",
            "Wait from enqueue (or from becoming due) to the first start, i.e. pickup latency (all servers)",
            labels=("queue", "type"),
        )
        depth = GaugeMetricFamily("ojs_queue_depth", "Jobs now in each queue and state", labels=("queue", "state"))
        for q in queues:
            for (state, job_type), stored in sorted(q.durations.items()):
                _histogram_family(duration, [q.queue, job_type, state], DURATION_BOUNDS_MS, stored)
            for job_type, stored in sorted(q.queue_times.items()):
                _histogram_family(queue_time, [q.queue, job_type], QUEUE_TIME_BOUNDS_MS, stored)
            for state, count in q.depth.items():
                depth.add_metric([q.queue, state], count)
        yield duration
        yield queue_time
        yield depth
        workers = GaugeMetricFamily("ojs_workers_active", "Workers that fetched or sent a heartbeat in the last minute")
        workers.add_metric([], self._snapshot.workers_active)
        yield workers


def render_cluster(snapshot: ClusterMetrics) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(snapshot))
    return generate_latest(registry)
