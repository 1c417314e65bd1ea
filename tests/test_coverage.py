"""Coverage analyses on a hand-made town with exactly known answers (shapely in EPSG:4548).

The town is laid out in metres (CGCS2000 3° Gauss-Krüger, central meridian 117°E) and stored in
EPSG:4490 like any data. Parcels meet the service zones only along their straight sides, so the
expected areas are exact whatever the arc approximation of a buffer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, box, mapping
from sqlalchemy import text

from auth import accounts
from geodata.db import make_engine

METRIC = 4548
TO_GEO = Transformer.from_crs(METRIC, 4490, always_xy=True)
TO_METRIC = Transformer.from_crs(4490, METRIC, always_xy=True)
OX, OY = 501168.0, 4056492.0  # inside 历下区 (370102) with room for the whole town
STREETS = {"370102901": box(0, 0, 2000, 2000), "370102902": box(2000, 0, 4000, 2000),
           "370102903": box(4000, 0, 6000, 2000), "370102904": box(6000, 0, 8000, 2000)}  # fmt: skip
A_BIG, A_SMALL, A_HIST = math.sqrt(5010), math.sqrt(4990), math.sqrt(1200)
PARKS = {  # code: (geometry, historic)
    "P_BIG": (box(200, 200, 200 + A_BIG, 200 + A_BIG), False),  # 5,010 m²: 500 m
    "P_SMALL": (box(200, 1200, 200 + A_SMALL, 1200 + A_SMALL), False),  # 4,990 m²: 300 m
    "P_HIST": (box(1200, 1200, 1200 + A_HIST, 1200 + A_HIST), True),  # historic 1,200 m²: 300 m
    "P_TINY": (box(1200, 200, 1200 + A_HIST, 200 + A_HIST), False),  # 1,200 m²: nothing
    "P_NET": (box(2500, 200, 2500 + A_BIG, 200 + A_BIG), False),  # by the river, 500 m
}
PARCELS = {  # code: (geometry, population)
    "R1": (box(200 + A_BIG + 450, 210, 200 + A_BIG + 550, 250), 400),  # half inside 500 m
    "R2": (box(200 + A_SMALL + 250, 1210, 200 + A_SMALL + 350, 1250), 200),  # half inside 300 m
    "R3": (box(1200 + A_HIST + 250, 1205, 1200 + A_HIST + 350, 1225), 100),  # half inside 300 m
    "R4": (box(1200 + A_HIST + 10, 205, 1200 + A_HIST + 60, 225), 50),  # next to a park too small
    "R5": (box(1950, 1700, 2050, 1800), 100),  # across the boundary of streets 901 / 902
    "R6": (box(3010, 200, 3060, 250), 80),  # across the river from P_NET: 439 m straight
    "R7": (box(2610, 300, 2640, 340), 30),  # on P_NET's side of the river
    "C1": (box(4950, 950, 5000, 1000), 10),
    "C2": (box(5000, 950, 5050, 1000), 10),
    "C3": (box(4950, 1000, 5000, 1050), 10),
    "C4": (box(5000, 1000, 5050, 1050), 10),
    "S1": (box(5850, 1850, 5900, 1900), 10),  # a lone parcel: no 540 m disk reaches it and C1–C4
}
ROADS = [LineString([(2600, 0), (2600, 1900)]), LineString([(2600, 1900), (3000, 1900)]),
         LineString([(3000, 1900), (3000, 0)]), LineString([(6000, 1000), (8000, 1000)])]  # fmt: skip
CAMERAS = [(7000, 1000, 90.0, 60.0, 100.0), (6500, 990, 0.0, 60.0, 100.0)]


def geo(geom):
    """Town metres to stored EPSG:4490 lon/lat."""
    return shapely.transform(geom, lambda xy: np.column_stack(
        TO_GEO.transform(xy[:, 0] + OX, xy[:, 1] + OY)))  # fmt: skip


def ewkt(geom, multi: bool = True) -> str:
    """EWKT in EPSG:4490 (as a multi-geometry when the column wants one)."""
    g = geo(geom)
    if multi and g.geom_type == "Polygon":
        g = shapely.MultiPolygon([g])
    if multi and g.geom_type == "LineString":
        g = shapely.MultiLineString([g])
    return f"SRID=4490;{g.wkt}"


@pytest.fixture(scope="module")
def town(scratch):
    """A scratch city holding the hand-made town, and a leader's and a planner's token."""
    url = scratch.create_city("onemap_town")
    engine = make_engine(url)
    with engine.begin() as conn:
        for code, g in STREETS.items():
            conn.execute(text("INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
                              "(:c, 'street', :n, '370102', ST_GeomFromEWKT(:g))"),
                         {"c": code, "n": f"测试街道{code[-1]}", "g": ewkt(g)})  # fmt: skip
        for code, (g, historic) in PARKS.items():
            conn.execute(text("INSERT INTO green_space (code, name, kind, historic_district, geom) "
                              "VALUES (:c, :c, 'G12', :h, ST_GeomFromEWKT(:g))"),
                         {"c": code, "h": historic, "g": ewkt(g)})  # fmt: skip
        for code, (g, pop) in PARCELS.items():
            conn.execute(text("INSERT INTO land_parcel (code, land_use, population, geom) VALUES "
                              "(:c, 'R2', :p, ST_GeomFromEWKT(:g))"), {"c": code, "p": pop, "g": ewkt(g)})  # fmt: skip
        for line in ROADS:
            conn.execute(text("INSERT INTO road (name, road_class, geom) VALUES ('测试路', '支路', "
                              "ST_GeomFromEWKT(:g))"), {"g": ewkt(line)})  # fmt: skip
        for i, (x, y, d, fov, r) in enumerate(CAMERAS):
            conn.execute(text("INSERT INTO camera (code, name, online, direction_deg, fov_deg, range_m, "
                              "geom) VALUES (:c, :c, true, :d, :f, :r, ST_GeomFromEWKT(:g))"),
                         {"c": f"CAM{i}", "d": d, "f": fov, "r": r, "g": ewkt(shapely.Point(x, y), False)})  # fmt: skip
        tokens = {}
        for role in ("leader", "planner", "district"):
            areas = ["370102902"] if role == "district" else []
            accounts.add_user(conn, f"town_{role}", role, "town-password-1", areas=areas)
            tokens[role] = accounts.create_token(conn, f"town_{role}", "t", 1)[1]
    from app import create_app
    from settings import Settings

    client = create_app(Settings(DATABASE_URL=url)).server.test_client()
    yield {"engine": engine, "client": client, "tokens": tokens}
    engine.dispose()


def get(town, path: str, role: str = "leader", **params):
    """A GET on the town's app as a role."""
    headers = {"Authorization": f"Bearer {town['tokens'][role]}"}
    return town["client"].get(path, query_string=params, headers=headers)


