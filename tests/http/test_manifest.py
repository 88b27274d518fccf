"""The manifest over the REST gateway of the running application."""

from __future__ import annotations

from tests.http.api import Api


async def test_manifest_reports_the_implemented_level(api: Api) -> None:
    manifest = await api.ok("GET", "/ojs/manifest")
    assert manifest["conformance_level"] == 4
    assert manifest["capabilities"]["dead_letter"] is True
