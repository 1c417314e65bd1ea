"""Read scale-out on a real streaming replica (pg_basebackup -R) of a private test cluster.

The replica's WAL replay is paused to make it lag on purpose: a read the router sends there then
cannot see a row the primary has committed, which is how these tests tell the two servers apart.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from auth import accounts
from bench.pgcluster import PrivateCluster
from geodata.db import make_engine, migrate
from geodata.replicas import ReadRouter
from layers.registry import LAYERS
from layers.tiles import TileCache, get_tile
from settings import PROJECT_ROOT, Settings, to_sqlalchemy_url
from tests.conftest import ARTIFACTS, free_port, wait_for, wait_until

LON, LAT = 117.02, 36.65
LAYER = "component_01"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The web-mercator tile (z, x, y) holding a point."""
    n = 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return z, int((lon + 180) / 360 * n), int(y)


TILE = tile_of(LON + 0.0002, LAT, 17)


@pytest.fixture(scope="module")
def pair():
    """A primary with a migrated database, a leader, an admin and one lot, and its replica."""
    primary = PrivateCluster("onemap_repl", prefix="onemap-primary-")
    replica = PrivateCluster("onemap_repl", prefix="onemap-replica-")
    engines = []
    try:
        primary.init()
        primary.start()
        primary.create_database()
        p = make_engine(to_sqlalchemy_url(primary.url))
        engines.append(p)
        migrate(p)
        with p.begin() as conn:
            accounts.add_user(conn, "repl_admin", "admin", "replica-password-1")
            token = accounts.create_token(conn, "repl_admin", "tests", 1)[1]
            add_component(conn, "3701020101000001")
            conn.execute(text("INSERT INTO parking_lot (code, name, capacity, lot_type, geom) "
                              "VALUES ('REPL-P1', '副本测试停车场', 10, '路外', "
                              "ST_SetSRID(ST_MakePoint(:x, :y), 4490))"), {"x": LON, "y": LAT})  # fmt: skip
        replica.replicate("127.0.0.1", primary.port)
        replica.start()
        r = make_engine(to_sqlalchemy_url(replica.url))
        engines.append(r)
        yield SimpleNamespace(primary=primary, replica=replica, p=p, r=r, token=token)
    finally:
        for e in engines:
            e.dispose()
        replica.remove()
        primary.remove()


def add_component(conn, code: str) -> None:
    """A manhole cover (上水井盖, class 0101) a few metres from LON, LAT."""
    conn.execute(text("INSERT INTO component (code, class_code, geom) "
                      "VALUES (:c, '0101', ST_SetSRID(ST_MakePoint(:x, :y), 4490))"),
                 {"c": code, "x": LON + 0.0001 * int(code[-1]), "y": LAT})  # fmt: skip


def in_recovery(conn) -> bool:
    """True on a standby (the replica), False on the primary."""
    return conn.execute(text("SELECT pg_is_in_recovery()")).scalar()


def has_component(conn, code: str) -> bool:
    """Whether the connection's server has replayed the component."""
    return bool(conn.execute(text("SELECT count(*) FROM component WHERE code = :c"), {"c": code})
                .scalar())  # fmt: skip


def caught_up(pair, timeout: float = 30) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with pair.p.connect() as conn:
        lsn = str(conn.execute(text("SELECT pg_current_wal_lsn()")).scalar())
    replayed = text("SELECT pg_last_wal_replay_lsn() >= CAST(:l AS pg_lsn)")
    with pair.r.connect() as conn:
        wait_until("the replica catching up", lambda: conn.execute(replayed, {"l": lsn}).scalar(),
                   timeout=timeout)  # fmt: skip


def pause_replay(pair) -> None:
    """Stop the replica's WAL replay (it keeps receiving, so it lags on purpose)."""
    paused = text("SELECT pg_get_wal_replay_pause_state() = 'paused'")
    with pair.r.connect() as conn:
        conn.execute(text("SELECT pg_wal_replay_pause()"))
        wait_until("replay paused", lambda: conn.execute(paused).scalar(), timeout=10)


def resume_replay(pair) -> None:
    """Let the replica replay again."""
    with pair.r.connect() as conn:
        conn.execute(text("SELECT pg_wal_replay_resume()"))


def test_the_replica_is_a_real_standby(pair):
    caught_up(pair)
    with pair.r.connect() as conn:
        assert in_recovery(conn)
        assert has_component(conn, "3701020101000001")
        with pytest.raises(DBAPIError, match="read-only transaction"):
            conn.execute(text("DELETE FROM component"))


def test_reads_go_to_the_replica_and_a_write_is_read_back_at_once(pair):
    router = ReadRouter(pair.p, [pair.r], fence_s=3600)
    caught_up(pair)
    with router.connect(["component"]) as conn:
        assert in_recovery(conn)
    pause_replay(pair)
    try:
        with pair.p.begin() as conn:  # a write on this process's primary engine
            add_component(conn, "3701020101000002")
        with router.connect(["component"]) as conn:  # the replica lags: the primary answers
            assert not in_recovery(conn) and has_component(conn, "3701020101000002")
        with router.connect(["road"]) as conn:  # a table the write did not touch
            assert in_recovery(conn)
    finally:
        resume_replay(pair)
    caught_up(pair)
    with router.connect(["component"]) as conn:
        assert in_recovery(conn) and has_component(conn, "3701020101000002")
    assert router.served[f"127.0.0.1:{pair.replica.port}/onemap_repl"] == 3
    assert router.served[f"127.0.0.1:{pair.primary.port}/onemap_repl"] == 1


