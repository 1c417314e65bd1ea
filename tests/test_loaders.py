"""The loaders command line: migrates an empty database first; bootstrap is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import text

from geodata.db import make_engine
from settings import PROJECT_ROOT, to_sqlalchemy_url


def run_loaders(url: str, *args: str) -> subprocess.CompletedProcess:
    """Run `python -m loaders …` against the database at url (bootstrap loads the small demo)."""
    env = {**os.environ, "DATABASE_URL": url, "ONEMAP_DEMO_SCALE": "small"}
    return subprocess.run([sys.executable, "-m", "loaders", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def plain(url: str) -> str:
    """The plain `postgresql://` form of a URL, as users copy it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_bootstrap_migrates_loads_once(scratch):
    url = scratch.create("onemap_cli")
    first = run_loaders(plain(url), "bootstrap")
    assert first.returncode == 0, first.stderr
    second = run_loaders(plain(url), "bootstrap")
    assert second.returncode == 0, second.stderr
    assert "跳过" in second.stdout
    engine = make_engine(to_sqlalchemy_url(url))
    with engine.connect() as conn:
        counts = dict(
            conn.execute(text("SELECT level, count(*) FROM admin_area GROUP BY level")).all()
        )
    engine.dispose()
    assert counts["city"] == 16 and counts["district"] == 136
    assert counts["street"] > 0 and counts["community"] > counts["street"]


def test_missing_database_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ONEMAP_DATABASE_URL")}
    env["DATABASE_URL"] = "postgresql://nobody:wrong@127.0.0.1:1/none"
    result = subprocess.run([sys.executable, "-m", "loaders", "migrate"], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "数据库" in result.stderr
