"""Parking measures, heat and nearest lots on a hand-made town whose figures were worked by hand.

Two streets of 2 × 2 km inside 历下区 (as in test_case_kpis.py). Readings on the city clock
(+08:00) in March 2026; a reading holds until the lot's next one, for at most an hour
(docs/PARKING.md). Every expected number below is written out from those rules, never taken from
the code under test.

P1 (901, 10 spaces, no entry counts): Mon 03-02 08:00 2, 08:15 6, 08:30 9, 08:45 10, 09:00 4;
   nothing on Tue 03-03 (the gap day); Wed 03-04 10:00 5.
   observed 4 × 900 s + 3600 s + 3600 s = 3 h; occupied 900·(2+6+9+10) + 3600·4 + 3600·5 =
   56,700 space-s → utilisation 56,700 / (10 · 10,800) = 0.525; full (≥ 9) 08:30–09:00 = 0.5 h;
   arrivals 4 + 3 + 1 (the rise across the gap is not counted) = 8 → turnover 0.8 (estimated);
   mean occupancy by hour: 08 → 6.75, 09 → 4, 10 → 5, so peak hour 8.
P2 (901, capacity unknown): 08:00 3, 08:30 7 (holds to 09:30) → counted in lots, no rate.
P3 (902, 4 spaces, counts entries): Mon 12:00 4 (entries 5), 12:30 1 (entries 2).
   observed 1800 + 3600 s; occupied 4·1800 + 1·3600 = 10,800 → 10,800 / (4 · 5400) = 0.5;
   full (≥ 3.6) 0.5 h; vehicles 7 → turnover 1.75 (entries); hour 12 mean 2.5, hour 13 mean 1.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, box
from sqlalchemy import text

from analytics import parking
from auth import accounts
from auth.accounts import User
from auth.roles import ROLES
from geodata.db import make_engine

TO_GEO = Transformer.from_crs(4548, 4490, always_xy=True)
OX, OY = 501168.0, 4056492.0  # inside 历下区 (370102)
STREETS = {"370102901": box(0, 0, 2000, 2000), "370102902": box(2000, 0, 4000, 2000),
           "370102903": box(4000, 0, 6000, 2000)}  # fmt: skip
LOTS = [  # code, place (town metres), capacity
    ("P1", (500, 500), 10), ("P2", (1500, 500), None), ("P3", (2500, 500), 4),
    ("NA", (4100, 1310), 20), ("NB", (4500, 1010), 20),
]  # fmt: skip
READINGS = [  # lot, time (city clock), occupied, entries
    ("P1", "03-02 08:00", 2, None), ("P1", "03-02 08:15", 6, None), ("P1", "03-02 08:30", 9, None),
    ("P1", "03-02 08:45", 10, None), ("P1", "03-02 09:00", 4, None), ("P1", "03-04 10:00", 5, None),
    ("P2", "03-02 08:00", 3, None), ("P2", "03-02 08:30", 7, None),
    ("P3", "03-02 12:00", 4, 5), ("P3", "03-02 12:30", 1, 2),
    ("NA", "03-01 12:00", 5, None), ("NB", "03-01 12:00", 5, None),
]  # fmt: skip
# The toy network in street 903: R1 along y = 1000 from x 4100 to 4700, R2 up from its east end,
# R3 back west along y = 1300 to x 4100. NA sits 10 m from R3, NB 10 m from R1; the origin 10 m from R1.
ROADS = [LineString([(4100, 1000), (4700, 1000)]), LineString([(4700, 1000), (4700, 1300)]),
         LineString([(4700, 1300), (4100, 1300)])]  # fmt: skip
ORIGIN = (4100, 990)
WINDOW = {"from": "2026-03-02", "to": "2026-03-04"}


def geo(geom):
    """Town metres (EPSG:4548 around OX, OY) to stored EPSG:4490 lon/lat."""
    return shapely.transform(geom, lambda xy: np.column_stack(
        TO_GEO.transform(xy[:, 0] + OX, xy[:, 1] + OY)))  # fmt: skip


def ewkt(geom) -> str:
    """Town geometry as EWKT in EPSG:4490."""
    return f"SRID=4490;{geo(geom).wkt}"


@pytest.fixture(scope="module")
def town(scratch):
    """A scratch city with three streets, five lots, their readings, roads and users."""
    url = scratch.create_city("onemap_parking")
    engine = make_engine(url)
    with engine.begin() as conn:
        for code, g in STREETS.items():
            conn.execute(text("INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
                              "(:c, 'street', :n, '370102', ST_GeomFromEWKT(:g))"),
                         {"c": code, "n": f"测试街道{code[-1]}",
                          "g": ewkt(shapely.MultiPolygon([g]))})  # fmt: skip
        for code, xy, cap in LOTS:
            conn.execute(text("INSERT INTO parking_lot (code, name, capacity, lot_type, fee, "
                              "fee_per_hour, geom) VALUES (:c, :n, :cap, '路外', '2元/小时', 2, "
                              "ST_GeomFromEWKT(:g))"),
                         {"c": code, "n": f"停车场{code}", "cap": cap, "g": ewkt(Point(xy))})  # fmt: skip
        for code, at, occupied, entries in READINGS:
            conn.execute(text("INSERT INTO parking_occupancy (lot_id, observed_at, occupied, entries) "
                              "SELECT id, :t, :o, :e FROM parking_lot WHERE code = :c"),
                         {"c": code, "t": f"2026-{at}:00+08", "o": occupied, "e": entries})  # fmt: skip
        for line in ROADS:
            conn.execute(text("INSERT INTO road (name, road_class, geom) VALUES ('测试路', :k, "
                              "ST_Multi(ST_GeomFromEWKT(:g)))"),
                         {"k": "支路", "g": ewkt(line)})  # fmt: skip
        tokens = {}
        for role in ("leader", "district", "kiosk"):
            areas = ["370102902"] if role == "district" else []
            accounts.add_user(conn, f"pk_{role}", role, "parking-pass-1", areas=areas)
            tokens[role] = accounts.create_token(conn, f"pk_{role}", "t", 1)[1]
    from app import create_app
    from settings import Settings

    client = create_app(Settings(DATABASE_URL=url)).server.test_client()
    yield {"engine": engine, "client": client, "tokens": tokens}
    engine.dispose()


def get(town, path: str, role: str = "leader", **params):
    """GET a path of the town's app as a role."""
    headers = {"Authorization": f"Bearer {town['tokens'][role]}"}
    return town["client"].get(path, query_string=params, headers=headers)


