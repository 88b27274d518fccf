"""HTTP tests talk to the REST gateway of the session's running application (`ojs_http` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.http.api import Api


@pytest.fixture
async def api(ojs_http: Any) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(ojs_http.base_url))