def covered(parcel: str, park: str, radius: float) -> float:
    """Independent answer: the parcel's area within `radius` of the park (shapely, metres)."""
    return PARCELS[parcel][0].intersection(PARKS[park][0].buffer(radius, quad_segs=64)).area


def test_the_hand_made_answers_are_what_the_test_says():
    assert covered("R1", "P_BIG", 500) == pytest.approx(2000, rel=1e-9)
    assert covered("R2", "P_SMALL", 300) == pytest.approx(2000, rel=1e-9)
    assert covered("R2", "P_SMALL", 500) == pytest.approx(
        4000, rel=1e-9
    )  # 500 m would cover it all
    assert covered("R3", "P_HIST", 300) == pytest.approx(1000, rel=1e-9)


def test_street_coverage_follows_the_rule_table(town):
    body = get(town, "/api/analytics/park-coverage", area="370102901").get_json()["result"]
    parts = {k: v for k, v in PARCELS.items() if k in ("R1", "R2", "R3", "R4")}
    residential = sum(g.area for g, _ in parts.values()) + 5000  # R5's half inside street 901
    expected = (
        covered("R1", "P_BIG", 500) + covered("R2", "P_SMALL", 300) + covered("R3", "P_HIST", 300)
    )
    assert body["residential_area_m2"] == pytest.approx(residential, rel=1e-6)
    assert body["covered_area_m2"] == pytest.approx(expected, rel=1e-6)
    assert body["coverage_pct"] == pytest.approx(100 * expected / residential, abs=0.01)
    assert body["population"] == pytest.approx(400 + 200 + 100 + 50 + 50, abs=1)
    assert body["served_population"] == pytest.approx(200 + 100 + 50, abs=1)
    radius = {p["code"]: p["radius_m"] for p in body["parks"]}
    assert radius == {"P_BIG": 500, "P_SMALL": 300, "P_HIST": 300, "P_TINY": 0}
    served = {p["code"]: p["served_area_m2"] for p in body["parks"]}
    assert served["P_BIG"] == pytest.approx(2000, rel=1e-6) and served["P_TINY"] == 0
    park_area = sum(PARKS[c][0].area for c in ("P_BIG", "P_SMALL", "P_HIST", "P_TINY"))
    assert body["park_area_per_capita_m2"] == pytest.approx(park_area / 800, abs=0.01)