def ok(town, path: str, role: str = "leader", **params) -> dict:
    """The JSON of a successful request."""
    resp = get(town, path, role, **params)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def measured(town, role: str = "leader", **params) -> dict:
    """The result of /api/analytics/parking over the window."""
    return ok(town, "/api/analytics/parking", role, **{**WINDOW, **params})["result"]


def test_lot_measures_are_the_hand_computed_ones(town):
    rows = {r["code"]: r for r in measured(town)["rows"]}
    p1, p3 = rows["P1"], rows["P3"]
    assert p1["utilisation"] == pytest.approx(0.525)
    assert p1["hours_full"] == pytest.approx(0.5)
    assert (p1["vehicles"], p1["turnover"], p1["turnover_source"]) == (8, 0.8, "estimated")
    assert (p1["peak_hour"], p1["peak_occupied"]) == (8, 10)
    assert p1["observed_hours"] == pytest.approx(3.0)
    assert p1["coverage"] == pytest.approx(round(3 / 72, 4))
    assert p1["occupied_now"] == 5 and p1["observed_at"].startswith("2026-03-04T02:00:00")
    assert p1["occupancy_now"] == pytest.approx(0.5)
    assert p3["utilisation"] == pytest.approx(0.5)
    assert p3["hours_full"] == pytest.approx(0.5)
    assert (p3["vehicles"], p3["turnover"], p3["turnover_source"]) == (7, 1.75, "entries")
    assert p3["peak_hour"] == 12


def test_unknown_capacity_is_counted_but_has_no_rate(town):
    body = measured(town)
    p2 = next(r for r in body["rows"] if r["code"] == "P2")
    assert p2["capacity"] is None
    for key in ("utilisation", "turnover", "hours_full", "occupancy_now"):
        assert p2[key] is None, key
    assert p2["vehicles"] == 4 and p2["peak_hour"] == 9  # 08 → (3+7)/2 = 5, 09 → 7
    totals = body["totals"]
    assert (totals["lots"], totals["lots_unknown_capacity"], totals["capacity"]) == (5, 1, 54)


