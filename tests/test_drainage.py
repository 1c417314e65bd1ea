"""Drainage analyses (issue #14) on a hand-made network with a loop, a branch and a disconnected
piece: traces, catchment, data-quality checks, every risk factor alone, errors and scope.

Expected values are listed by hand from the drawing below, or measured with pyproj's geodesic
(Geod), never taken from the code under test.

    B1 (400, 400)                                 y ↑   (metres from the base point)
     │ 300 mm
    B2 (400, 200)   reverse slope B2→W3
     │ 300 mm
    W1 ──300── W2 ──400── W3 ──600── W4 ──400── W5 ● outfall O (800, 10)
    (0,0)      (200,0)    ↑                      (800,0)
               ↑ L1→W2
    L1 (200, −200) → L2 (0, −300) → L3 (200, −400) → L1        (a loop)
    D1 (0, −1200) → D2 (200, −1200) → D3 (400, −1200)             (no outfall)
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod
from sqlalchemy import text

from analytics.contract import run_analysis
from analytics.drainage import RISK_FACTORS, factor_score, loops
from auth.accounts import User
from auth.roles import ROLES
from errors import BadRequest, Forbidden, NotFound
from tests.conftest import auth, district_token

ADMIN = User(0, "test", ROLES["admin"], ())
STREET = "370102901"
COMMUNITY = "370102901001"
DISTRICT_USER = User(0, "street", ROLES["district"], (STREET,))
GEOD = Geod(ellps="GRS80")
CITY = ZoneInfo("Asia/Shanghai")
WEIGHT = {f.key: f.weight for f in RISK_FACTORS}

WELLS = {"W1": (0, 0), "W2": (200, 0), "W3": (400, 0), "W4": (600, 0), "W5": (800, 0),
         "B1": (400, 400), "B2": (400, 200), "L1": (200, -200), "L2": (0, -300),
         "L3": (200, -400), "D1": (0, -1200), "D2": (200, -1200), "D3": (400, -1200)}  # fmt: skip
PIPES = {  # code: (from, to, diameter, start invert, end invert)
    "P-W1W2": ("W1", "W2", 300, 50.0, 49.6), "P-W2W3": ("W2", "W3", 400, 49.5, 49.1),
    "P-W3W4": ("W3", "W4", 600, 49.0, 48.6), "P-W4W5": ("W4", "W5", 400, 48.5, 48.1),
    "P-B1B2": ("B1", "B2", 300, 49.0, 48.6), "P-B2W3": ("B2", "W3", 300, 48.5, 48.8),
    "P-L1L2": ("L1", "L2", 300, 50.0, 49.8), "P-L2L3": ("L2", "L3", 300, 49.8, 49.6),
    "P-L3L1": ("L3", "L1", 300, 49.6, 49.4), "P-L1W2": ("L1", "W2", 300, 49.9, 49.6),
    "P-D1D2": ("D1", "D2", 300, 50.0, 49.6), "P-D2D3": ("D2", "D3", 300, 49.6, 49.2),
}  # fmt: skip


class Place:
    """Metres east/north of a base point in 370102, as lon/lat (a local approximation is enough:
    every expected length is measured on the ellipsoid from the lon/lat themselves)."""

    def __init__(self, lon: float, lat: float):
        self.lon, self.lat = lon, lat

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        """The lon/lat of (x, y) metres from the base."""
        return (self.lon + x / (111320.0 * math.cos(math.radians(self.lat))),
                self.lat + y / 110950.0)  # fmt: skip


def point(lonlat) -> str:
    """EWKT of a point."""
    return f"SRID=4490;POINT({lonlat[0]} {lonlat[1]})"


def rect(place: Place, x0: float, y0: float, x1: float, y1: float) -> str:
    """EWKT of a rectangle (multipolygon) from (x0, y0) to (x1, y1) metres."""
    corners = [place(x0, y0), place(x1, y0), place(x1, y1), place(x0, y1), place(x0, y0)]
    ring = ", ".join(f"{lon} {lat}" for lon, lat in corners)
    return f"SRID=4490;MULTIPOLYGON((({ring})))"


def square(place: Place, x: float, y: float, half: float) -> str:
    """EWKT of a square centred at (x, y) metres."""
    return rect(place, x - half, y - half, x + half, y + half)


def add_well(conn, place, code, x, y, kind="雨水") -> None:
    """A well at (x, y) metres."""
    conn.execute(text("INSERT INTO drain_well (code, kind, pipe_kind, invert_level_m, geom) "
                      "VALUES (:c, '检查井', :k, 48.0, ST_GeomFromEWKT(:g))"),
                 {"c": code, "k": kind, "g": point(place(x, y))})  # fmt: skip


def add_pipe(conn, place, code, a, b, wells, diameter=300, inverts=(50.0, 49.0), year=2000,
             material="HDPE") -> None:  # fmt: skip
    """A straight pipe from well a to well b."""
    (x1, y1), (x2, y2) = wells[a], wells[b]
    (lon1, lat1), (lon2, lat2) = place(x1, y1), place(x2, y2)
    conn.execute(text(
        "INSERT INTO drain_pipe (code, kind, diameter_mm, material, start_invert_m, end_invert_m, "
        "from_well, to_well, build_year, geom) VALUES (:c, '雨水', :d, :m, :s, :e, :a, :b, :y, "
        "ST_GeomFromEWKT(:g))"),
        {"c": code, "d": diameter, "m": material, "s": inverts[0], "e": inverts[1], "a": a,
         "b": b, "y": year, "g": f"SRID=4490;LINESTRING({lon1} {lat1}, {lon2} {lat2})"})  # fmt: skip


def length(place, wells, a, b) -> float:
    """Geodesic metres between two wells (pyproj)."""
    (lon1, lat1), (lon2, lat2) = place(*wells[a]), place(*wells[b])
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


@pytest.fixture
def town(engine):
    """The hand-made network, parcels, grids and a street, in a transaction rolled back after."""
    with engine.connect() as conn, conn.begin() as tx:
        lon, lat = conn.execute(text(
            "SELECT ST_X(c.center), ST_Y(c.center) FROM admin_area a, "
            "ST_MaximumInscribedCircle(a.geom) c WHERE a.code = '370102'")).one()  # fmt: skip
        place = Place(lon, lat)
        for code, (x, y) in WELLS.items():
            add_well(conn, place, code, x, y)
        add_well(conn, place, "S1", 5, 30, kind="污水")  # a sewage well: no rain parcel drains in
        for code, (a, b, d, s, e) in PIPES.items():
            add_pipe(conn, place, code, a, b, WELLS, d, (s, e))
        conn.execute(text("INSERT INTO drain_outfall (code, kind, geom) VALUES ('O1', '雨水', "
                          "ST_GeomFromEWKT(:g))"), {"g": point(place(800, 10))})  # fmt: skip
        conn.execute(text(
            "INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
            "(:s, 'street', '测试街道', '370102', ST_GeomFromEWKT(:sg)), "
            "(:c, 'community', '测试社区', :s, ST_GeomFromEWKT(:sg))"),
            {"s": STREET, "c": COMMUNITY, "sg": rect(place, -100, -150, 350, 100)})  # fmt: skip
        parcels = {"PA": (0, 30, 120), "PB": (600, 30, 50), "PC": (400, 1200, 70),
                   "PD": (0, -1170, 10)}  # near W1, near W4, far from all, near D1  # fmt: skip
        for code, (x, y, people) in parcels.items():
            conn.execute(text("INSERT INTO land_parcel (code, land_use, population, geom) VALUES "
                              "(:c, 'R2', :p, ST_GeomFromEWKT(:g))"),
                         {"c": code, "p": people, "g": square(place, x, y, 10)})  # fmt: skip
        for seq, (x, y) in {"001": (430, 400), "002": (800, -40)}.items():  # near B1, near W5
            conn.execute(text("INSERT INTO unit_grid (code, community_code, geom) VALUES "
                              "(:c, :m, ST_GeomFromEWKT(:g))"),
                         {"c": COMMUNITY + seq, "m": COMMUNITY, "g": square(place, x, y, 15)})  # fmt: skip
        yield conn, place
        tx.rollback()


def trace(conn, start, direction="down", user=ADMIN) -> dict:
    """The drain-trace result."""
    return run_analysis(conn, user, "drain-trace", {"from": start, "direction": direction})[
        "result"
    ]


def pipe_codes(body) -> set[str]:
    """The codes of the pipe features."""
    return {
        f["properties"]["code"] for f in body["features"] if f["properties"]["object"] == "pipe"
    }


def well_codes(body) -> set[str]:
    """The codes of the well features."""
    return {
        f["properties"]["code"] for f in body["features"] if f["properties"]["object"] == "well"
    }


def test_downstream_trace_reaches_the_outfall_with_lengths(town):
    conn, place = town
    body = trace(conn, "W1")
    main = ["W1", "W2", "W3", "W4", "W5"]
    assert pipe_codes(body) == {"P-W1W2", "P-W2W3", "P-W3W4", "P-W4W5"}
    assert well_codes(body) == set(main)
    total = sum(length(place, WELLS, a, b) for a, b in itertools.pairwise(main))
    s = body["summary"]
    assert s["length_m"] == pytest.approx(total, abs=0.2)
    assert s["max_distance_m"] == pytest.approx(total, abs=0.2)
    assert s["reached_outfall"] and s["outfalls"] == ["O1"] and s["end_wells"] == ["W5"]
    assert s["loops"] == [] and s["ends_without_outfall"] == []
    w5 = next(f for f in body["features"] if f["properties"]["code"] == "W5")["properties"]
    assert w5["outfall"] == "O1" and w5["end"] and w5["distance_m"] == pytest.approx(total, abs=0.2)
    outfall = [f for f in body["features"] if f["properties"]["object"] == "outfall"]
    assert [f["properties"]["code"] for f in outfall] == ["O1"]


def test_a_loop_ends_the_walk_and_is_reported(town):
    conn, _ = town
    body = trace(conn, "L2")
    assert pipe_codes(body) == {"P-L2L3", "P-L3L1", "P-L1L2", "P-L1W2", "P-W2W3", "P-W3W4",
                                "P-W4W5"}  # fmt: skip
    assert body["summary"]["loops"] == [["P-L1L2", "P-L2L3", "P-L3L1"]]
    assert body["summary"]["reached_outfall"]
    on_loop = {f["properties"]["code"] for f in body["features"] if f["properties"].get("on_loop")}
    assert on_loop == {"P-L1L2", "P-L2L3", "P-L3L1"}


def test_upstream_trace_takes_the_branch_and_the_loop(town):
    conn, _ = town
    body = trace(conn, "W3", "up")
    assert pipe_codes(body) == {"P-W2W3", "P-B2W3", "P-W1W2", "P-L1W2", "P-L3L1", "P-L2L3",
                                "P-L1L2", "P-B1B2"}  # fmt: skip
    assert well_codes(body) == {"W3", "W2", "B2", "W1", "L1", "L3", "L2", "B1"}
    assert len(body["summary"]["loops"]) == 1
    whole = trace(conn, "W5", "up")
    assert len(pipe_codes(whole)) == 10 and not pipe_codes(whole) & {"P-D1D2", "P-D2D3"}
    assert whole["summary"]["outfalls"] == ["O1"]


def test_a_disconnected_piece_is_reported_not_hung_on(town):
    conn, _ = town
    s = trace(conn, "D1")["summary"]
    assert s["pipes"] == 2 and not s["reached_outfall"] and s["ends_without_outfall"] == ["D3"]


def test_a_pipe_start_leaves_out_the_well_behind_it(town):
    conn, _ = town
    down = trace(conn, "P-W2W3")
    assert pipe_codes(down) == {"P-W2W3", "P-W3W4", "P-W4W5"}
    assert well_codes(down) == {"W3", "W4", "W5"}
    up = trace(conn, "P-W3W4", "up")
    assert pipe_codes(up) == pipe_codes(trace(conn, "W3", "up")) | {"P-W3W4"}
    assert "W4" not in well_codes(up) and "W3" in well_codes(up)


def test_loops_of_a_graph_by_hand():
    edges = [(1, "a", "b"), (2, "b", "c"), (3, "c", "a"), (4, "c", "d"), (5, "d", "e"),
             (6, "e", "d"), (7, "x", None)]  # fmt: skip
    assert loops(edges) == [[1, 2, 3], [5, 6]]
    assert loops([(1, "a", "b"), (2, "b", "c")]) == []


def test_quality_checks_list_each_problem(town):
    conn, _ = town
    body = run_analysis(conn, ADMIN, "drain-quality", {})["result"]
    found = {(r["check"], r["code"]) for r in body["rows"]}
    assert found == {("no_outfall", "P-D1D2"), ("no_outfall", "P-D2D3"),
                     ("reverse_slope", "P-B2W3"), ("diameter_decrease", "P-W3W4"),
                     ("loop", "P-L1L2"), ("loop", "P-L2L3"), ("loop", "P-L3L1")}  # fmt: skip
    assert body["pieces_without_outfall"] == 1 and body["outfalls_matched"] == 1
    reverse = next(r for r in body["rows"] if r["check"] == "reverse_slope")
    assert reverse["value"] == pytest.approx(0.3)
    decrease = next(r for r in body["rows"] if r["check"] == "diameter_decrease")
    assert decrease["value"] == 200 and "P-W4W5" in decrease["detail"]
    only = run_analysis(conn, ADMIN, "drain-quality", {"check": "loop", "format": "geojson"})
    lines = only["result"]["features"]
    assert {f["properties"]["code"] for f in lines} == {"P-L1L2", "P-L2L3", "P-L3L1"}
    assert all(f["geometry"]["type"] == "LineString" for f in lines)


def test_catchment_holds_the_parcels_and_grids_draining_through_the_well(town):
    conn, _ = town
    body = run_analysis(conn, ADMIN, "drain-catchment", {"at": "W3"})["result"]
    got = {(r["object"], r["code"], r["well"]) for r in body["rows"]}
    # PA drains into W1 (the sewage well S1 is nearer but of another kind); grid 001 into B1;
    # PB (W4) and grid 002 (W5) are downstream, PC is beyond 500 m, PD drains the other piece.
    assert got == {("地块", "PA", "W1"), ("单元网格", COMMUNITY + "001", "B1")}
    assert body["population"] == 120 and body["parcels"] == 1 and body["grids"] == 1
    assert body["upstream_pipes"] == 8 and body["loops"] == 1
    blocked = run_analysis(conn, ADMIN, "drain-catchment", {"at": "P-W4W5"})["result"]
    assert {r["code"] for r in blocked["rows"]} == {"PA", "PB", COMMUNITY + "001"}
    layer = run_analysis(conn, ADMIN, "drain-catchment", {"at": "W3", "format": "geojson"})
    assert len(layer["result"]["features"]) == 2


# --- risk: one factor at a time ---------------------------------------------------------------

TO = "2026-06-30"
SINCE = datetime(2025, 7, 1, tzinfo=CITY)


def lone_pipe(conn, place, code, k, **kw) -> tuple[float, float]:
    """A 200 m pipe far from the network and from the others (k-th slot); its middle in metres."""
    x, y = 3000 + 1000 * k, 3000
    wells = {f"{code}a": (x, y), f"{code}b": (x + kw.pop("length", 200), y)}
    for w, (wx, wy) in wells.items():
        add_well(conn, place, w, wx, wy)
    kw = {"diameter": 1500, "inverts": (50.0, 49.0), "year": 2026, "material": "HDPE", **kw}
    add_pipe(conn, place, code, f"{code}a", f"{code}b", wells, **kw)
    return x, y


def risk_rows(conn, user=ADMIN, **params) -> dict[str, dict]:
    """pipe-risk rows by code."""
    body = run_analysis(conn, user, "pipe-risk", {"to": TO, "top": "1000", **params})["result"]
    return {r["code"]: r for r in body["rows"]}


def add_case(conn, lonlat, code, cls, at, component=False) -> None:
    """A case of an event (or component) class at a point."""
    column = "component_class_code" if component else "event_class_code"
    conn.execute(text(
        f"INSERT INTO case_record (code, kind, {column}, source, status, reported_at, geom) "
        f"VALUES (:c, :k, :cls, '监督员上报', '已立案', :at, ST_GeomFromEWKT(:g))"),
        {"c": code, "k": "部件" if component else "事件", "cls": cls, "at": at,
         "g": point(lonlat)})  # fmt: skip


def test_each_risk_factor_alone(town):
    conn, place = town
    base = 100 * WEIGHT["material"] * 0.1  # HDPE: material risk 0.1, every other factor 0
    lone_pipe(conn, place, "R0", 0)
    lone_pipe(conn, place, "RAGE", 1, year=2001)  # 25 years of 50
    lone_pipe(conn, place, "RMAT", 2, material="砖")
    lone_pipe(conn, place, "RNOM", 3, material=None)  # unknown: 0.5
    lone_pipe(conn, place, "RDIA", 4, diameter=750)  # halfway from 1200 to 300
    sloped = lone_pipe(conn, place, "RSLO", 5, inverts=(50.0, 49.7))
    lone_pipe(conn, place, "RREV", 6, inverts=(49.0, 49.5))
    x, y = lone_pipe(conn, place, "RWET", 7)
    conn.execute(text("INSERT INTO waterlogging_point (name, geom) VALUES ('近', :a), ('远', :b)"),
                 {"a": point(place(x + 100, y + 150)), "b": point(place(x + 100, y - 250))})  # fmt: skip
    x, y = lone_pipe(conn, place, "RALM", 8)
    sensor = conn.execute(text("INSERT INTO sensor (code, kind, geom) VALUES ('S-R', '液位', "
                               "ST_GeomFromEWKT(:g)) RETURNING id"),
                          {"g": point(place(x + 100, y + 100))}).scalar()  # fmt: skip
    for at in (
        datetime(2026, 3, 1, tzinfo=CITY),
        datetime(2026, 6, 30, 23, tzinfo=CITY),
        datetime(2025, 6, 30, 23, tzinfo=CITY),
    ):  # the last is before the window
        conn.execute(text("INSERT INTO alarm (sensor_id, raised_at, level, message) VALUES "
                          "(:s, :t, '一般', '液位超过警戒值')"), {"s": sensor, "t": at})  # fmt: skip
    x, y = lone_pipe(conn, place, "RCAS", 9, length=40)
    inside = datetime(2026, 5, 1, 12, tzinfo=CITY)
    add_case(conn, place(x + 20, y), "T-mid", "0404", inside)  # 20 m from both wells: once
    add_case(conn, place(x - 10, y), "T-cover", "0103", inside, component=True)
    add_case(conn, place(x - 10, y + 2), "T-litter", "0102", inside)  # event 0102: not drainage
    add_case(conn, place(x - 45, y), "T-far", "0404", inside)  # 45 m from the nearest well
    add_case(conn, place(x - 5, y), "T-old", "0404", datetime(2025, 6, 30, 12, tzinfo=CITY))
    rows = risk_rows(conn)

    def extra(code: str) -> float:
        """Score above the baseline pipe's."""
        return rows[code]["score"] - rows["R0"]["score"]

    assert rows["R0"]["score"] == pytest.approx(base, abs=0.01)
    assert rows["R0"]["reasons"] == "材质 HDPE（+1.0）"
    assert extra("RAGE") == pytest.approx(100 * WEIGHT["age"] * 25 / 50, abs=0.01)
    assert rows["RAGE"]["age_years"] == 25
    assert rows["RMAT"]["score"] == pytest.approx(100 * WEIGHT["material"], abs=0.01)
    assert rows["RNOM"]["score"] == pytest.approx(100 * WEIGHT["material"] * 0.5, abs=0.01)
    assert extra("RDIA") == pytest.approx(100 * WEIGHT["diameter"] * 0.5, abs=0.01)
    slope = 0.3 / length(place, {"a": sloped, "b": (sloped[0] + 200, sloped[1])}, "a", "b")
    assert extra("RSLO") == pytest.approx(100 * WEIGHT["slope"] * (0.003 - slope) / 0.003, abs=0.02)
    assert rows["RREV"]["reverse_slope_points"] == pytest.approx(100 * WEIGHT["reverse_slope"])
    assert rows["RREV"]["slope_points"] == pytest.approx(100 * WEIGHT["slope"])
    assert extra("RREV") == pytest.approx(
        100 * (WEIGHT["reverse_slope"] + WEIGHT["slope"]), abs=0.01
    )
    assert rows["RWET"]["waterlogging_count"] == 1
    assert extra("RWET") == pytest.approx(100 * WEIGHT["waterlogging"] / 2, abs=0.01)
    assert rows["RALM"]["alarm_count"] == 2
    assert extra("RALM") == pytest.approx(100 * WEIGHT["alarms"] * 2 / 3, abs=0.01)
    assert rows["RCAS"]["case_count"] == 2
    assert extra("RCAS") == pytest.approx(100 * WEIGHT["cases"] * 2 / 3, abs=0.01)
    ranked = list(rows.values())
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)


