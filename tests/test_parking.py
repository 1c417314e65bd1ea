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
])  # fmt: skip
def test_bad_parameters_are_400_in_chinese(town, path, params):
    resp = get(town, path, **params)
    assert resp.status_code == 400, resp.get_json()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in resp.get_json()["error"])


def test_kiosk_may_not_run_parking_analyses(town):
    assert get(town, "/api/analytics/parking", "kiosk", **WINDOW).status_code == 403
    assert get(town, "/api/analytics/parking/heat", "kiosk", at="2026-03-02").status_code == 403


def test_csv_export_has_chinese_headers(town):
    resp = get(town, "/api/analytics/parking/export.csv", **WINDOW)
    assert resp.status_code == 200
    header = resp.get_data(as_text=True).lstrip("\ufeff").splitlines()[0]
    assert "利用率" in header and "周转率" in header