def test_area_totals_and_profile(town):
    body = measured(town, area="370102")
    assert [r["code"] for r in body["rows"]] == ["NA", "NB", "P1", "P2", "P3"]
    body = measured(town, area="370102901")
    assert [r["code"] for r in body["rows"]] == ["P1", "P2"]
    t = measured(town, area="370102902")["totals"]
    assert (t["lots"], t["capacity"], t["utilisation"], t["turnover"]) == (1, 4, 0.5, 1.75)
    both = measured(town, polygon=shapely.to_geojson(geo(box(0, 0, 4000, 2000))))
    t = both["totals"]
    assert [r["code"] for r in both["rows"]] == ["P1", "P2", "P3"]
    assert t["utilisation"] == pytest.approx(round(67_500 / 129_600, 4))  # (56,700 + 10,800) / …
    assert (t["vehicles"], t["turnover"], t["turnover_source"]) == (15, round(15 / 14, 3), "mixed")
    assert t["hours_full"] == pytest.approx(1.0) and t["peak_hour"] == 8  # 0.675 vs 0.625 at 12
    assert (t["occupied_now"], t["occupancy_now"]) == (6, round(6 / 14, 4))
    profile = both["profile"]
    assert profile[0][8] == pytest.approx(0.675)  # Monday 08: 24,300 / (10 · 3600)
    assert profile[0][12] == pytest.approx(0.625)  # Monday 12: 9,000 / (4 · 3600)
    assert profile[1] == [None] * 24  # Tuesday: the gap day, unobserved, not zero
    assert profile[2][10] == pytest.approx(0.5)


def test_a_gap_is_unobserved_time_not_an_empty_lot(town):
    gap = measured(town, **{"from": "2026-03-03", "to": "2026-03-03"})
    p1 = next(r for r in gap["rows"] if r["code"] == "P1")
    assert (p1["utilisation"], p1["observed_hours"], p1["turnover"]) == (None, 0, None)
    assert p1["occupied_now"] == 4  # the last reading before the end of the 3rd


def test_a_late_correction_updates_the_rollup(town):
    with town["engine"].begin() as conn:
        conn.execute(
            text(
                "UPDATE parking_occupancy SET occupied = 1 WHERE observed_at = "
                "'2026-03-02 12:30+08'"
            )
        )  # unchanged: P3 already 1; P2 has none
        conn.execute(text("UPDATE parking_occupancy o SET occupied = 8 FROM parking_lot l "
                          "WHERE l.id = o.lot_id AND l.code = 'P1' "
                          "AND o.observed_at = '2026-03-04 10:00+08'"))  # fmt: skip
    try:
        p1 = next(r for r in measured(town)["rows"] if r["code"] == "P1")
        assert p1["utilisation"] == pytest.approx((24_300 + 14_400 + 28_800) / 108_000)
    finally:
        with town["engine"].begin() as conn:
            conn.execute(text("UPDATE parking_occupancy o SET occupied = 5 FROM parking_lot l "
                              "WHERE l.id = o.lot_id AND l.code = 'P1' "
                              "AND o.observed_at = '2026-03-04 10:00+08'"))  # fmt: skip


def test_district_user_sees_only_their_lots(town):
    body = measured(town, role="district")
    assert [r["code"] for r in body["rows"]] == ["P3"]
    assert get(town, "/api/analytics/parking", "district", area="370102901").status_code == 403
    heat = ok(town, "/api/analytics/parking/heat", "district", at="2026-03-02T08:40:00+08:00")
    assert heat["result"]["points"] == []
    near = ok(town, "/api/parking/nearest", "district", lon=geo(Point(500, 520)).x,
              lat=geo(Point(500, 520)).y, n=5)  # fmt: skip
    assert [x["code"] for x in near["lots"]] == ["P3"]


def test_heat_at_moments(town):
    def at(moment: str) -> dict:
        return ok(town, "/api/analytics/parking/heat", at=moment)["result"]

    morning = at("2026-03-02T08:40:00+08:00")  # P1 at 9 of 10; P2 unknown; P3 not yet read
    assert [p[2:] for p in morning["points"]] == [[0.9, 9, 10]]
    assert (morning["lots"], morning["lots_unknown_capacity"]) == (5, 1)
    noon = at("2026-03-02 12:10")  # city clock; P1's 09:00 reading is too old by then
    assert [p[2:] for p in noon["points"]] == [[1.0, 4, 4]]
    assert at("2026-03-03T12:00:00+08:00")["points"] == []  # the gap day