def test_factor_scores_and_levels_by_hand():
    age = next(f for f in RISK_FACTORS if f.key == "age")
    diameter = next(f for f in RISK_FACTORS if f.key == "diameter")
    assert [factor_score(age, v) for v in (0, 10, 50, 80, None)] == [0, 0.2, 1, 1, 0.5]
    assert [factor_score(diameter, v) for v in (2000, 1200, 750, 300, 100)] == [0, 0, 0.5, 1, 1]
    assert sum(f.weight for f in RISK_FACTORS) == pytest.approx(1.0)


def test_risk_summary_by_area_and_layer(town):
    conn, _ = town
    body = run_analysis(conn, ADMIN, "pipe-risk", {"to": TO, "area": "370102"})["result"]
    assert body["pipes"] == len(PIPES)
    streets = {r["code"]: r["pipes"] for r in body["areas"]}
    # midpoints inside the street: W1W2 (100, 0), W2W3 (300, 0) and L1W2 (200, −100)
    assert streets[STREET] == 3 and sum(streets.values()) == len(PIPES)
    layer = run_analysis(conn, ADMIN, "pipe-risk", {"to": TO, "top": "3", "format": "geojson"})
    assert len(layer["result"]["features"]) == 3 and layer["result"]["summary"]["pipes"] == 12


