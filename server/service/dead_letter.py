"""The dead letter queue: jobs that exhausted their retries under on_exhaustion=dead_letter."""

from __future__ import annotations

import dataclasses

from server.domain.clock import now_ms
from server.domain.errors import invalid, not_found
from server.domain.job import StoredJob
from server.store.job_store import JobStore

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
# Ids whose queue/type are read per round trip while filtering.
_FILTER_BATCH = 500


@dataclasses.dataclass(frozen=True)
class DeadLetterPage:
    jobs: list[StoredJob]
    total: int
    next_cursor: str


class DeadLetterService:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    async def page(self, *, queue: str, job_type: str, limit: int, cursor: str) -> DeadLetterPage:
        """Newest first. The cursor is the offset of the next page in the filtered list."""
        limit = limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        if cursor and not cursor.isdigit():
            raise invalid("cursor must come from a previous page", field="cursor")
        offset = int(cursor or 0)
        ids = await self._store.dead_letter_ids()
        if queue or job_type:
            ids = await self._filter(ids, queue=queue, job_type=job_type)
        page_ids = ids[offset : offset + limit]
        jobs = await self._store.get_many(page_ids)
        next_offset = offset + limit
        return DeadLetterPage(jobs=jobs, total=len(ids), next_cursor=str(next_offset) if next_offset < len(ids) else "")

    async def _filter(self, ids: list[str], *, queue: str, job_type: str) -> list[str]:
        kept: list[str] = []
        for start in range(0, len(ids), _FILTER_BATCH):
            chunk = ids[start : start + _FILTER_BATCH]
            for job_id, (job_queue, kind) in zip(chunk, await self._store.job_summaries(chunk), strict=True):
                if (not queue or job_queue == queue) and (not job_type or kind == job_type):
                    kept.append(job_id)
        return kept

    async def retry(self, job_id: str) -> StoredJob:
        if not job_id:
            raise invalid("job_id is required", field="job_id")
        return await self._store.retry_dead(job_id, now_ms=now_ms())

    async def delete(self, job_id: str) -> None:
        if not job_id:
            raise invalid("job_id is required", field="job_id")
        if not await self._store.delete_dead(job_id):
            raise not_found("dead letter job", job_id)
