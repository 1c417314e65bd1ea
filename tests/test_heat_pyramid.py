"""案件热力金字塔 (migration 0010): kept exact by the triggers, and the heat's two paths agree.

Hand-made cases around 历下区; the expected pyramid and tile counts are computed here in Python
(spherical web mercator, the city's clock), not by the SQL under test.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely
from sqlalchemy import text

from analytics import heat as H
from analytics.case_filters import case_filter
from analytics.contract import run_analysis
from auth.accounts import User
from auth.roles import ROLES
from geodata.db import make_engine
from tests.conftest import area_shape

CITY = ZoneInfo("Asia/Shanghai")
HALF = 20037508.342789244
R = 6378137.0
LIXIA = "370102"
ADMIN = User(0, "t_pyr_admin", ROLES["admin"], ())
LIXIA_USER = User(0, "t_pyr_lixia", ROLES["district"], (LIXIA,))
BOX = (116.95, 36.60, 117.15, 36.72)  # around 历下区, also over its neighbours
CLASSES = (("事件", "0102"), ("事件", "0103"), ("事件", "0201"), ("部件", "0101"), ("部件", "0301"))
SOURCES = ("监督员上报", "公众举报", "上级交办")
STATUSES = ("已立案", "已派遣", "已结案", "已作废")


@dataclass(frozen=True)
class Case:
    """A planted case."""

    code: str
    kind: str
    klass: str
    source: str
    status: str
    at: datetime
    lon: float
    lat: float


def tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile of a point at zoom z (spherical web mercator, computed here)."""
    x = R * math.radians(lon)
    y = R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    side = 2 * HALF / 2**z
    return math.floor((x + HALF) / side), math.floor((HALF - y) / side)


def make_cases(rng: random.Random, n: int, prefix: str) -> list[Case]:
    """n random cases in BOX over February–April 2026, of random class, source and status."""
    start = datetime(2026, 2, 1, tzinfo=CITY).astimezone(UTC)
    out = []
    for i in range(n):
        kind, klass = rng.choice(CLASSES)
        at = start + timedelta(minutes=rng.randrange(0, 89 * 24 * 60))
        out.append(Case(f"{prefix}{i:05d}", kind, klass, rng.choice(SOURCES), rng.choice(STATUSES),
                        at, rng.uniform(BOX[0], BOX[2]), rng.uniform(BOX[1], BOX[3])))  # fmt: skip
    return out


def insert(conn, cases: list[Case]) -> None:
    """Insert the cases in one statement."""
    conn.execute(text(
        "INSERT INTO case_record (code, kind, event_class_code, component_class_code, source, "
        "status, reported_at, geom) SELECT code, kind, ev, co, src, st, at, "
        "ST_SetSRID(ST_MakePoint(lon, lat), 4490) FROM unnest(CAST(:code AS text[]), "
        "CAST(:kind AS text[]), CAST(:ev AS text[]), CAST(:co AS text[]), CAST(:src AS text[]), "
        "CAST(:st AS text[]), CAST(:at AS timestamptz[]), CAST(:lon AS float8[]), "
        "CAST(:lat AS float8[])) AS u(code, kind, ev, co, src, st, at, lon, lat)"), {
        "code": [c.code for c in cases], "kind": [c.kind for c in cases],
        "ev": [c.klass if c.kind == "事件" else None for c in cases],
        "co": [c.klass if c.kind == "部件" else None for c in cases],
        "src": [c.source for c in cases], "st": [c.status for c in cases],
        "at": [c.at for c in cases], "lon": [c.lon for c in cases],
        "lat": [c.lat for c in cases]})  # fmt: skip


def expected_pyramid(cases) -> dict:
    """The pyramid from scratch: key → (n, Σ lon, Σ lat) in nano-degrees."""
    rows: dict = {}
    for c in cases:
        day = c.at.astimezone(CITY).date()
        lon, lat = round(c.lon * 1e9), round(c.lat * 1e9)
        for dims in ((c.klass, c.source, c.status), ("*", "*", "*")):
            keys = [(17, "day", day, *tile(c.lon, c.lat, 17), *dims)]
            keys += [(z, "month", day.replace(day=1), *tile(c.lon, c.lat, z), *dims)
                     for z in range(11, 18)]  # fmt: skip
            for k in keys:
                n, sx, sy = rows.get(k, (0, 0, 0))
                rows[k] = (n + 1, sx + lon, sy + lat)
    return rows


def stored_pyramid(conn) -> dict:
    """The pyramid as stored."""
    return {(r.z, r.grain, r.period, r.x, r.y, r.class_code, r.source, r.status):
            (r.n, r.sum_lon, r.sum_lat)
            for r in conn.execute(text("SELECT * FROM case_heat_cell"))}  # fmt: skip


@pytest.fixture(scope="module")
def pyr_db(scratch):
    """A migrated database with the Shandong boundaries and 600 planted cases."""
    engine = make_engine(scratch.create_city("onemap_heatpyr"))
    cases = make_cases(random.Random(12), 600, "HP")
    with engine.begin() as conn:
        insert(conn, cases)
    yield engine, cases
    engine.dispose()


