"""The real Boston 311 export through the committed mapping, and atomicity under SIGINT / SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import text

from settings import PROJECT_ROOT
from tests import import_helpers
from tests.conftest import wait_until
from tests.import_helpers import (
    camera_rows,
    cli,
    count,
    scalar,
    write_csv,
)

import_url, db = import_helpers.import_url, import_helpers.db  # module fixtures

BOSTON = PROJECT_ROOT / "data" / "boston311" / "boston311_2015_city_services.csv.gz"
MAPPING = PROJECT_ROOT / "loaders" / "mappings" / "boston311.yaml"


@pytest.mark.skipif(not BOSTON.exists(), reason="Boston 311 export not present")
def test_boston_311_import(import_url, db, tmp_path):
    out = tmp_path / "boston.json"
    result = cli(import_url, "import", "case", str(BOSTON), "--mapping", str(MAPPING),
                 "--report", str(out), timeout=180)  # fmt: skip
    assert result.returncode == 1, result.stderr  # some rows are rejected (closed before opened)
    assert "读取 53464 行" in result.stdout and "(-71.0587, 42.3594)" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["read"] == 53464
    assert 50_000 < report["loaded"] < 53_464
    assert report["loaded"] + report["rejected"] == 53_464
    assert 100 < report["reasons"]["date_order"]["count"] < 1000
    placeholder = report["stacked_coordinates"][0]
    assert (placeholder["lon"], placeholder["lat"]) == (-71.0587, 42.3594)
    assert placeholder["count"] > 4000
    assert count(db, "case_record") == report["loaded"]
    kinds = dict(scalar(db, "SELECT json_object_agg(kind, n) FROM "
                            "(SELECT kind, count(*) n FROM case_record GROUP BY kind) s"))  # fmt: skip
    assert kinds["事件"] > kinds["部件"] > 5000
    assert count(db, "case_record", "event_class_code = '0405'") > 7000  # street light outages
    assert count(db, "case_record", "overdue") > 10_000
    assert count(db, "case_record", "status = '已结案' AND closed_at IS NULL") == 0


def start_import(url: str, path, *args: str) -> subprocess.Popen:
    """Start `python -m loaders import camera <path> …` with its output piped.

    The child gets SIGINT back at its default, as a command typed in a terminal has: a test run
    started in the background of a non-interactive shell ignores SIGINT, and a Python started
    with it ignored keeps ignoring it (the Ctrl-C case would then wait forever on the gate).
    """
    env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "loaders", "import", "camera", str(path), *args],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


def writer_waiting_on_gate(engine, table: str) -> int | None:
    """pid of the backend that holds a write lock on table and is blocked inside its DELETE."""
    return scalar(engine, (
        "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'relation' AND l.relation = to_regclass(:t) "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.mode = 'RowExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid() "
        "AND a.wait_event_type = 'Lock' AND a.query ILIKE 'DELETE FROM%'"
    ), t=table)  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_import_changes_nothing(import_url, db, tmp_path, sig):
    seed = write_csv(tmp_path / "seed.csv", "code,name,lon,lat", camera_rows(5, start=900_000))
    assert cli(import_url, "import", "camera", str(seed), "--mode", "upsert").returncode == 0
    before = count(db, "camera")
    big = write_csv(tmp_path / "big.csv", "code,name,lon,lat", camera_rows(5_000))
    # The gate: a row lock on the physically last camera row. The import's `--mode replace`
    # DELETE takes its write lock on camera, deletes the rows before that one and then waits for
    # the gate, so the signal always arrives while the real table holds uncommitted changes.
    with db.connect() as gate:
        gate.execute(text("SELECT code FROM camera ORDER BY ctid DESC LIMIT 1 FOR UPDATE"))
        proc = start_import(import_url, big, "--mode", "replace")
        try:
            pid = wait_until("the DELETE on camera", lambda: writer_waiting_on_gate(db, "camera"),
                             proc)  # fmt: skip
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            gate.rollback()
    wait_until("the import's backend ending", lambda: not scalar(
        db, "SELECT count(*) FROM pg_stat_activity WHERE pid = :p", p=pid), timeout=60)  # fmt: skip
    assert proc.returncode != 0
    assert count(db, "camera") == before
    assert count(db, "camera", "code LIKE 'CAM9%'") == 5
    assert count(db, "camera", "code = 'CAM000001'") == 0
    if sig == signal.SIGINT:
        assert "导入已中断" in err and "Traceback" not in err
