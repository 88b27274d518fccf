"""The paging helper every listing shares."""

from __future__ import annotations

import pytest

from server.domain.errors import ErrorCode, OJSError
from server.service.paging import check_limit, page_by_name, paginate

NAMES = ["a", "b", "c", "d", "e"]


def test_pages_by_name_cover_the_list_once() -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        page = page_by_name(NAMES, name_of=str, limit=2, cursor=cursor)
        assert page.total == len(NAMES)
        seen += page.items
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == NAMES


def test_a_cursor_past_a_removed_name_still_resumes_after_it() -> None:
    page = page_by_name(["a", "c", "d"], name_of=str, limit=5, cursor="b")
    assert page.items == ["c", "d"] and page.next_cursor == ""


def test_an_exactly_full_last_page_has_no_cursor() -> None:
    assert page_by_name(NAMES, name_of=str, limit=5, cursor="").next_cursor == ""
    assert page_by_name(NAMES, name_of=str, limit=4, cursor="").next_cursor == "d"


def test_descending_order_with_a_custom_cursor() -> None:
    entries = [("x", 30), ("y", 20), ("z", 10)]
    page = paginate(entries, limit=1, after_cursor=lambda e: e[1] < 30, cursor_of=lambda e: f"{e[1]}:{e[0]}")
    assert page.items == [("y", 20)] and page.next_cursor == "20:y" and page.total == 3


@pytest.mark.parametrize(("requested", "expected"), [(0, 100), (1, 1), (1000, 1000)])
def test_limits_in_range(requested: int, expected: int) -> None:
    assert check_limit(requested, default=100) == expected


@pytest.mark.parametrize("requested", [-1, 1001])
def test_limits_out_of_range_name_the_field(requested: int) -> None:
    with pytest.raises(OJSError) as caught:
        check_limit(requested, default=100)
    assert caught.value.code is ErrorCode.INVALID_REQUEST and caught.value.details["field"] == "limit"