def test_triggers_keep_the_pyramid_equal_to_a_fresh_aggregation(pyr_db):
    engine, cases = pyr_db
    rng = random.Random(7)
    with engine.connect() as conn:
        tx = conn.begin()
        assert stored_pyramid(conn) == expected_pyramid(cases)
        more = make_cases(rng, 150, "HQ")
        insert(conn, more)
        live = {c.code: c for c in [*cases, *more]}
        assert stored_pyramid(conn) == expected_pyramid(live.values())
        # a status change moves the count; one update also moves a case and changes its day
        closing = rng.sample(sorted(live), 80)
        conn.execute(text("UPDATE case_record SET status = '已结案' WHERE code = ANY(:c)"),
                     {"c": closing})  # fmt: skip
        for code in closing:
            live[code] = replace(live[code], status="已结案")
        moved = closing[0]
        conn.execute(text("UPDATE case_record SET geom = ST_SetSRID(ST_MakePoint(117.01, 36.65), "
                          "4490), reported_at = reported_at - interval '40 days' WHERE code = :c"),
                     {"c": moved})  # fmt: skip
        live[moved] = replace(live[moved], lon=117.01, lat=36.65,
                              at=live[moved].at - timedelta(days=40))  # fmt: skip
        conn.execute(text("UPDATE case_record SET department = 'x' WHERE code = ANY(:c)"),
                     {"c": closing[:20]})  # fmt: skip
        assert stored_pyramid(conn) == expected_pyramid(live.values())
        gone = rng.sample(sorted(live), 120)
        conn.execute(text("DELETE FROM case_record WHERE code = ANY(:c)"), {"c": gone})
        for code in gone:
            del live[code]
        assert stored_pyramid(conn) == expected_pyramid(live.values())
        assert conn.execute(text("SELECT count(*) FROM case_heat_cell WHERE n <= 0")).scalar() == 0
        conn.execute(text("SELECT case_heat_rebuild()"))
        assert stored_pyramid(conn) == expected_pyramid(live.values())
        tx.rollback()


REQUESTS = [
    ({}, BOX),
    ({}, (117.00, 36.62, 117.10, 36.66)),  # a zoom-17 grid
    ({"from": "2026-02-10", "to": "2026-04-20"}, BOX),  # partial months at both ends
    ({"from": "2026-03-01", "to": "2026-03-31"}, BOX),  # one whole month
    ({"from": "2026-03-05", "to": "2026-03-09"}, BOX),  # days only
    ({"status": "未结案"}, BOX),
    ({"status": "已作废", "source": "公众举报"}, BOX),
    ({"class": "01", "from": "2026-02-15", "to": "2026-04-30"}, BOX),
    ({"class": "0102"}, (116.2, 36.2, 117.9, 37.1)),  # a grid coarser than zoom 11
]


def expected_tiles(cases, grid: H.Grid, params: dict) -> Counter:
    """Cases per tile of the grid for a request, decided here."""
    start = date.fromisoformat(params.get("from", "2026-01-01"))
    stop = date.fromisoformat(params.get("to", "2026-06-30"))
    out = Counter()
    for c in cases:
        x, y = tile(c.lon, c.lat, grid.z)
        if not (grid.x0 <= x <= grid.x1 and grid.y0 <= y <= grid.y1):
            continue
        if not start <= c.at.astimezone(CITY).date() <= stop:
            continue
        status, source, klass = params.get("status"), params.get("source"), params.get("class")
        if status == "未结案" and c.status in ("已结案", "已作废"):
            continue
        if status not in (None, "未结案") and c.status != status:
            continue
        if (source and c.source != source) or (klass and not c.klass.startswith(klass)):
            continue
        out[(x, y)] += 1
    return out


@pytest.mark.parametrize(("params", "box"), REQUESTS)
def test_pyramid_and_raw_paths_give_the_same_points(pyr_db, params, box):
    engine, cases = pyr_db
    full = {"from": "2026-01-01", "to": "2026-06-30", "class": None, "source": None,
            "status": None, **params}  # fmt: skip
    filt = case_filter(full, ADMIN)
    with engine.connect() as conn:
        grid = H.view_grid(conn, dict(zip(("minx", "miny", "maxx", "maxy"), box, strict=True)))
        assert H.uses_pyramid(grid, filt, None)
        pyramid = H.points(H.pyramid_cells(conn, grid, filt))
        raw = H.points(H.raw_cells(conn, grid, filt, None))
        body = run_analysis(conn, ADMIN, "heat", {**full, "bbox": ",".join(map(str, box))})
    assert pyramid == raw
    assert 0 < len(pyramid) <= 65 * 65
    want = expected_tiles(cases, grid, full)
    assert sorted(p[2] for p in pyramid) == sorted(want.values())
    assert body["result"]["source"] == "pyramid" and body["result"]["points"] == pyramid
    assert body["result"]["total"] == sum(want.values())


def test_a_district_user_sees_only_their_districts_cases(pyr_db):
    engine, cases = pyr_db
    with engine.connect() as conn:
        lixia = area_shape(conn, LIXIA)
        params = {"from": "2026-01-01", "to": "2026-06-30", "bbox": ",".join(map(str, BOX))}
        mine = run_analysis(conn, LIXIA_USER, "heat", params)["result"]
        every = run_analysis(conn, ADMIN, "heat", params)["result"]
    inside = sum(lixia.intersects(shapely.Point(c.lon, c.lat)) for c in cases)
    assert 0 < mine["total"] == inside < every["total"] == len(cases)
    assert mine["source"] == "cases"
