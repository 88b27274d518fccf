"""Official OJS conformance cases, level 4 (advanced: priority, unique jobs, batch enqueue, queue ops, rate limits)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from .dsl import FlushableServer, MissingSuite, make_level_params, run_param_case


@pytest.mark.parametrize("case_file", make_level_params("level-4-advanced"))
async def test_level4(
    case_file: Path | MissingSuite, ojs_http: FlushableServer, conformance_session: aiohttp.ClientSession
) -> None:
    result = await run_param_case(case_file, ojs_http, conformance_session)
    assert result.passed, "\n".join(result.failures)
