"""Composition root: Redis, scripts, store, services, gRPC server and gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web
from redis.asyncio import Redis

from gateway.admin.client import InProcessAdminClient
from gateway.app import create_app
from gateway.client import InProcessClient
from gateway.http_server import GatewayRunner
from server.config import Settings
from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import OJSError
from server.embedded_redis import EmbeddedRedis
from server.loops.runner import LoopRunner, PeriodicTask
from server.model.records import Retention
from server.observability import tracing
from server.observability.http import observe_middleware, ops_routes
from server.observability.metrics import ProcessMetrics
from server.observability.readiness import Phase, Readiness
from server.rpc.admin_servicer import AdminServicer
from server.rpc.server import GrpcServer
from server.rpc.servicer import OJSServicer
from server.service.admin import AdminService
from server.service.admission import Admission
from server.service.cron import CronService
from server.service.dead_letter import DeadLetterService
from server.service.events import EventService
from server.service.jobs import JobService
from server.service.maintenance import MaintenanceService
from server.service.progress import ProgressService
from server.service.queues import QueueService
from server.service.system import SystemService
from server.service.workers import WorkerService
from server.service.workflows import WorkflowService
from server.store.connection import RedisLimits, RedisMonitor, close_idle_connections, connect, release_freed_memory
from server.store.event_feed import EventFeed
from server.store.facade import Store
from server.store.keys import KeySchema
from server.store.notifications import JobNotifier

log = logging.getLogger(__name__)

# How long startup waits for a remote Redis to answer.
REDIS_STARTUP_WAIT_S = 30.0
# After the drain, what is left (connections, streams) gets this long to close.
STOP_GRACE_S = 5.0
# Multiprocess metrics: how often a worker copies its CPU and memory figures into the shared files.
PROCESS_METRICS_INTERVAL_S = 5.0
# Dead letter and worker registry pruning is not urgent.
RETENTION_INTERVAL_S = 60.0
# After a burst, Redis connections idle beyond a few are closed this often, so descriptors return to baseline.
POOL_TRIM_INTERVAL_S = 5.0
POOL_IDLE_KEEP = 4


def redis_limits(settings: Settings) -> RedisLimits:
    return RedisLimits(
        pool_size=settings.redis_pool_size,
        pool_timeout_s=settings.redis_pool_timeout_ms / 1000,
        connect_timeout_s=settings.redis_connect_timeout_ms / 1000,
        command_timeout_s=settings.redis_command_timeout_ms / 1000,
    )


def build_servicer(
    store: Store,
    settings: Settings,
    *,
    notifier: JobNotifier | None = None,
    feed: EventFeed | None = None,
    clock: Clock = SYSTEM_CLOCK,
    monitor: RedisMonitor | None = None,
    metrics: ProcessMetrics | None = None,
) -> OJSServicer:
    """The service layer over one store, behind the gRPC servicer, behind admission control; every service reads
    `clock`."""
    lease_ms = settings.default_visibility_timeout_ms
    backend_down = (lambda: monitor.down_reason) if monitor is not None else (lambda: None)
    admission = Admission(
        settings.max_inflight,
        max_waiting=settings.max_waiting,
        wait_timeout_s=settings.admission_timeout_ms / 1000,
        retry_after_s=settings.retry_after_s,
        backend_down=backend_down,
    )
    workflows = WorkflowService(store, clock=clock, max_job_bytes=settings.max_job_bytes)
    return OJSServicer(
        JobService(
            store,
            default_visibility_timeout_ms=lease_ms,
            default_timeout_ms=settings.default_timeout_ms,
            max_batch=settings.max_batch_jobs,
            max_job_bytes=settings.max_job_bytes,
            notifier=notifier,
            clock=clock,
        ),
        EventService(store, feed),
        SystemService(
            store, backend_down=backend_down, ping_timeout_s=settings.redis_command_timeout_ms / 1000, clock=clock
        ),
        WorkerService(store, default_visibility_timeout_ms=lease_ms, clock=clock),
        DeadLetterService(store, clock=clock),
        CronService(store, clock=clock),
        workflows,
        QueueService(store, clock=clock),
        ProgressService(store.progress, workflows, default_visibility_timeout_ms=lease_ms, clock=clock),
        admission=admission,
        metrics=metrics,
    )


class Application:
    def __init__(self, settings: Settings, *, reuse_port: bool = False, clock: Clock = SYSTEM_CLOCK) -> None:
        """`reuse_port`: bind with SO_REUSEPORT, as one of several worker processes sharing the ports.
        `clock`: the time every service and background loop reads."""
        self.settings = settings
        self.clock = clock
        self.reuse_port = reuse_port
        self.grpc_port = 0
        self.http_port = 0
        self.redis_url = settings.redis_url or ""
        self._embedded: EmbeddedRedis | None = None
        self._redis: Redis | None = None
        self._grpc: GrpcServer | None = None
        self._http: web.AppRunner | None = None
        self._loops: LoopRunner | None = None
        self._notifier: JobNotifier | None = None
        self._feed: EventFeed | None = None
        self._servicer: OJSServicer | None = None
        self._monitor: RedisMonitor | None = None
        self._metrics: ProcessMetrics | None = None
        self._watch: asyncio.Task[None] | None = None
        self.readiness = Readiness()

    @property
    def redis_down_reason(self) -> str | None:
        """Why Redis is known to be unreachable, stalled or loading; None while it answers (or before start)."""
        return self._monitor.down_reason if self._monitor is not None else None

    async def wait_failure(self) -> BaseException:
        """Resolves when a background loop crashed; the process should then exit."""
        if self._loops is None:
            raise RuntimeError("the application is not running")
        return await self._loops.failure

    async def start(self) -> None:
        """Redis, services, gRPC, HTTP, background loops, in that order; a failed start stops what it started."""
        try:
            redis, store = await self._connect_redis()
            servicer, admin_service = self._build_services(redis, store)
            admin = AdminServicer(admin_service, frame=servicer.frame)
            await self._start_grpc(servicer, admin)
            await self._start_http(store, servicer, admin)
            self._start_loops(store, admin_service)
            await self.readiness.set_phase(Phase.SERVING)
        except BaseException:
            await self.stop()
            raise

    async def _connect_redis(self) -> tuple[Redis, Store]:
        """The embedded Redis when no URL is set; the pool, the store with its scripts loaded, the monitor."""
        settings = self.settings
        if settings.redis_url is None:
            self._embedded = EmbeddedRedis(settings.data_dir)
            # Supervised: restarted (from its AOF) if it dies, while this process keeps serving.
            self.redis_url = await self._embedded.start(supervise=True)
        limits = redis_limits(settings)
        redis = self._redis = connect(self.redis_url, limits)
        store = Store(
            redis,
            KeySchema(settings.key_prefix),
            events_maxlen=settings.events_maxlen,
            retention=Retention(
                completed_ms=settings.retention_completed_s * 1000,
                cancelled_ms=settings.retention_cancelled_s * 1000,
                discarded_ms=settings.retention_discarded_s * 1000,
                dead_letter_ms=settings.dead_letter_max_age_s * 1000,
                dead_letter_max_count=settings.dead_letter_max_count,
            ),
        )
        await self._wait_for_redis(store)
        self._monitor = RedisMonitor(self.redis_url, limits)
        self._monitor.start()
        return redis, store

    def _build_services(self, redis: Redis, store: Store) -> tuple[OJSServicer, AdminService]:
        settings = self.settings
        self._notifier = JobNotifier(redis, store.keys, origin=store.origin)
        self._notifier.start()
        # An idle blocking read must end well within the command timeout.
        block_ms = max(100, min(2000, settings.redis_command_timeout_ms // 2))
        self._feed = EventFeed(redis, store.keys, block_ms=block_ms)
        if settings.metrics_enabled:
            self._metrics = ProcessMetrics()
            store.observe_round_trips(self._metrics.observe_redis)
        self._servicer = build_servicer(
            store,
            settings,
            notifier=self._notifier,
            feed=self._feed,
            monitor=self._monitor,
            clock=self.clock,
            metrics=self._metrics,
        )
        # A worker is stale once it has missed a whole lease period of heartbeats.
        admin_service = AdminService(store, stale_after_ms=settings.default_visibility_timeout_ms, clock=self.clock)
        return self._servicer, admin_service

    async def _start_grpc(self, servicer: OJSServicer, admin: AdminServicer) -> None:
        settings = self.settings
        self._grpc = GrpcServer(
            servicer,
            admin=admin,
            api_key=settings.api_key,
            reuse_port=self.reuse_port,
            max_receive_bytes=settings.max_body_bytes,
        )
        self.readiness.on_change(self._grpc.set_serving)
        self.grpc_port = self._grpc.bind(settings.host, settings.grpc_port)
        await self._grpc.start(serving=False)

    async def _start_http(self, store: Store, servicer: OJSServicer, admin: AdminServicer) -> None:
        """The REST gateway, calling the servicers in process, with the ops routes beside it."""
        settings = self.settings
        reader = store.metrics if self._metrics is not None else None
        observe = self._metrics is not None or tracing.TRACER is not None
        gateway = create_app(
            InProcessClient(servicer),
            admin=InProcessAdminClient(admin),
            api_key=settings.api_key,
            max_body_bytes=settings.max_body_bytes,
            response_media_type=settings.response_content_type,
            outer_middlewares=[observe_middleware(self._metrics)] if observe else [],
            open_routes=ops_routes(self.readiness, self._metrics, reader),
        )
        runner = self._http = GatewayRunner(
            gateway, access_log=None, handle_signals=False, shutdown_timeout=STOP_GRACE_S
        )
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.http_port, reuse_port=self.reuse_port or None)
        await site.start()
        self.http_port = int(runner.addresses[0][1])

    def _start_loops(self, store: Store, admin_service: AdminService) -> None:
        """The periodic maintenance tasks and the readiness watch on Redis."""
        settings = self.settings
        cron = CronService(store, clock=self.clock)
        maintenance = MaintenanceService(
            store, worker_retention_ms=settings.worker_retention_s * 1000, clock=self.clock
        )
        tasks = [
            PeriodicTask(
                "reaper", settings.reaper_interval_ms / 1000, maintenance.reap_expired, "ojs.visibility.check"
            ),
            PeriodicTask(
                "promoter",
                settings.promote_interval_ms / 1000,
                maintenance.promote_and_expire,
                "ojs.scheduler.poll",
            ),
            PeriodicTask("cron", settings.promote_interval_ms / 1000, cron.fire_due),
            PeriodicTask("retention", RETENTION_INTERVAL_S, maintenance.prune, "ojs.retention.prune"),
            PeriodicTask("redis-pool-trim", POOL_TRIM_INTERVAL_S, self._trim_pool),
            PeriodicTask("index-trim", RETENTION_INTERVAL_S, admin_service.trim_indexes),
        ]
        if self._metrics is not None and self._metrics.multiprocess:
            tasks.append(PeriodicTask("process-metrics", PROCESS_METRICS_INTERVAL_S, self._refresh_metrics))
        self._loops = LoopRunner(tasks)
        self._loops.start()
        self._watch = asyncio.create_task(self.readiness.follow_redis(lambda: self.redis_down_reason), name="readiness")

    async def _trim_pool(self) -> None:
        if self._redis is not None and await close_idle_connections(self._redis, POOL_IDLE_KEEP):
            # A burst just ended: give the memory it freed back to the system.
            release_freed_memory()

    async def _refresh_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.refresh_process()

    async def _wait_for_redis(self, store: Store) -> None:
        deadline = asyncio.get_running_loop().time() + REDIS_STARTUP_WAIT_S
        while True:
            try:
                await store.load_scripts()
                return
            except OJSError as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    raise RuntimeError(f"Redis at {self.redis_url} is unreachable: {exc.message}") from exc
                log.warning("waiting for Redis: %s", exc.message)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Drain, then stop in reverse order of start; safe to call more than once.

        Readiness turns false at once (gRPC health too) and new calls are refused with
        UNAVAILABLE / 503; long polls return what they have, job streams end after giving
        back what they claimed but did not deliver; calls already running finish (up to
        OJS_SHUTDOWN_TIMEOUT), grouped acks are written; then the listeners close and the
        background loops stop between steps.
        """
        started = time.monotonic()
        deadline = started + self.settings.shutdown_timeout_s
        await self.readiness.set_phase(Phase.DRAINING)
        if self._servicer is not None:
            if not await self._servicer.drain(max(0.1, deadline - time.monotonic() - STOP_GRACE_S)):
                log.warning("stop: calls still running after the shutdown timeout; closing anyway")
            log.debug("stop: drained after %.2fs", time.monotonic() - started)
        if self._feed is not None:
            await self._feed.stop()
            self._feed = None
        grace = max(0.1, min(STOP_GRACE_S, deadline - time.monotonic()))
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        log.debug("stop: HTTP closed after %.2fs", time.monotonic() - started)
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        log.debug("stop: gRPC closed after %.2fs", time.monotonic() - started)
        if self._loops is not None:
            await self._loops.stop(grace)
            self._loops = None
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._notifier is not None:
            await self._notifier.stop()
            self._notifier = None
        if self._monitor is not None:
            await self._monitor.stop()
            self._monitor = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._embedded is not None:
            await self._embedded.stop()
            self._embedded = None
        log.debug("stop: done after %.2fs", time.monotonic() - started)
