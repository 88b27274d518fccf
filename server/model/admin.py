"""Values of the admin API's store reads: index pages, queue and worker snapshots, activity buckets."""

from __future__ import annotations

import dataclasses

__all__ = ["IndexPage", "IndexQuery", "MinuteBucket", "QueueSnapshot", "WorkerSnapshot"]


@dataclasses.dataclass(frozen=True)
class IndexQuery:
    """One page of an index: scores (ms) within [low_ms, high_ms], after a cursor."""

    key: str
    low_ms: int | None = None
    high_ms: int | None = None
    cursor: tuple[str, str] | None = None
    limit: int = 20
    ascending: bool = False
    match: str = ""
    match_prefix: bool = False
    # Exact value of the second field read ("" any).
    match_second: str = ""
    budget: int = 1000


@dataclasses.dataclass(frozen=True)
class IndexPage:
    total: int
    scanned: int
    # (score, id) of the last entry examined; None when the range is exhausted.
    next_cursor: tuple[str, str] | None
    # Per row: score (ms), id, then the requested fields ('' when unset).
    rows: list[tuple[int, str, dict[str, str]]]


@dataclasses.dataclass(frozen=True)
class QueueSnapshot:
    name: str
    created_at_ms: int
    paused_at_ms: int | None
    counts: dict[str, int]
    totals: dict[str, int]
    concurrency: int
    max_per_second: float
    # The last 61 minutes of activity, newest first.
    minutes: list[MinuteBucket]


@dataclasses.dataclass(frozen=True)
class MinuteBucket:
    minute: int
    fields: dict[str, int]


@dataclasses.dataclass(frozen=True)
class WorkerSnapshot:
    worker_id: str
    last_heartbeat_ms: int
    state: str
    directive: str
    active_jobs: int
    # The active jobs leased to it, as index rows (score: when it started).
    jobs: list[tuple[int, str, dict[str, str]]]
