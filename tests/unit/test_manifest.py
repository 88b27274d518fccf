"""The manifest is built as a value in the service layer and rendered at the edge."""

from __future__ import annotations

import dataclasses

import orjson

from server.rpc.manifest import manifest_document, manifest_response
from server.service.system import MANIFEST, Extension

EXPECTED = {
    "specversion": "1.0",
    "ojs_version": "1.0",
    "implementation": {"name": "ojs-server-python", "version": "0.1.0", "language": "python"},
    "conformance_level": 4,
    "conformance_tier": "runtime",
    "protocols": ["http", "grpc"],
    "backend": "redis",
    "capabilities": {
        "batch_enqueue": True,
        "cron_jobs": True,
        "dead_letter": True,
        "delayed_jobs": True,
        "job_ttl": True,
        "priority_queues": True,
        "rate_limiting": True,
        "schema_validation": False,
        "unique_jobs": True,
        "workflows": True,
        "pause_resume": True,
    },
    "extensions": {
        "official": [{"name": "progress", "uri": "urn:ojs:ext:progress", "version": "1.0.0-rc.1"}],
        "experimental": [],
    },
    "schema_validation": False,
    "unique_job_strength": "strong",
    "event_delivery": "at_least_once",
    "endpoints": {"base_url": "/ojs/v1", "manifest": "/ojs/manifest", "health": "/ojs/v1/health"},
}


def test_the_document_renders_every_field_of_the_value() -> None:
    assert manifest_document(MANIFEST) == EXPECTED
    response = manifest_response(MANIFEST)
    assert orjson.loads(response.manifest_json) == EXPECTED
    assert (response.ojs_version, response.conformance_level, response.backend) == ("1.0", 4, "redis")
    assert list(response.protocols) == ["http", "grpc"]


def test_extensions_render_in_both_views() -> None:
    progress = Extension(name="progress", uri="urn:example:progress", version="1")
    manifest = dataclasses.replace(MANIFEST, official_extensions=(progress,))
    assert manifest_document(manifest)["extensions"]["official"] == [
        {"name": "progress", "uri": "urn:example:progress", "version": "1"}
    ]
    assert list(manifest_response(manifest).extensions) == ["urn:example:progress"]
