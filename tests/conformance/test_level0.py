"""Official OJS conformance cases, level 0 (core)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from .dsl import FlushableServer, MissingSuite, load_param_case, make_level_params, run_case


@pytest.mark.parametrize("case_file", make_level_params("level-0-core"))
async def test_level0(
    case_file: Path | MissingSuite, ojs_http: FlushableServer, conformance_session: aiohttp.ClientSession
) -> None:
    case = load_param_case(case_file)
    await ojs_http.flush()
    result = await run_case(case, conformance_session, ojs_http.base_url)
    assert result.passed, "\n".join(result.failures)
