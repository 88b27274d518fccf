"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import Launcher, launcher


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    yield from launcher(tmp_path)
