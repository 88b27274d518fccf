"""Health and manifest replies."""

from __future__ import annotations

from typing import Any

from ojs.v1 import service_pb2

from gateway.convert.common import struct_to_py


def render_health(response: service_pb2.HealthResponse) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of GET /health."""
    details = struct_to_py(response.details) if response.HasField("details") else {}
    backend = details.get("backend")
    backend = backend if isinstance(backend, dict) else {}
    if response.status == service_pb2.HEALTH_STATUS_OK:
        status, http_status = "ok", 200
    elif response.status == service_pb2.HEALTH_STATUS_UNHEALTHY:
        status, http_status = "degraded", 503
    else:
        status = "degraded"
        http_status = 503 if backend.get("status") == "disconnected" else 200
    body: dict[str, Any] = {"status": status}
    if response.version:
        body["version"] = response.version
    body["uptime_seconds"] = response.uptime_seconds
    body["backend"] = backend
    # Queue and worker counts and the lifecycle phase, when the server reports them.
    for name in ("queues", "workers", "lifecycle"):
        if name in details:
            body[name] = details[name]
    return http_status, body


def render_manifest(response: service_pb2.ManifestResponse) -> bytes | dict[str, Any]:
    """The server's manifest document as sent, or one assembled from the official fields."""
    if response.manifest_json:
        return response.manifest_json
    version = response.ojs_version or "1.0"
    return {
        "specversion": version,
        "ojs_version": version,
        "implementation": {
            "name": response.implementation.name,
            "version": response.implementation.version,
            "language": response.implementation.language,
        },
        "conformance_level": response.conformance_level,
        "protocols": list(response.protocols),
        "backend": response.backend,
        "extensions": list(response.extensions),
        "schema_validation": response.schema_validation,
    }