def test_a_parcel_across_a_boundary_counts_in_each_area_by_its_part(town):
    body = get(town, "/api/analytics/park-coverage", area="370102").get_json()["result"]
    rows = {r["code"]: r for r in body["by_area"]}
    assert rows["370102902"]["residential_area_m2"] == pytest.approx(
        5000 + PARCELS["R6"][0].area + PARCELS["R7"][0].area, rel=1e-6)  # fmt: skip
    assert rows["370102901"]["population"] + rows["370102902"]["population"] == pytest.approx(
        400 + 200 + 100 + 50 + 100 + 80 + 30, abs=1
    )  # R5's 100 people split 50 / 50
    total = sum(g.area for g, _ in PARCELS.values())
    assert body["residential_area_m2"] == pytest.approx(total, rel=1e-6)


def test_a_river_makes_the_network_figure_lower(town):
    body = get(town, "/api/analytics/park-coverage", area="370102902", mode="network").get_json()
    result = body["result"]
    euclid, network = result["side_by_side"]["euclidean"], result["side_by_side"]["network"]
    r6, r7 = PARCELS["R6"][0].area, PARCELS["R7"][0].area
    assert euclid["covered_area_m2"] == pytest.approx(r6 + r7, rel=1e-6)  # straight line: both
    assert network["covered_area_m2"] == pytest.approx(r7, rel=1e-6)  # on foot: not across
    assert result["coverage_pct"] == network["coverage_pct"] < euclid["coverage_pct"]


@pytest.mark.parametrize("drawn", ["as given", "reversed"])
@pytest.mark.parametrize("radius", [300.0, 600.0])
def test_walking_reach_follows_a_bent_road(drawn, radius):
    """An L-shaped road bent at (0, 0), crossed at (500, 0) by a 200 m road; a park 10√2 m from
    the bend. The walk enters at the bend and goes r − 10√2 along both arms; at r = 600 it passes
    the crossing (after 500 m) and goes the rest, 85.9 m, both ways along the crossing road."""
    from analytics.network import build_graph, find_entries, reached_lines

    roads = [LineString([(0, 1000), (0, 0), (1000, 0)]), LineString([(500, -100), (500, 100)])]
    if drawn == "reversed":
        roads = [shapely.reverse(r) for r in roads]
    park = np.array([box(-30, -30, -10, -10)], dtype=object)
    graph = build_graph(np.array(roads, dtype=object))
    lines = reached_lines(graph, find_entries(graph, park), np.array([radius]))
    arm = radius - 10 * math.sqrt(2)
    expected = [LineString([(0, arm), (0, 0), (arm, 0)])]
    if arm > 500:
        expected.append(LineString([(500, 500 - arm), (500, arm - 500)]))
    expected = shapely.MultiLineString(expected)
    assert float(shapely.length(lines).sum()) == pytest.approx(expected.length, abs=1e-6)
    assert shapely.hausdorff_distance(shapely.union_all(lines), expected) < 1e-6


def test_a_piece_drawn_against_its_road_is_placed_backwards():
    """A piece from (300, 200) round the bend to (100, 0) lies on the road (0, 0)–(300, 0)–
    (300, 400) from 100 m to 500 m along it, running the other way."""
    from analytics.network import placement, sub_lines

    road = np.array([LineString([(0, 0), (300, 0), (300, 400)])], dtype=object)
    piece = np.array([LineString([(300, 200), (300, 0), (100, 0)])], dtype=object)
    xy = shapely.get_coordinates(piece)
    lines, line_of, offset, forward = placement(road, piece, xy[:1], xy[1:2])
    assert line_of.tolist() == [0] and forward.tolist() == [False]
    assert offset[0] == pytest.approx(500)
    (part,) = sub_lines(lines, line_of, offset - 400, offset)
    assert shapely.hausdorff_distance(part, piece[0]) < 1e-9


