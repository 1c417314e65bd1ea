"""Emerging hotspots and recurring problems: the statistics by hand, a planted space-time pattern
in PostGIS, and the API's errors and scope."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import esda
import geopandas as gpd
import numpy as np
import pytest
from libpysal.weights import Queen
from scipy.sparse import identity
from scipy.stats import norm
from shapely.geometry import box
from sqlalchemy import text

from analytics.contract import run_analysis
from analytics.emerging import category, gi_star_matrix, mann_kendall, step_flags
from analytics.hotspots import classes
from auth.accounts import User
from auth.roles import ROLES
from tests.conftest import auth, district_token

ADMIN = User(0, "test", ROLES["admin"], ())
CITY = ZoneInfo("Asia/Shanghai")


def lattice_weights(n: int = 10):
    """Queen weights of an n × n lattice of 100 m squares."""
    cells = [
        box(x * 100, y * 100, x * 100 + 100, y * 100 + 100) for y in range(n) for x in range(n)
    ]
    frame = gpd.GeoDataFrame(geometry=cells, crs=4548)
    return Queen.from_dataframe(frame, use_index=False, silence_warnings=True)


def test_gi_star_of_every_step_equals_esda():
    w = lattice_weights()
    rng = np.random.default_rng(3)
    counts = rng.poisson(4, (100, 6)).astype(float)
    counts[22:25, 3:] += 25
    z = gi_star_matrix((w.sparse + identity(100)).tocsr(), counts)
    for k in range(counts.shape[1]):
        reference = esda.G_Local(counts[:, k], w, transform="B", star=True, permutations=0)
        assert np.allclose(z[:, k], reference.Zs, atol=1e-9, rtol=0)


def test_step_flags_follow_the_hotspot_classes_rule():
    rng = np.random.default_rng(5)
    z = rng.normal(0, 2, (60, 4))
    hot, cold = step_flags(z)
    for k in range(4):
        labels = classes(z[:, k], 2 * norm.sf(np.abs(z[:, k])))
        assert list(hot[:, k]) == [c.startswith("hot") for c in labels]
        assert list(cold[:, k]) == [c.startswith("cold") for c in labels]


def test_mann_kendall_against_hand_checked_series():
    s, z, p = mann_kendall(np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [1, 2, 2, 3, 3.0],
                                     [2, 2, 2, 2, 2]], dtype=float))  # fmt: skip
    # [1..5]: S = 10, Var = 5·4·15/18 = 16.667, z = (10 − 1)/√16.667 = 2.2045, p = 0.0275
    assert s[0] == 10 and z[0] == pytest.approx(9 / math.sqrt(50 / 3), abs=1e-12)
    assert p[0] == pytest.approx(0.02749, abs=1e-5)
    assert s[1] == -10 and z[1] == pytest.approx(-z[0])
    # [1,2,2,3,3]: S = 4 + 2 + 2 + 0 = 8; two ties of 2, each 2·1·9 = 18: Var = (300 − 36)/18
    assert s[2] == 8
    assert z[2] == pytest.approx(7 / math.sqrt(264 / 18), abs=1e-12)
    assert s[3] == 0 and z[3] == 0 and p[3] == 1


def flags(pattern: str) -> np.ndarray:
    """'HH.C' → hot flags (H), for readable category cases."""
    return np.array([c == "H" for c in pattern])


@pytest.mark.parametrize(("pattern", "trend", "expected"), [
    ("..........", (0, 1), "none"),
    (".........H", (0, 1), "new"),
    ("......HHHH", (0, 1), "consecutive"),
    ("HHHHHHHHHH", (3.0, 0.001), "intensifying"),
    ("HHHHHHHHHH", (0.5, 0.6), "persistent"),
    ("HHHHHHHHHH", (-3.0, 0.001), "diminishing"),
    ("HHHHHHHHH.", (0, 1), "historical"),
    ("H..H...H.H", (0, 1), "sporadic"),
    ("H.H.......", (0, 1), "sporadic"),
])  # fmt: skip
def test_categories_by_their_definitions(pattern, trend, expected):
    hot = flags(pattern)
    assert category(hot, np.zeros_like(hot), *trend) == expected


def test_a_cold_history_makes_an_on_off_hotspot_oscillating():
    hot, cold = flags("H..H...H.H"), flags("..C.......".replace("C", "H"))
    assert category(hot, cold, 0, 1) == "oscillating"


def plant(conn, lon: float, lat: float, day: date, n: int, cls: str = "0102") -> None:
    """n cases of class `cls` at noon (city time) of a day, at a point."""
    for k in range(n):
        at = datetime.combine(day, datetime.min.time(), CITY) + timedelta(hours=12, minutes=k)
        conn.execute(text(
            "INSERT INTO case_record (code, kind, event_class_code, source, status, reported_at, "
            "geom) VALUES (:code, '事件', :cls, '监督员上报', '已立案', :at, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4490))"),
            {"code": f"T{lon:.4f}{lat:.4f}{day:%m%d}{k}".replace(".", ""), "cls": cls, "at": at,
             "lon": lon, "lat": lat})  # fmt: skip


HEX_CENTRES = text(
    "SELECT ST_X(c) lon, ST_Y(c) lat FROM (SELECT ST_Transform(ST_Centroid(h.geom), 4490) c "
    "FROM admin_area a, ST_HexagonGrid(300, ST_Transform(a.geom, 4548)) h WHERE a.code = '370102' "
    "AND ST_Within(h.geom, ST_Transform(a.geom, 4548))) x"
)


def blocks(conn) -> tuple[list, list]:
    """Two disjoint blocks of 7 hexagon centres (a hexagon and its 6 neighbours) inside 370102."""
    centres = np.array([tuple(r) for r in conn.execute(HEX_CENTRES)])
    first = centres[len(centres) // 3]
    order = np.argsort(np.hypot(*(centres - first).T))
    second = centres[order[len(order) // 2]]
    near = np.argsort(np.hypot(*(centres - second).T))
    return [tuple(c) for c in centres[order[:7]]], [tuple(c) for c in centres[near[:7]]]


def test_a_planted_new_and_historical_hotspot(engine):
    end = date(2026, 3, 29)
    with engine.connect() as conn, conn.begin() as tx:
        rising, fading = blocks(conn)
        for week in range(12):
            day = end - timedelta(days=7 * (11 - week) + 3)
            for lon, lat in fading if week < 11 else []:
                plant(conn, lon, lat, day, 4)
        for lon, lat in rising:
            plant(conn, lon, lat, end - timedelta(days=1), 5)
        body = run_analysis(conn, ADMIN, "emerging", {
            "from": (end - timedelta(days=83)).isoformat(), "to": end.isoformat(),
            "cells": "hex", "size": "300", "area": "370102"})["result"]  # fmt: skip
        tx.rollback()
    by_cell = {f["id"]: f["properties"] for f in body["features"]}
    assert len(body["steps"]) == 12 and body["steps"][-1] == (end - timedelta(days=6)).isoformat()
    cats = [p["category"] for p in by_cell.values()]
    assert cats.count("new") >= 7 and cats.count("historical") >= 7
    assert sum(body["categories"].values()) == body["cells"] > 300
    centre_new = max((p for p in by_cell.values() if p["category"] == "new"),
                     key=lambda p: p["last_count"])  # fmt: skip
    assert centre_new["last_count"] == 5 and centre_new["hot_steps"] == 1


def test_recurring_ranks_places_by_weeks(engine):
    end = date(2026, 3, 29)
    with engine.connect() as conn, conn.begin() as tx:
        (spot, *_), (other, *_) = blocks(conn)
        for week in range(6):  # the same class at one spot in 6 different weeks
            plant(conn, *spot, end - timedelta(days=7 * week + 1), 1)
        for week in range(3):  # three weeks only, but more cases
            plant(conn, *other, end - timedelta(days=7 * week + 2), 3)
        plant(conn, *spot, end - timedelta(days=2), 1, cls="0505")  # another class: its own pair
        body = run_analysis(conn, ADMIN, "recurring", {
            "to": end.isoformat(), "weeks": "8", "min_weeks": "3", "place": "hex", "size": "300",
            "area": "370102"})["result"]  # fmt: skip
        tx.rollback()
    rows = [(r["weeks_with_cases"], r["count"], r["class_code"]) for r in body["rows"]]
    assert rows == [(6, 6, "0102"), (3, 9, "0102")]
    assert len(body["rows"][0]["case_codes"]) == 6
    assert body["rows"][0]["lon"] == pytest.approx(spot[0], abs=1e-6)


def test_api_errors_and_scope(client, role_tokens, demo_engine):
    headers = auth(role_tokens, "operator")
    get = lambda name, **q: client.get(f"/api/analytics/{name}", query_string=q, headers=headers)  # noqa: E731
    for bad in ({"step": "month"}, {"from": "2026-01-01", "to": "2026-01-10"},
                {"status": "完成"}, {"source": "x"}, {"class": "9999"}):  # fmt: skip
        assert get("emerging", **bad).status_code == 400, bad
    for bad in ({"weeks": "1"}, {"weeks": "4", "min_weeks": "6"}, {"place": "road"}):
        assert get("recurring", **bad).status_code == 400, bad
    empty = get("recurring", to="2000-01-01").get_json()["result"]
    assert empty["rows"] == []
    with demo_engine.connect() as conn:
        street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' "
                                   "ORDER BY code LIMIT 1")).scalar()  # fmt: skip
        last = conn.execute(text("SELECT max(reported_at)::date FROM case_record")).scalar()
    mine = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    rows = client.get("/api/analytics/recurring", query_string={"to": last.isoformat(),
                      "min_weeks": "2"}, headers=mine).get_json()["result"]["rows"]  # fmt: skip
    assert rows and all(r["place"].startswith(street) for r in rows)
    other = client.get("/api/analytics/emerging", query_string={"area": "370103"}, headers=mine)
    assert other.status_code == 403
