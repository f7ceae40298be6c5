"""The checks every change runs, inside the test command: ruff's lint and format, and mypy.

Each runs as it would by hand (`.venv/bin/ruff check .`, `.venv/bin/ruff format --check .`,
`.venv/bin/mypy`), with the settings in pyproject.toml; a failure shows the tool's own report.
`.pre-commit-config.yaml` runs the same three before a commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECKS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
    "mypy": [sys.executable, "-m", "mypy"],
}


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a check from the repository's root, outside the suite's coverage measurement."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "COV_CORE_"))}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)


@pytest.mark.timeout(300)  # mypy without its cache (a fresh clone) takes a while on two cores
@pytest.mark.parametrize("name", list(CHECKS))
def test_the_tree_passes_the_check(name):
    result = run(CHECKS[name])
    report = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"`{' '.join(CHECKS[name][2:])}` failed:\n{report}"