# --- scope and errors ------------------------------------------------------------------------


def test_a_district_user_sees_only_their_areas(town):
    conn, _ = town
    body = trace(conn, "W1", user=DISTRICT_USER)
    assert pipe_codes(body) == {"P-W1W2", "P-W2W3"} and well_codes(body) == {"W1", "W2"}
    s = body["summary"]
    assert s["hidden_pipes"] == 2 and s["hidden_wells"] == 3 and s["reached_outfall"]
    assert s["outfalls"] == [None]
    with pytest.raises(NotFound):
        trace(conn, "W4", user=DISTRICT_USER)
    assert set(risk_rows(conn, DISTRICT_USER)) == {"P-W1W2", "P-W2W3", "P-L1W2"}
    with pytest.raises(Forbidden):
        risk_rows(conn, DISTRICT_USER, area="370103")
    rows = run_analysis(conn, DISTRICT_USER, "drain-catchment", {"at": "W2"})["result"]["rows"]
    assert {r["code"] for r in rows} == {"PA"}
    quality = run_analysis(conn, DISTRICT_USER, "drain-quality", {})["result"]
    assert quality["pipes_checked"] == 3 and quality["rows"] == []


def test_bad_and_unknown_codes(town):
    conn, _ = town
    for bad in ({"from": "W1 W2"}, {"from": "x" * 40}, {"from": "W1", "direction": "sideways"},
                {}):  # fmt: skip
        with pytest.raises(BadRequest):
            run_analysis(conn, ADMIN, "drain-trace", bad)
    with pytest.raises(NotFound):
        trace(conn, "NOPE-1")
    with pytest.raises(NotFound):
        run_analysis(conn, ADMIN, "drain-catchment", {"at": "NOPE-1"})


