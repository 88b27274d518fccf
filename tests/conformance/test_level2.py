"""Official OJS conformance cases, level 2 (scheduled: delays, expiry, cron).

Marked slow: the cron cases wait for real minutes to pass. `pytest -m "not slow"` skips them locally; CI runs them.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from .dsl import FlushableServer, MissingSuite, make_level_params, run_param_case


@pytest.mark.slow
@pytest.mark.parametrize("case_file", make_level_params("level-2-scheduled"))
async def test_level2(
    case_file: Path | MissingSuite, ojs_http: FlushableServer, conformance_session: aiohttp.ClientSession
) -> None:
    result = await run_param_case(case_file, ojs_http, conformance_session)
    assert result.passed, "\n".join(result.failures)
