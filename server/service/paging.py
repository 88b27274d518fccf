"""Cursor paging of sorted lists, shared by every listing (queues, workers, dead letter)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from server.domain.errors import invalid

T = TypeVar("T")

MAX_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    # Items in the whole listing (with its filters), not just this page.
    total: int
    # Names the last item of this page when more follow, else "".
    next_cursor: str


def check_limit(requested: int, *, default: int, maximum: int = MAX_LIMIT) -> int:
    """The page size asked for (0: the default), or a clear error when out of range."""
    limit = requested or default
    if not 1 <= limit <= maximum:
        raise invalid(f"limit must be between 1 and {maximum}", field="limit")
    return limit


def paginate(
    items: Sequence[T], *, limit: int, after_cursor: Callable[[T], bool] | None, cursor_of: Callable[[T], str]
) -> Page[T]:
    """One page of `items`, which are in listing order.

    `after_cursor` tells whether an item comes after the cursor (None: no cursor, start
    at the top); the cursor names an item rather than a position, so items added or
    removed between pages neither skip nor repeat others.
    """
    remaining = list(items) if after_cursor is None else [item for item in items if after_cursor(item)]
    page = remaining[:limit]
    more = len(remaining) > limit
    return Page(items=page, total=len(items), next_cursor=cursor_of(page[-1]) if more and page else "")


def page_by_name(items: Sequence[T], *, name_of: Callable[[T], str], limit: int, cursor: str) -> Page[T]:
    """A page of items sorted by a unique name; the cursor is the last name already seen."""
    return paginate(
        items,
        limit=limit,
        after_cursor=(lambda item: name_of(item) > cursor) if cursor else None,
        cursor_of=name_of,
    )