def test_heat_payload_is_bounded(town):
    with town["engine"].connect() as conn, conn.begin() as tx:
        conn.execute(text(
            "INSERT INTO parking_lot (code, name, capacity, lot_type, geom) "
            "SELECT 'H' || i, 'h', 10, '路外', ST_SetSRID(ST_MakePoint(116.9 + (i % 100) * 0.003, "
            "36.6 + (i / 100) * 0.003), 4490) FROM generate_series(0, 9999) i"))  # fmt: skip
        conn.execute(text(
            "INSERT INTO parking_occupancy (lot_id, observed_at, occupied) SELECT id, "
            "'2026-03-05 08:00+08', 5 FROM parking_lot WHERE code LIKE 'H%'"))  # fmt: skip
        admin = User(0, "admin", ROLES["admin"], ())
        body = parking.heat(conn, {"at": "2026-03-05T08:30:00+08:00", "area": None,
                                   "polygon": None}, admin)  # fmt: skip
        tx.rollback()
    assert 0 < len(body["points"]) <= parking.GRID**2
    assert body["lots_with_reading"] == 10_000 and body["capacity"] == 100_000
    assert body["occupied"] == 50_000


def test_nearest_along_the_toy_network(town):
    o = geo(Point(ORIGIN))
    body = ok(town, "/api/parking/nearest", lon=o.x, lat=o.y, n=2)
    assert [x["code"] for x in body["lots"]] == ["NB", "NA"]  # NA is nearer in a straight line
    nb, na = body["lots"]
    assert body["method"] == "network"
    assert nb["distance_m"] == pytest.approx(10 + 400 + 10, abs=1.0)
    assert na["distance_m"] == pytest.approx(10 + 600 + 300 + 600 + 10, abs=1.0)
    assert na["straight_m"] == pytest.approx(320, abs=1.0)
    assert (na["free"], na["capacity"], na["fee"]) == (15, 20, "2元/小时")
    three = ok(town, "/api/parking/nearest", lon=o.x, lat=o.y, n=3)
    p3 = three["lots"][2]  # off the network: by straight line, 1600 m east and 490 m south
    assert (p3["code"], p3["method"], three["method"]) == ("P3", "straight", "mixed")
    assert p3["distance_m"] == pytest.approx(np.hypot(1600, 490), abs=1.0)


def test_nearest_in_a_straight_line_without_roads(town):
    o = geo(Point(500, 520))
    body = ok(town, "/api/parking/nearest", lon=o.x, lat=o.y, n=2)
    assert body["method"] == "straight"
    assert [x["code"] for x in body["lots"]] == ["P1", "P3"]  # P2: capacity unknown
    assert body["lots"][0]["distance_m"] == pytest.approx(20, abs=0.5)
    assert body["lots"][1]["distance_m"] == pytest.approx(np.hypot(2000, 20), abs=1.0)
    assert body["lots"][0]["free"] == 5


@pytest.mark.parametrize(("path", "params"), [
    ("/api/analytics/parking", {"from": "2026-03-05", "to": "2026-03-01"}),
    ("/api/analytics/parking", {"from": "2025-01-01", "to": "2026-03-01"}),
    ("/api/analytics/parking", {"from": "yesterday"}),
    ("/api/analytics/parking", {"area": "12"}),
    ("/api/analytics/parking", {"polygon": "{not json"}),
    ("/api/analytics/parking", {"area": "370102", "polygon": shapely.to_geojson(box(117, 36, 117.1, 36.1))}),
    ("/api/analytics/parking", {"lot": "1"}),
    ("/api/analytics/parking/heat", {}),
    ("/api/analytics/parking/heat", {"at": "noon"}),
    ("/api/analytics/parking/heat", {"at": "3026-01-01T00:00:00"}),
    ("/api/parking/nearest", {"lon": "x", "lat": "36"}),
    ("/api/parking/nearest", {"lon": "117"}),
    ("/api/parking/nearest", {"lon": "117", "lat": "36.6", "n": "0"}),
    ("/api/parking/nearest", {"lon": "117", "lat": "36.6", "n": "21"}),
    ("/api/parking/nearest", {"lon": "117", "lat": "36.6", "at": "soon"}),
    ("/api/analytics/parking-shortage", {"cells": "grid"}),
    ("/api/analytics/parking-shortage", {"cells": "hex", "size": "10"}),
    ("/api/analytics/parking-shortage", {"cells": "hex", "size": "50"}),  # too many hexagons
    ("/api/analytics/parking-shortage", {"top": "0"}),
    ("/api/analytics/parking-shortage", {"from": "2026-03-05", "to": "2026-03-01"}),
    ("/api/analytics/parking-shortage", {"area": "370102", "polygon": shapely.to_geojson(box(117, 36, 117.1, 36.1))}),
])  # fmt: skip
def test_bad_parameters_are_400_in_chinese(town, path, params):
    resp = get(town, path, **params)
    assert resp.status_code == 400, resp.get_json()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in resp.get_json()["error"])


