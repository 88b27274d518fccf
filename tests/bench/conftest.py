"""The benchmark tests start a real server and load processes: marked `bench`, deselect with -m 'not bench'."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: runs the benchmark suite against a real ojs-server (about 15 s)")
