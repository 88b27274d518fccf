"""HTTP tests talk to the REST gateway of the session's running application (`ojs_http` in tests/conftest.py), or
with `clocked_api` to that of the application whose clock they step (`clocked_app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from server.domain.clock import ManualClock
from tests.http.api import Api, ClockedApi

if TYPE_CHECKING:
    from server.app import Application


@pytest.fixture
async def api(ojs_http: Any) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(ojs_http.base_url))


@pytest.fixture
async def clocked_api(clocked_app: Application) -> AsyncIterator[ClockedApi]:
    assert isinstance(clocked_app.clock, ManualClock)
    async with aiohttp.ClientSession() as session:
        yield ClockedApi(Api(session, f"http://127.0.0.1:{clocked_app.http_port}"), clocked_app.clock)
