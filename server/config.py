"""Process settings, read once from the environment.

Names follow the OJS reference server (OJS_PORT, OJS_GRPC_PORT, REDIS_URL,
OJS_API_KEY, OJS_ALLOW_INSECURE_NO_AUTH); units are part of the field names.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from pathlib import Path

from server.domain.limits import DEFAULT_MAX_JOB_BYTES, MAX_JOB_BYTES_LIMIT

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# OJS_EVENT_LOOP: uvloop when importable (auto), the standard asyncio loop, or uvloop required.
EVENT_LOOPS = ("auto", "asyncio", "uvloop")
# OJS_LOG_FORMAT: lines for a terminal, or one JSON object per line (ojs-logging.md).
LOG_FORMATS = ("plain", "json")
# More server processes than this on one machine is a typo, not a plan.
MAX_WORKERS = 256
# OJS_RESPONSE_CONTENT_TYPE: the spec's media type, or plain JSON for clients that parse only that.
RESPONSE_CONTENT_TYPES = ("application/openjobspec+json", "application/json")


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f"..{maximum}"
        raise SettingsError(f"{name} must be in {minimum}{upper}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 9090
    # None: start and own a private redis-server persisting into data_dir.
    redis_url: str | None = None
    data_dir: Path = Path("ojs-data")
    key_prefix: str = "ojs"
    api_key: str | None = None
    allow_insecure_no_auth: bool = False
    # Largest HTTP request body accepted (the spec asks for at least 1 MiB envelopes).
    max_body_bytes: int = 4 * 1024 * 1024
    # Most jobs one batch enqueue may carry.
    max_batch_jobs: int = 10_000
    # Largest job (args, meta and unknown envelope fields as JSON); bigger ones get 413 / RESOURCE_EXHAUSTED.
    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES
    # Approximate cap of the event log stream.
    events_maxlen: int = 100_000
    # Lease length of a fetched job when neither the job nor the fetch names one.
    default_visibility_timeout_ms: int = 1_800_000
    # Execution time limit of an attempt when the job names none (0: no limit).
    default_timeout_ms: int = 1_800_000
    # Terminal jobs are deleted this long after they end (0: kept until deleted).
    retention_completed_s: int = 7 * 86_400
    retention_cancelled_s: int = 7 * 86_400
    retention_discarded_s: int = 30 * 86_400
    # Dead letter retention: by age and by count (ojs-dead-letter defaults).
    dead_letter_max_age_s: int = 180 * 86_400
    dead_letter_max_count: int = 10_000
    # Workers silent for this long are dropped from the registry.
    worker_retention_s: int = 3_600
    # Period of the lease reaper and of the scheduled/retry promoter.
    reaper_interval_ms: int = 250
    promote_interval_ms: int = 250
    # Redis connections of the process: at most this many (requests beyond wait for one, up to the pool timeout).
    redis_pool_size: int = 64
    redis_pool_timeout_ms: int = 2_000
    redis_connect_timeout_ms: int = 2_000
    # A Redis command unanswered for this long fails (503), so a stalled Redis cannot hang requests.
    redis_command_timeout_ms: int = 5_000
    # Requests served at once, HTTP and gRPC together (0: no limit); more wait, shared fairly by the protocols.
    max_inflight: int = 16
    # Requests waiting for a slot; beyond, or after waiting admission_timeout_ms, they get 503 + Retry-After.
    max_waiting: int = 4_096
    admission_timeout_ms: int = 5_000
    retry_after_s: int = 1
    log_level: str = "INFO"
    # "plain" (default) or "json": one JSON object per line with the fields of ojs-logging.md.
    log_format: str = "plain"
    # Serve GET /metrics and count requests and Redis calls (the job figures live in Redis either way).
    metrics_enabled: bool = True
    # SIGTERM/SIGINT: how long in-flight work may take to finish before the process gives up waiting.
    shutdown_timeout_s: int = 30
    # Server processes sharing the gRPC and HTTP ports (SO_REUSEPORT); 1: a single process, no supervisor.
    workers: int = 1
    # asyncio event loop: "auto" (uvloop when importable), "asyncio" or "uvloop".
    event_loop: str = "auto"
    # Start even when the protobuf runtime is not the upb backend (pure Python is 10-100x slower).
    allow_slow_protobuf: bool = False
    # Content-Type of the gateway's JSON responses.
    response_content_type: str = RESPONSE_CONTENT_TYPES[0]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        redis_url = env.get("REDIS_URL", "").strip() or None
        api_key = env.get("OJS_API_KEY", "").strip() or None
        return cls(
            host=env.get("OJS_HOST", cls.host).strip() or cls.host,
            http_port=_int(env, "OJS_PORT", cls.http_port, maximum=65535),
            grpc_port=_int(env, "OJS_GRPC_PORT", cls.grpc_port, maximum=65535),
            redis_url=redis_url,
            data_dir=Path(env.get("OJS_DATA_DIR", "").strip() or cls.data_dir),
            key_prefix=env.get("OJS_KEY_PREFIX", cls.key_prefix).strip() or cls.key_prefix,
            api_key=api_key,
            allow_insecure_no_auth=_bool(env, "OJS_ALLOW_INSECURE_NO_AUTH", False),
            max_body_bytes=_int(env, "OJS_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            events_maxlen=_int(env, "OJS_EVENTS_MAXLEN", cls.events_maxlen, minimum=100),
            max_batch_jobs=_int(env, "OJS_MAX_BATCH_JOBS", cls.max_batch_jobs, minimum=1),
            max_job_bytes=_int(
                env, "OJS_MAX_JOB_BYTES", cls.max_job_bytes, minimum=DEFAULT_MAX_JOB_BYTES, maximum=MAX_JOB_BYTES_LIMIT
            ),
            default_visibility_timeout_ms=_int(
                env, "OJS_DEFAULT_VISIBILITY_TIMEOUT_MS", cls.default_visibility_timeout_ms, minimum=1000
            ),
            default_timeout_ms=_int(env, "OJS_DEFAULT_TIMEOUT_MS", cls.default_timeout_ms),
            retention_completed_s=_int(env, "OJS_RETENTION_COMPLETED_S", cls.retention_completed_s),
            retention_cancelled_s=_int(env, "OJS_RETENTION_CANCELLED_S", cls.retention_cancelled_s),
            retention_discarded_s=_int(env, "OJS_RETENTION_DISCARDED_S", cls.retention_discarded_s),
            dead_letter_max_age_s=_int(env, "OJS_DEAD_LETTER_MAX_AGE_S", cls.dead_letter_max_age_s),
            dead_letter_max_count=_int(env, "OJS_DEAD_LETTER_MAX_COUNT", cls.dead_letter_max_count, minimum=1),
            worker_retention_s=_int(env, "OJS_WORKER_RETENTION_S", cls.worker_retention_s, minimum=60),
            reaper_interval_ms=_int(env, "OJS_REAPER_INTERVAL_MS", cls.reaper_interval_ms, minimum=10),
            promote_interval_ms=_int(env, "OJS_PROMOTE_INTERVAL_MS", cls.promote_interval_ms, minimum=10),
            redis_pool_size=_int(env, "OJS_REDIS_POOL_SIZE", cls.redis_pool_size, minimum=4),
            redis_pool_timeout_ms=_int(env, "OJS_REDIS_POOL_TIMEOUT_MS", cls.redis_pool_timeout_ms, minimum=1),
            redis_connect_timeout_ms=_int(
                env, "OJS_REDIS_CONNECT_TIMEOUT_MS", cls.redis_connect_timeout_ms, minimum=10
            ),
            redis_command_timeout_ms=_int(
                env, "OJS_REDIS_COMMAND_TIMEOUT_MS", cls.redis_command_timeout_ms, minimum=100
            ),
            max_inflight=_int(env, "OJS_MAX_INFLIGHT", cls.max_inflight),
            max_waiting=_int(env, "OJS_MAX_WAITING", cls.max_waiting),
            admission_timeout_ms=_int(env, "OJS_ADMISSION_TIMEOUT_MS", cls.admission_timeout_ms, minimum=1),
            retry_after_s=_int(env, "OJS_RETRY_AFTER_S", cls.retry_after_s, minimum=1, maximum=3600),
            log_level=(env.get("OJS_LOG_LEVEL", cls.log_level).strip() or cls.log_level).upper(),
            log_format=_choice(env, "OJS_LOG_FORMAT", cls.log_format, LOG_FORMATS),
            metrics_enabled=_bool(env, "OJS_METRICS", True),
            shutdown_timeout_s=_int(env, "OJS_SHUTDOWN_TIMEOUT", cls.shutdown_timeout_s, minimum=1, maximum=3600),
            workers=_int(env, "OJS_WORKERS", cls.workers, minimum=1, maximum=MAX_WORKERS),
            event_loop=_choice(env, "OJS_EVENT_LOOP", cls.event_loop, EVENT_LOOPS),
            allow_slow_protobuf=_bool(env, "OJS_ALLOW_SLOW_PROTOBUF", False),
            response_content_type=_choice(
                env, "OJS_RESPONSE_CONTENT_TYPE", cls.response_content_type, RESPONSE_CONTENT_TYPES
            ),
        )

    def check_exposure(self) -> None:
        """Refuse to serve without auth on a non-loopback address unless told to."""
        if self.api_key is None and not is_loopback_host(self.host) and not self.allow_insecure_no_auth:
            raise SettingsError(
                f"OJS_HOST={self.host} is reachable from other machines but OJS_API_KEY is not set; "
                "set OJS_API_KEY, or OJS_ALLOW_INSECURE_NO_AUTH=true to serve without authentication"
            )
