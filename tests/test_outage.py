"""Database outage: a private PostgreSQL cluster is stopped and restarted under the running server.

The server must answer 503 with a Chinese message and Retry-After (its own page for browsers),
log one line per outage instead of a traceback per request, and recover by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from auth import accounts
from bench.pgcluster import PrivateCluster
from geodata.db import make_engine, migrate
from settings import PROJECT_ROOT
from tests.conftest import ARTIFACTS, free_port, wait_for


@pytest.fixture(scope="module")
def cluster():
    """A private cluster holding a migrated city database and one leader with a token."""
    c = PrivateCluster("onemap_outage", prefix="onemap-outage-")
    try:
        c.init()
        c.start()
        c.create_database()
        engine = make_engine(c.url.replace("postgresql://", "postgresql+psycopg://"))
        migrate(engine)
        with engine.begin() as conn:
            accounts.add_user(conn, "outage_leader", "leader", "outage-password-1")
            c.token = accounts.create_token(conn, "outage_leader", "tests", 1)[1]
        engine.dispose()
        yield c
    finally:
        c.remove()


@pytest.fixture(scope="module")
def server(cluster):
    """The real server on the private cluster; yields (base URL, log path)."""
    port = free_port()
    log_path = ARTIFACTS / "outage-server.log"
    ARTIFACTS.mkdir(exist_ok=True)
    env = {**os.environ, "DATABASE_URL": cluster.url, "ONEMAP_PORT": str(port),
           "ONEMAP_HOST": "127.0.0.1", "ONEMAP_DEBUG": "false", "ONEMAP_AUTH_CACHE_SECONDS": "0"}  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(base, proc)
            yield base, log_path
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_outage_answers_503_then_recovers_by_itself(cluster, server):
    base, log_path = server
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {cluster.token}"
    assert api.get(base + "/api/stats/case?by=status", timeout=30).status_code == 200
    cluster.stop()
    for _ in range(6):
        resp = api.get(base + "/api/stats/case?by=status", timeout=30)
        assert resp.status_code == 503 and resp.json()["error"].startswith("数据库暂不可用")
        assert int(resp.headers["Retry-After"]) > 0
    page = api.get(base + "/", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 503 and "text/html" in page.headers["Content-Type"]
    assert "数据库暂不可用" in page.text and time.strftime("%Y-%m-%d") in page.text
    cluster.start()
    deadline = time.monotonic() + 30
    while api.get(base + "/api/stats/case?by=status", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover within 30 s"
        time.sleep(0.5)
    log = log_path.read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert 1 <= log.count("database unavailable since") <= 2  # once per worker that saw it
    assert log.count("database available again") >= 1
