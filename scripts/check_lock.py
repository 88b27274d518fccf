"""Fails when an installed ojs-server asks for a dependency the environment (installed from the lock) lacks.

`pip install --no-deps -r requirements.lock` never resolves, so a requirement added to pyproject.toml without
`make lock` would otherwise surface later as an ImportError. Usage: check_lock.py [EXTRA ...]
"""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.requirements import Requirement


def main(extras: list[str]) -> int:
    problems = []
    for spec in metadata.requires("ojs-server") or []:
        requirement = Requirement(spec)
        environments = [{"extra": extra} for extra in ["", *extras]]
        if requirement.marker is not None and not any(requirement.marker.evaluate(env) for env in environments):
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement} is not installed")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement} but {installed} is installed")
    for problem in problems:
        print(f"check_lock: {problem}; run 'make lock' and commit requirements.lock", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