def test_kiosk_may_not_run_parking_analyses(town):
    assert get(town, "/api/analytics/parking", "kiosk", **WINDOW).status_code == 403
    assert get(town, "/api/analytics/parking/heat", "kiosk", at="2026-03-02").status_code == 403
    assert get(town, "/api/analytics/parking-shortage", "kiosk", **WINDOW).status_code == 403


def test_csv_export_has_chinese_headers(town):
    resp = get(town, "/api/analytics/parking/export.csv", **WINDOW)
    assert resp.status_code == 200
    header = resp.get_data(as_text=True).lstrip("\ufeff").splitlines()[0]
    assert "利用率" in header and "周转率" in header


def test_shortage_export_has_chinese_headers(town):
    resp = get(town, "/api/analytics/parking-shortage/export.csv", cells="hex", size="1000",
               area="370102901", **WINDOW)  # fmt: skip
    assert resp.status_code == 200
    header = resp.get_data(as_text=True).lstrip("\ufeff").splitlines()[0]
    assert "网格编号" in header and "紧张小时数(≥90%)" in header and "供给泊位数" in header


# 停车缺口 on four unit grids of street 901, in a transaction rolled back afterwards. Window
# 03-10 – 03-11 (city clock); every figure below worked by hand from the rules of docs/PARKING.md.
# G1 (S1 10, S2 10, SU unknown): 03-10 08h S1 9 + S2 10 = 19 of 20 (0.95); 09h 10 + 9 = 19 (0.95);
#   10h 5 + 2 = 7 (0.35); 03-11 08h S1 (10·½ + 8·½) = 9 + S2 10 = 19 (0.95); 09h S1 8 for half the
#   hour, S2 unobserved: 14,400 / (10 · 1,800) = 0.8, demand 8. SU's 50 counts nowhere.
#   → 5 hours observed, 3 short, peak 19 first at 03-10 08:00, shortage 19 − 0.9 · 20 = 1.
# G2 (B1 20): 03-11 18h 18 of 20 = exactly 0.9 → short (≥); shortage 18 − 18 = 0.
# G3 (O1 20): 03-10 12h 10 (0.5), 13h 4 (0.2); the 20 of 03-12 is outside the window. Not short.
# G4: no lot, not listed. P1 and P2 (street 901, outside every grid) are counted outside cells.
SHORT_GRIDS = [box(0, 1200, 400, 1800), box(400, 1200, 800, 1800), box(800, 1200, 1200, 1800),
               box(1200, 1200, 1600, 1800)]  # fmt: skip
SHORT_LOTS = [("S1", (100, 1400), 10), ("S2", (200, 1600), 10), ("SU", (300, 1500), None),
              ("B1", (600, 1500), 20), ("O1", (1000, 1500), 20)]  # fmt: skip
SHORT_READINGS = [
    ("S1", "03-10 08:00", 9), ("S1", "03-10 09:00", 10), ("S1", "03-10 10:00", 5),
    ("S1", "03-11 08:00", 10), ("S1", "03-11 08:30", 8),
    ("S2", "03-10 08:00", 10), ("S2", "03-10 09:00", 9), ("S2", "03-10 10:00", 2),
    ("S2", "03-11 08:00", 10), ("SU", "03-10 08:00", 50), ("B1", "03-11 18:00", 18),
    ("O1", "03-10 12:00", 10), ("O1", "03-10 13:00", 4), ("O1", "03-12 08:00", 20),
]  # fmt: skip
SHORT_PARAMS = {"from": "2026-03-10", "to": "2026-03-11", "cells": "unit_grid", "size": 500,
                "area": "370102901", "polygon": None, "top": 100}  # fmt: skip


