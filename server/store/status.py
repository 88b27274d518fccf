"""The statuses a script's reply starts with, mirrored by lua/include/status.lua."""

from __future__ import annotations

import enum

from server.domain.errors import ErrorCode, OJSError


class ScriptStatus(enum.StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    NOT_OWNER = "not_owner"
    STALE_LEASE = "stale_lease"
    DUPLICATE = "duplicate"
    UNIQUE_CONFLICT = "unique_conflict"
    UNIQUE_EXISTING = "unique_existing"
    FIRED = "fired"
    SKIPPED = "skipped"
    STALE = "stale"
    IGNORED = "ignored"


def status_of(raw: object, script: str) -> ScriptStatus:
    """The status a reply starts with; any other value means the script and server disagree."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return ScriptStatus(text)
    except ValueError:
        raise OJSError(ErrorCode.BACKEND_ERROR, f"script {script} replied with an unknown status {text!r}") from None
