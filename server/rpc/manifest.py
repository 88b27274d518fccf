"""The manifest value as the ManifestResponse and its JSON document (HTTP binding §21)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from ojs.v1 import service_pb2

from server.service.system import Manifest


def manifest_document(manifest: Manifest) -> dict[str, Any]:
    return {
        "specversion": manifest.spec_version,
        "ojs_version": manifest.spec_version,
        "implementation": dataclasses.asdict(manifest.implementation),
        "conformance_level": manifest.conformance_level,
        "conformance_tier": manifest.conformance_tier,
        "protocols": list(manifest.protocols),
        "backend": manifest.backend,
        "capabilities": dict(manifest.capabilities),
        "extensions": {
            "official": [dataclasses.asdict(extension) for extension in manifest.official_extensions],
            "experimental": [dataclasses.asdict(extension) for extension in manifest.experimental_extensions],
        },
        "schema_validation": manifest.schema_validation,
        "unique_job_strength": manifest.unique_job_strength,
        "event_delivery": manifest.event_delivery,
        "endpoints": dict(manifest.endpoints),
    }


def manifest_response(manifest: Manifest) -> service_pb2.ManifestResponse:
    implementation = manifest.implementation
    return service_pb2.ManifestResponse(
        ojs_version=manifest.spec_version,
        implementation=service_pb2.Implementation(
            name=implementation.name, version=implementation.version, language=implementation.language
        ),
        conformance_level=manifest.conformance_level,
        protocols=manifest.protocols,
        backend=manifest.backend,
        extensions=[extension.uri for extension in manifest.official_extensions],
        schema_validation=manifest.schema_validation,
        manifest_json=orjson.dumps(manifest_document(manifest)),
    )