def add_shortage_town(conn) -> None:
    """The community, its four unit grids, five lots and their readings of SHORT_*."""
    conn.execute(text("INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
                      "('370102901001', 'community', '测试社区', '370102901', ST_GeomFromEWKT(:g))"),
                 {"g": ewkt(shapely.MultiPolygon([box(0, 1200, 1600, 1800)]))})  # fmt: skip
    for i, g in enumerate(SHORT_GRIDS, 1):
        conn.execute(text("INSERT INTO unit_grid (code, community_code, geom) VALUES "
                          "(:c, '370102901001', ST_GeomFromEWKT(:g))"),
                     {"c": f"370102901001{i:03d}", "g": ewkt(shapely.MultiPolygon([g]))})  # fmt: skip
    for code, xy, cap in SHORT_LOTS:
        conn.execute(text("INSERT INTO parking_lot (code, name, capacity, lot_type, geom) VALUES "
                          "(:c, :c, :cap, '路外', ST_GeomFromEWKT(:g))"),
                     {"c": code, "cap": cap, "g": ewkt(Point(xy))})  # fmt: skip
    conn.execute(text("INSERT INTO parking_occupancy (lot_id, observed_at, occupied) "
                      "SELECT l.id, CAST(r.t AS timestamptz), r.o FROM unnest(CAST(:c AS text[]), "
                      "CAST(:t AS text[]), CAST(:o AS int[])) r(c, t, o) "
                      "JOIN parking_lot l ON l.code = r.c"),
                 {"c": [r[0] for r in SHORT_READINGS],
                  "t": [f"2026-{r[1]}:00+08" for r in SHORT_READINGS],
                  "o": [r[2] for r in SHORT_READINGS]})  # fmt: skip


def test_shortage_ranks_cells_by_hours_at_90_percent(town):
    leader = User(0, "leader", ROLES["leader"], ())
    district = User(0, "district", ROLES["district"], ("370102902",))
    with town["engine"].connect() as conn, conn.begin() as tx:
        add_shortage_town(conn)
        body = parking.shortage(conn, SHORT_PARAMS, leader)
        top2 = parking.shortage(conn, {**SHORT_PARAMS, "top": 2}, leader)
        theirs = parking.shortage(conn, {**SHORT_PARAMS, "area": None}, district)
        tx.rollback()
    rows = body["rows"]
    assert [r["cell_id"] for r in rows] == ["370102901001001", "370102901001002",
                                            "370102901001003"]  # fmt: skip
    g1, g2, g3 = rows
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert (g1["lots"], g1["lots_unknown_capacity"], g1["supply"]) == (3, 1, 20)
    assert (g1["hours_observed"], g1["hours_short"], g1["short_share"]) == (5, 3, 0.6)
    assert (g1["demand"], g1["ratio"], g1["shortage"]) == (19, 0.95, 1.0)
    assert g1["peak_at"] == "2026-03-10T08:00:00+08:00"
    assert (g2["lots"], g2["supply"], g2["hours_observed"], g2["hours_short"]) == (1, 20, 1, 1)
    assert (g2["demand"], g2["ratio"], g2["shortage"]) == (18, 0.9, 0.0)
    assert g2["peak_at"] == "2026-03-11T18:00:00+08:00"
    assert (g3["hours_observed"], g3["hours_short"], g3["demand"], g3["ratio"]) == (2, 0, 10, 0.5)
    assert (g3["shortage"], g3["peak_at"]) == (-8.0, "2026-03-10T12:00:00+08:00")
    centre = TO_GEO.transform(OX + 200, OY + 1500)
    assert (g1["lon"], g1["lat"]) == pytest.approx(centre, abs=1e-5)
    assert body["totals"] == {"cells": 3, "cells_short": 2, "lots": 7, "lots_unknown_capacity": 2,
                              "lots_outside_cells": 2, "supply": 60, "hours_short": 4}  # fmt: skip
    assert [r["cell_id"] for r in top2["rows"]] == [r["cell_id"] for r in rows[:2]]
    assert top2["totals"]["cells"] == 3
    assert theirs["rows"] == [] and theirs["totals"]["lots"] == 1  # P3 only, in no unit grid