def test_a_tile_cached_from_a_lagging_replica_does_not_outlive_the_primary_version(pair):
    layer, cache = next(x for x in LAYERS if x.id == LAYER), TileCache(10_000_000)
    router = ReadRouter(pair.p, [pair.r], fence_s=3)
    other = make_engine(to_sqlalchemy_url(pair.primary.url))  # another worker's writes
    caught_up(pair)
    with router.connect(layer.tables) as conn:  # the watermark is read now, before the write
        fenced_until = time.monotonic() + 3
    pause_replay(pair)
    try:
        with other.begin() as conn:
            add_component(conn, "3701020101000003")
        with router.connect(layer.tables) as conn:  # within the fence: the replica still serves
            assert in_recovery(conn)
            stale = get_tile(conn, cache, layer, *TILE, [])
        assert b"3701020101000001" in stale.data and b"3701020101000003" not in stale.data
        assert time.monotonic() < fenced_until  # (the stale read really was within the fence)
        time.sleep(fenced_until - time.monotonic() + 0.1)  # past the fence: counters read again
        with router.connect(layer.tables) as conn:
            assert not in_recovery(conn)
            fresh = get_tile(conn, cache, layer, *TILE, [])
        assert b"3701020101000003" in fresh.data and fresh.etag != stale.etag
    finally:
        resume_replay(pair)
        other.dispose()
    caught_up(pair)
    time.sleep(3.1)
    with router.connect(layer.tables) as conn:  # caught up: the replica serves the same version
        assert in_recovery(conn)
        again = get_tile(conn, cache, layer, *TILE, [])
    assert again.etag == fresh.etag and b"3701020101000003" in again.data


def test_a_replica_that_is_down_is_left_out(pair):
    router = ReadRouter(pair.p, [pair.r], fence_s=0, retry_s=3600)
    pair.replica.stop()
    try:
        pair.r.dispose()
        for _ in range(3):
            with router.connect(["component"]) as conn:
                assert not in_recovery(conn)
        assert router.candidates() == []
    finally:
        pair.replica.start()
    caught_up(pair)


def test_a_primary_that_is_down_does_not_take_the_replicas_out(pair):
    dead = make_engine("postgresql+psycopg://onemap@127.0.0.1:1/none")
    router = ReadRouter(dead, [pair.r], fence_s=0, retry_s=3600)
    try:
        with pytest.raises(DBAPIError), router.connect(["component"]):
            pass
        assert router.candidates() == [pair.r]
    finally:
        dead.dispose()


def test_settings_read_a_comma_separated_list_of_replicas():
    s = Settings(DATABASE_URL="postgresql://a@p/x",
                 READ_DATABASE_URL=" postgresql://a@r1/x, ,postgres://a@r2:5433/x ")  # fmt: skip
    assert s.read_sqlalchemy_urls() == ["postgresql+psycopg://a@r1/x",
                                        "postgresql+psycopg://a@r2:5433/x"]  # fmt: skip
    assert Settings(DATABASE_URL="postgresql://a@p/x").read_sqlalchemy_urls() == []


@pytest.fixture
def server(pair):
    """The real server: writes to the primary, reads from the replica (listed twice: a comma list
    of two replicas) with a fence of an hour, one worker."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": pair.primary.url, "ONEMAP_PORT": str(port),
           "ONEMAP_READ_DATABASE_URL": f"{pair.replica.url},{pair.replica.url}",
           "ONEMAP_READ_FENCE_S": "3600", "ONEMAP_WORKERS": "1", "ONEMAP_DEBUG": "false"}  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "replica-server.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(base, proc)
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {pair.token}"
            yield base, api
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def codes(api, base) -> set[str]:
    """Codes of the components the app returns around LON, LAT."""
    bbox = f"{LON - 0.01},{LAT - 0.01},{LON + 0.01},{LAT + 0.01}"
    resp = api.get(f"{base}/api/features/{LAYER}", params={"bbox": bbox}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {f["properties"]["code"] for f in resp.json()["features"]}


def test_the_app_reads_from_the_replica_and_writes_to_the_primary(pair, server):
    base, api = server
    caught_up(pair)
    assert "3701020101000001" in codes(api, base)
    pause_replay(pair)
    try:
        with pair.p.begin() as conn:  # written behind the app's back
            add_component(conn, "3701020101000004")
        assert "3701020101000004" not in codes(api, base)  # so the read was served by the replica
        tile = api.get(f"{base}/tiles/{LAYER}/{'/'.join(map(str, TILE))}.pbf", timeout=30)
        assert tile.status_code == 200 and b"3701020101000004" not in tile.content
        at = datetime.now(UTC).isoformat(timespec="seconds")
        done = api.post(f"{base}/api/parking/readings", timeout=30,
                        json=[{"lot_code": "REPL-P1", "at": at, "occupied": 7}])  # fmt: skip
        assert done.status_code == 200 and done.json()["written"] == 1, done.text
        with pair.p.connect() as conn:  # the write went to the primary
            assert conn.execute(text("SELECT occupied FROM parking_occupancy")).scalar() == 7
        # The app's own write moves its watermark: its next read goes to the primary.
        near = api.get(f"{base}/api/parking/nearest", params={"lon": LON, "lat": LAT},
                       timeout=30).json()  # fmt: skip
        assert [(lot["code"], lot["occupied"]) for lot in near["lots"]] == [("REPL-P1", 7)]
    finally:
        resume_replay(pair)
    caught_up(pair)
    assert {"3701020101000001", "3701020101000004"} <= codes(api, base)  # visible once replicated
