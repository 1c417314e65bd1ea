"""Shared helpers of the importer tests: a private database per module, running imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from geodata.db import make_engine
from loaders.importer.report import Report
from loaders.importer.run import ImportOptions, run_import
from settings import PROJECT_ROOT

LIXIA = (117.069, 36.6497)  # a point inside 历下区 (370102)
SHIZHONG = (116.9956, 36.5746)  # a point inside 市中区 (370103)


@pytest.fixture(scope="module")
def import_url(scratch) -> str:
    """A migrated database with the Shandong boundaries, private to one test module."""
    return scratch.create_city("onemap_import")


@pytest.fixture(scope="module")
def db(import_url):
    """Engine on the module's import database."""
    engine = make_engine(import_url)
    yield engine
    engine.dispose()


def run(engine, layer: str, path: Path, **options) -> Report:
    """Run an import in-process."""
    return run_import(engine, ImportOptions(layer=layer, path=Path(path), **options))


def cli(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m loaders …` against the database at url."""
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "loaders", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def count(engine, table: str, where: str = "true", **params) -> int:
    """Rows of a table matching a condition."""
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), params).scalar()


def scalar(engine, sql: str, **params):
    """One value of a query."""
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def codes(report: Report) -> dict[str, int]:
    """Issue counts by machine code."""
    return {code: item["count"] for code, item in report.by_reason().items()}


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    """A small UTF-8 CSV file."""
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def camera_rows(n: int, start: int = 0, lon: float = LIXIA[0], lat: float = LIXIA[1]) -> list[str]:
    """`code,name,lon,lat` lines of n cameras spread a little around a point."""
    return [f"CAM{start + i:06d},摄像头{start + i},{lon + (i % 100) * 1e-4:.6f},"
            f"{lat + (i // 100) * 1e-4:.6f}" for i in range(n)]  # fmt: skip