def shortage_of(town, role: str = "leader", **params) -> dict:
    """The result of /api/analytics/parking-shortage over the window, on 1 km hexagons."""
    query = {**WINDOW, "cells": "hex", "size": "1000", **params}
    return ok(town, "/api/analytics/parking-shortage", role, **query)["result"]


def test_shortage_over_the_api_on_hexagons(town):
    body = shortage_of(town, area="370102901")  # P1 (10 spaces) and P2 (unknown)
    assert (body["totals"]["lots"], body["totals"]["lots_unknown_capacity"]) == (2, 1)
    assert (body["totals"]["supply"], body["totals"]["lots_outside_cells"]) == (10, 0)
    p1 = next(r for r in body["rows"] if r["supply"] == 10)
    # Mon 08h mean 6.75 (0.675), Mon 09h 4, Wed 10h 5: three hours observed, none at 90 %
    assert (p1["demand"], p1["ratio"], p1["shortage"]) == (6.75, 0.675, -2.25)
    assert (p1["hours_observed"], p1["hours_short"]) == (3, 0)
    assert p1["peak_at"] == "2026-03-02T08:00:00+08:00"
    mine = shortage_of(town, "district")  # street 902: P3, 4 spaces
    assert [(r["supply"], r["demand"], r["ratio"], r["hours_observed"]) for r in mine["rows"]] == [
        (4, 2.5, 0.625, 2)
    ]  # 12h: (4·½ + 1·½) = 2.5; 13h: 1 for half an hour (0.25)
    assert mine["rows"][0]["peak_at"] == "2026-03-02T12:00:00+08:00"
    resp = get(town, "/api/analytics/parking-shortage", "district", area="370102901")
    assert resp.status_code == 403


def test_daily_rollup_is_the_sum_of_the_hourly_one(town):
    """parking_daily per lot and city-clock day = its hourly rows summed, hour by hour (Python)."""
    with town["engine"].connect() as conn:
        hourly = conn.execute(text("SELECT lot_id, hour, observed_s, occupied_s, full_s, "
                                   "max_occupied, arrivals, readings, counted "
                                   "FROM parking_hourly")).all()  # fmt: skip
        daily = {(r.lot_id, r.day): r for r in conn.execute(text("SELECT * FROM parking_daily"))}
    expected: dict = {}
    for h in hourly:
        local = h.hour.astimezone(parking.city_zone())
        e = expected.setdefault((h.lot_id, local.date()), {"occ": [0.0] * 24, "obs": [0.0] * 24,
                                                            "sums": np.zeros(6), "max": None})  # fmt: skip
        e["occ"][local.hour] += h.occupied_s
        e["obs"][local.hour] += h.observed_s
        e["sums"] += [h.observed_s, h.occupied_s, h.full_s, h.arrivals, h.readings, h.counted]
        if h.max_occupied is not None:
            e["max"] = max(e["max"] or 0, h.max_occupied)
    assert set(daily) == set(expected) and len(daily) >= 4
    for key, e in expected.items():
        d = daily[key]
        assert (d.occupied_by_hour, d.observed_by_hour) == (e["occ"], e["obs"]), key
        assert [d.observed_s, d.occupied_s, d.full_s, d.arrivals, d.readings, d.counted] == list(
            e["sums"]
        ), key
        assert d.max_occupied == e["max"], key


def test_default_window_ends_on_the_day_of_the_newest_reading(town):
    """A reading at 23:30 holds past midnight; the default 7 days still end on its own day."""
    with town["engine"].connect() as conn, conn.begin() as tx:
        conn.execute(text("INSERT INTO parking_occupancy (lot_id, observed_at, occupied) "
                          "SELECT id, '2026-03-20 23:30+08', 3 FROM parking_lot WHERE code = 'P1'"))  # fmt: skip
        spill = conn.execute(text("SELECT max(hour) FROM parking_hourly")).scalar()
        days = parking.window(conn, {"from": None, "to": None})
        tx.rollback()
    assert spill.astimezone(parking.city_zone()).date().isoformat() == "2026-03-21"
    assert [d.isoformat() for d in days] == ["2026-03-14", "2026-03-20"]
