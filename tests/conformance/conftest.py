"""Fixtures for running the official OJS conformance cases over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def conformance_session() -> AsyncIterator[aiohttp.ClientSession]:
    # Go's default http.Client keeps no cookies; neither should the runner.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session