def test_http_trace_matches_an_independent_walk(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:
        edges = conn.execute(text("SELECT code, from_well, to_well FROM drain_pipe")).all()
        leaf = conn.execute(text(
            "SELECT p.from_well FROM drain_pipe p WHERE NOT EXISTS (SELECT 1 FROM drain_pipe q "
            "WHERE q.to_well = p.from_well) ORDER BY p.code LIMIT 1")).scalar()  # fmt: skip
    out = {a: (code, b) for code, a, b in edges}  # the demo network is a tree: one outlet each
    walked, well = set(), leaf
    while well in out:
        code, well = out[well]
        walked.add(code)
    resp = client.get("/api/analytics/drain-trace", query_string={"from": leaf},
                      headers=auth(role_tokens, "operator"))  # fmt: skip
    body = resp.get_json()
    assert resp.status_code == 200 and body["type"] == "FeatureCollection"
    assert pipe_codes(body) == walked and body["summary"]["end_wells"] == [well]
    assert body["summary"]["reached_outfall"]


def test_http_errors_scope_and_exports(client, role_tokens, demo_engine):
    headers = auth(role_tokens, "operator")
    get = lambda name, **q: client.get(f"/api/analytics/{name}", query_string=q, headers=headers)  # noqa: E731
    assert get("drain-trace", **{"from": "bad code!"}).status_code == 400
    assert get("drain-trace").status_code == 400
    assert get("drain-trace", **{"from": "NOPE123"}).status_code == 404
    assert get("drain-catchment", at="NOPE123").status_code == 404
    assert get("pipe-risk", top="0").status_code == 400
    assert get("drain-quality", check="everything").status_code == 400
    with demo_engine.connect() as conn:
        street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' "
                                   "ORDER BY code LIMIT 1")).scalar()  # fmt: skip
        inside = set(conn.execute(text(
            "SELECT p.code FROM drain_pipe p JOIN admin_area a ON ST_Intersects(p.geom, a.geom) "
            "WHERE a.code = :s"), {"s": street}).scalars())  # fmt: skip
        outside = conn.execute(text(
            "SELECT w.code FROM drain_well w, admin_area a WHERE a.code = :s "
            "AND NOT ST_Intersects(w.geom, a.geom) ORDER BY w.code LIMIT 1"), {"s": street}).scalar()  # fmt: skip
    mine = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    rows = client.get("/api/analytics/pipe-risk", query_string={"top": "100000"},
                      headers=mine).get_json()["result"]["rows"]  # fmt: skip
    assert {r["code"] for r in rows} == inside
    assert client.get("/api/analytics/drain-trace", query_string={"from": outside},
                      headers=mine).status_code == 404  # fmt: skip
    assert client.get("/api/analytics/pipe-risk", query_string={"area": "370103"},
                      headers=mine).status_code == 403  # fmt: skip
    csv = client.get("/api/analytics/pipe-risk/export.csv", headers=headers)
    assert csv.status_code == 200 and "风险等级" in csv.get_data(as_text=True).splitlines()[0]
    xlsx = client.get("/api/analytics/drain-quality/export.xlsx", headers=headers)
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
