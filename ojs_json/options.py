"""Typed enqueue options, protobuf -> the OJS JSON `options` object, for every side that reads them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import struct_pb2
from ojs.v1 import job_pb2

from ojs_json.policies import retry_policy_to_json, unique_policy_to_json
from ojs_json.scalars import duration_ms, iso_duration, timestamp

__all__ = ["enqueue_options_to_json"]


def enqueue_options_to_json(
    options: job_pb2.EnqueueOptions, *, meta_to_json: Callable[[struct_pb2.Struct], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The `options` object, plus the job `meta` the options carry (None when they carry none).

    `meta_to_json` turns the meta Struct into JSON data: the gateway shows it as
    it is, the gRPC adapter also rejects what JSON cannot hold.
    """
    out: dict[str, Any] = {}
    if options.queue:
        out["queue"] = options.queue
    if options.priority:
        out["priority"] = options.priority
    if options.HasField("delay_until"):
        out["delay_until"] = timestamp(options.delay_until)
    if options.HasField("timeout"):
        out["timeout_ms"] = duration_ms(options.timeout)
    if options.HasField("visibility_timeout"):
        out["visibility_timeout_ms"] = duration_ms(options.visibility_timeout)
    if options.HasField("ttl"):
        out["expires_at"] = "+" + iso_duration(options.ttl)
    if options.tags:
        out["tags"] = list(options.tags)
    if options.max_attempts:
        out["max_attempts"] = options.max_attempts
    if options.HasField("retry"):
        out["retry"] = retry_policy_to_json(options.retry)
    if options.HasField("unique"):
        out["unique"] = unique_policy_to_json(options.unique)
    if options.pending:
        out["pending"] = True
    meta = meta_to_json(options.meta) if options.HasField("meta") else None
    if options.trace_id:
        meta = {**(meta or {}), "trace_id": options.trace_id}
    return out, meta
