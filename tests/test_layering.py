"""The layering contracts (pyproject.toml, import-linter) hold, and do catch a back-import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from settings import PROJECT_ROOT

PACKAGES = ("geodata", "layers", "auth", "services", "analytics", "api", "callbacks", "loaders",
            "bench", "tests")  # fmt: skip
LINT = str(Path(sys.executable).parent / "lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on a source tree with its own pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT, "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def copy_tree(dest: Path) -> Path:
    """The project's Python packages and pyproject.toml, copied to `dest`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pbf", "*.csv.gz", "*.gpkg", "*.png")
    for name in PACKAGES:
        shutil.copytree(PROJECT_ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "errors.py", "settings.py", "params.py", "runtime.py"):
        shutil.copy(PROJECT_ROOT / name, dest / name)
    return dest


def test_the_project_keeps_its_contracts():
    result = lint(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_a_back_import_breaks_the_build(tmp_path):
    root = copy_tree(tmp_path)
    (root / "geodata" / "backdoor.py").write_text(
        '"""A deliberate back-import: the data package reaching up into the layers."""\n'
        "from layers.registry import LAYERS  # noqa: F401\n"
    )
    result = lint(root)
    assert result.returncode != 0
    assert "One-way layering" in result.stdout and "BROKEN" in result.stdout
    assert "geodata.backdoor -> layers.registry" in result.stdout


def test_a_migration_reading_the_live_catalogue_breaks_the_build(tmp_path):
    root = copy_tree(tmp_path)
    (root / "geodata" / "migrations" / "versions" / "9999_bad.py").write_text(
        '"""Seeds from the live catalogue (not allowed)."""\nfrom geodata import catalog  # noqa\n'
    )
    result = lint(root)
    assert result.returncode != 0
    assert "Migrations seed frozen copies" in result.stdout