def test_a_road_edit_rebuilds_the_kept_road_graph(town):
    """A bridge over the river (and its removal) changes the walking figure at once, although the
    noded road graph is kept between runs."""
    from analytics.network import GRAPHS

    def on_foot() -> float:
        body = get(town, "/api/analytics/park-coverage", area="370102902", mode="network")
        return body.get_json()["result"]["side_by_side"]["network"]["covered_area_m2"]

    r7 = PARCELS["R7"][0].area
    assert on_foot() == pytest.approx(r7, rel=1e-6)
    database = town["engine"].url.database
    assert any(key[0][2] == database for key in list(GRAPHS.items))  # the graph is kept
    # P_NET's east side is 29.2 m from the road x = 2600, where the bridge starts: its end
    # (3040, 225) is 29.2 + 440 m away, and all of R6 (x 3010–3060, y 200–250) lies within
    # 50 m of it (the far corner is √(20² + 25²) = 32 m from the end): R6 is reached whole.
    bridge = LineString([(2600, 225), (3040, 225)])  # crosses the road x = 3000 too
    with town["engine"].begin() as conn:
        conn.execute(text("INSERT INTO road (name, road_class, geom) VALUES ('测试桥', '支路', "
                          "ST_GeomFromEWKT(:g))"), {"g": ewkt(bridge)})  # fmt: skip
    try:
        assert on_foot() == pytest.approx(r7 + PARCELS["R6"][0].area, rel=1e-6)
    finally:
        with town["engine"].begin() as conn:
            conn.execute(text("DELETE FROM road WHERE name = '测试桥'"))
    assert on_foot() == pytest.approx(r7, rel=1e-6)  # the bridge cut again


def test_uncovered_land_as_geojson(town):
    features = get(
        town, "/api/analytics/park-coverage", area="370102901", format="geojson"
    ).get_json()
    gaps = {f["properties"]["code"]: f["properties"]["uncovered_m2"] for f in features["features"]}
    assert gaps["R4"] == pytest.approx(PARCELS["R4"][0].area, rel=1e-6)
    assert gaps["R1"] == pytest.approx(2000, rel=1e-6) and gaps["R5"] == pytest.approx(
        5000, rel=1e-6
    )


def test_what_if_writes_nothing_and_equals_importing_the_park(town):
    park = box(1200 + A_HIST + 100, 200, 1200 + A_HIST + 100 + A_BIG, 200 + A_BIG)  # covers R4
    with town["engine"].connect() as conn:
        before = conn.execute(text("SELECT count(*), max(id) FROM green_space")).one()
    resp = town["client"].post("/api/analytics/park-coverage/what-if", json={
        "area": "370102901", "geometry": mapping(geo(park)),
    }, headers={"Authorization": f"Bearer {town['tokens']['planner']}"})  # fmt: skip
    body = resp.get_json()["result"]
    assert body["gain_pct"] > 0 and body["candidate"]["radius_m"] == 500
    newly = {f["properties"]["code"]: f["properties"]["newly_covered_m2"]
             for f in body["newly_covered"]["features"]}  # fmt: skip
    assert newly["R4"] == pytest.approx(PARCELS["R4"][0].area, rel=1e-4)
    with town["engine"].begin() as conn:
        assert conn.execute(text("SELECT count(*), max(id) FROM green_space")).one() == before
        conn.execute(text("INSERT INTO green_space (code, name, kind, geom) VALUES ('P_NEW', '新园', "
                          "'G12', ST_GeomFromEWKT(:g))"), {"g": ewkt(park)})  # fmt: skip
    try:
        imported = get(town, "/api/analytics/park-coverage", area="370102901").get_json()["result"]
        assert imported["coverage_pct"] == pytest.approx(body["coverage_pct"], abs=0.01)
        assert imported["covered_area_m2"] == pytest.approx(body["covered_area_m2"], rel=1e-4)
    finally:
        with town["engine"].begin() as conn:
            conn.execute(text("DELETE FROM green_space WHERE code = 'P_NEW'"))


def test_siting_picks_the_obvious_site(town):
    body = get(town, "/api/analytics/park-siting", area="370102903", k=2, size_m2=5000,
               spacing_m=50).get_json()["result"]  # fmt: skip
    first, second = body["sites"]
    assert first["gain_m2"] == pytest.approx(10_000, rel=1e-6)  # the whole cluster C1–C4
    assert second["gain_m2"] == pytest.approx(2_500, rel=1e-6)  # then the lone parcel
    x, y = TO_METRIC.transform(first["lon"], first["lat"])
    assert math.dist((x - OX, y - OY), (5000, 1000)) < 540  # within reach of the whole cluster
    assert second["coverage_pct_after"] == pytest.approx(100.0, abs=0.01)


