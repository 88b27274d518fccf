"""The dead letter queue: jobs that exhausted their retries under on_exhaustion=dead_letter."""

from __future__ import annotations

from server.domain.clock import SYSTEM_CLOCK, Clock
from server.domain.errors import invalid, not_found
from server.domain.job import StoredJob
from server.service.paging import Page, check_limit, paginate
from server.store.facade import Store

DEFAULT_LIMIT = 50
# Ids whose queue/type are read per round trip while filtering.
_FILTER_BATCH = 500


class DeadLetterService:
    def __init__(self, store: Store, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._store = store

    async def page(self, *, queue: str, job_type: str, limit: int, cursor: str) -> Page[StoredJob]:
        """Newest first. The cursor names the last job returned, so retrying or deleting
        jobs between pages neither skips nor repeats any."""
        limit = check_limit(limit, default=DEFAULT_LIMIT)
        after = _parse_cursor(cursor)
        entries = await self._store.dead_letter.dead_letter_entries()
        if queue or job_type:
            entries = await self._filter(entries, queue=queue, job_type=job_type)
        # Same order as the sorted set read newest first: score, then id, descending.
        page = paginate(
            entries,
            limit=limit,
            after_cursor=(lambda entry: (entry[1], entry[0]) < (after[1], after[0])) if after else None,
            cursor_of=_cursor,
        )
        jobs = await self._store.jobs.get_many([job_id for job_id, _ in page.items])
        return Page(items=jobs, total=page.total, next_cursor=page.next_cursor)

    async def _filter(self, entries: list[tuple[str, int]], *, queue: str, job_type: str) -> list[tuple[str, int]]:
        kept: list[tuple[str, int]] = []
        for start in range(0, len(entries), _FILTER_BATCH):
            chunk = entries[start : start + _FILTER_BATCH]
            summaries = await self._store.jobs.job_summaries([job_id for job_id, _ in chunk])
            for entry, (job_queue, kind) in zip(chunk, summaries, strict=True):
                if (not queue or job_queue == queue) and (not job_type or kind == job_type):
                    kept.append(entry)
        return kept

    async def retry(self, job_id: str) -> StoredJob:
        if not job_id:
            raise invalid("job_id is required", field="job_id")
        return await self._store.dead_letter.retry_dead(job_id, now_ms=self._clock.now_ms())

    async def delete(self, job_id: str) -> None:
        if not job_id:
            raise invalid("job_id is required", field="job_id")
        if not await self._store.dead_letter.delete_dead(job_id):
            raise not_found("dead letter job", job_id)


def _cursor(entry: tuple[str, int]) -> str:
    job_id, score = entry
    return f"{score}:{job_id}"


def _parse_cursor(cursor: str) -> tuple[str, int] | None:
    if not cursor:
        return None
    score, _, job_id = cursor.partition(":")
    if not score.isdigit() or not job_id:
        raise invalid("cursor must come from a previous page", field="cursor")
    return job_id, int(score)
