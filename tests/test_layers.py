"""The layers hold: handlers -> services -> models | transcode -> core, nothing imports upward, and no
handler skips the services to import a model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
]


def lint(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run(LINT, cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_the_project_keeps_its_layer_contracts():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("models", "services"),
        ("models", "handlers"),
        ("models", "transcode"),
        ("core", "models"),
        ("services", "handlers"),
        ("transcode", "services"),
    ],
)
def test_an_upward_import_breaks_the_contracts(tmp_path, lower, upper):
    """The same contracts over a tree where one lower module imports a higher one."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("handlers", "services", "models", "transcode", "core"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "thing.py").write_text("")
    (tmp_path / lower / "sneaky.py").write_text(f"import {upper}.thing\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert f"{lower}.sneaky -> {upper}.thing" in result.stdout


def test_a_handler_importing_a_model_breaks_the_contracts(tmp_path):
    """handlers -> models is forbidden even though the layers allow skipping; through services it is fine."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("handlers", "services", "models", "transcode", "core"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "thing.py").write_text("")
    (tmp_path / "services" / "vocabulary.py").write_text("import models.thing\n")
    (tmp_path / "handlers" / "polite.py").write_text("import services.vocabulary\n")
    assert lint(tmp_path).returncode == 0
    (tmp_path / "handlers" / "sneaky.py").write_text("import models.thing\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "handlers is not allowed to import models" in result.stdout
    assert "handlers.sneaky -> models.thing" in result.stdout