def test_camera_sectors_on_a_toy_road(town):
    body = get(town, "/api/analytics/service-coverage", kind="camera", area="370102904").get_json()
    result = body["result"]
    expected = 100 + 2 * 10 * math.tan(math.radians(30))  # along the bisector; across the sector
    assert result["road_length_m"] == pytest.approx(2000, rel=1e-6)
    assert result["covered_length_m"] == pytest.approx(expected, abs=0.1)  # answers to 0.1 m
    assert get(town, "/api/analytics/service-coverage", "planner", kind="camera").status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "bus"},
        {"area": "abc"},
        {"rules": "5000"},
        {"rules": "5000:-1"},
        {"rules": "x:y:z"},
        {"colour": "1"},
    ],
)
def test_bad_parameters_are_400(town, params):
    assert get(town, "/api/analytics/park-coverage", **params).status_code == 400


def test_a_district_user_asking_for_another_area_is_403(town):
    assert (
        get(town, "/api/analytics/park-coverage", "district", area="370102901").status_code == 403
    )
    own = get(town, "/api/analytics/park-coverage", "district", area="370102902")
    assert own.status_code == 200
    whole = get(town, "/api/analytics/park-coverage", "district").get_json()["result"]
    assert [r["code"] for r in whole["by_area"]] == ["370102902"]


def test_exports_open_and_match_the_json(town):
    import csv
    import io

    from openpyxl import load_workbook

    params = {"area": "370102"}
    body = get(town, "/api/analytics/park-coverage", **params).get_json()["result"]
    sheet = get(town, "/api/analytics/park-coverage/export.xlsx", **params)
    assert sheet.status_code == 200 and sheet.headers["Content-Disposition"].endswith('.xlsx"')
    book = load_workbook(io.BytesIO(sheet.data))
    summary = {r[0]: r[1] for r in book["汇总"].iter_rows(values_only=True)}
    assert summary["覆盖率(%)"] == body["coverage_pct"]
    rows = list(book["分区"].iter_rows(values_only=True))
    assert rows[0][:2] == ("编码", "名称") or "编码" in rows[0]
    header = rows[0]
    got = {r[header.index("编码")]: r[header.index("覆盖率(%)")] for r in rows[1:]}
    assert got == {r["code"]: r["coverage_pct"] for r in body["by_area"]}
    parks = list(book["公园"].iter_rows(values_only=True))
    assert len(parks) - 1 == len(body["parks"])
    text_csv = get(town, "/api/analytics/park-coverage/export.csv", **params).get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(text_csv.lstrip("\ufeff"))))
    assert [r["编码"] for r in table] == [r["code"] for r in body["by_area"]]
    assert [float(r["居住用地面积(m²)"]) for r in table] == [
        r["residential_area_m2"] for r in body["by_area"]
    ]
    assert get(town, "/api/analytics/park-coverage/export.pdf", **params).status_code == 400


def test_polygon_statistics_are_clipped_to_the_area(town):
    crossing = box(1980, 1500, 2020, 1540)  # a green space across the streets 901 / 902
    with town["engine"].begin() as conn:
        conn.execute(text("INSERT INTO green_space (code, name, kind, geom) VALUES ('P_CROSS', "
                          "'跨界绿地', 'G2', ST_GeomFromEWKT(:g))"), {"g": ewkt(crossing)})  # fmt: skip
    try:
        body = get(town, "/api/stats/green_space", by="kind", area="370102901").get_json()
        clipped = {g["value"]: g["area_m2"] for g in body["groups"]}
        assert clipped["G2"] == pytest.approx(crossing.area / 2, rel=1e-4)  # only its half in 901
    finally:
        with town["engine"].begin() as conn:
            conn.execute(text("DELETE FROM green_space WHERE code = 'P_CROSS'"))


def test_a_drawn_polygon_is_an_area_too(town):
    drawn = box(600, 150, 1400, 300)  # around R1 and R4 only
    params = {"geometry": __import__("json").dumps(mapping(geo(drawn)))}
    body = get(town, "/api/analytics/park-coverage", **params).get_json()["result"]
    residential = PARCELS["R1"][0].area + PARCELS["R4"][0].area
    assert body["residential_area_m2"] == pytest.approx(residential, rel=1e-6)
    assert body["covered_area_m2"] == pytest.approx(covered("R1", "P_BIG", 500), rel=1e-6)
    assert [r["code"] for r in body["by_area"]] == ["370102901"]
    both = get(town, "/api/analytics/park-coverage", area="370102901", **params)
    assert both.status_code == 400
    elsewhere = get(town, "/api/analytics/park-coverage", "district", **params)
    assert elsewhere.status_code == 403  # the district user's street is 902
