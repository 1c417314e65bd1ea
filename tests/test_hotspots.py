"""Gi* hotspots: PySAL equality, a planted hotspot and coldspot, FDR, and the API on the demo."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import esda
import geopandas as gpd
import numpy as np
import pytest
import shapely
from libpysal.weights import Queen
from pyproj import CRS
from scipy.stats import norm
from shapely.geometry import box, shape
from sqlalchemy import text

from analytics.cells import check_cells
from analytics.contract import run_analysis
from analytics.coverage import Area
from analytics.hotspots import classes, gi_star
from auth.accounts import User
from auth.roles import ROLES
from errors import BadRequest, Forbidden
from geodata.crs import metric_epsg
from geodata.db import make_engine
from tests.conftest import area_shape, auth, district_token

# A case's day on the city's clock (Asia/Shanghai), spelled independently of analytics.case_filters.
CITY_DAY = "(reported_at AT TIME ZONE 'Asia/Shanghai')::date"


def lattice(n: int = 12) -> gpd.GeoDataFrame:
    """An n × n lattice of 100 m squares."""
    cells = [
        box(x * 100, y * 100, x * 100 + 100, y * 100 + 100) for y in range(n) for x in range(n)
    ]
    return gpd.GeoDataFrame({"i": range(n * n)}, geometry=cells, crs=4548)


def planted(n: int = 12) -> np.ndarray:
    """Background 5 per cell, a 3 × 3 hot block of 30 at (2..4, 2..4) and a cold block of 0."""
    rng = np.random.default_rng(7)
    counts = rng.poisson(5, n * n).astype(float)
    grid = counts.reshape(n, n)
    grid[2:5, 2:5] = 30
    grid[7:10, 7:10] = 0
    return grid.ravel()


def test_gi_star_equals_esda_and_the_textbook_formula():
    frame, counts = lattice(), planted()
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    z, p = gi_star(counts, w)
    reference = esda.G_Local(counts, w, transform="B", star=True, permutations=0)
    assert np.allclose(z, reference.Zs, atol=1e-9, rtol=0)
    # Getis & Ord (1995) Gi* by hand for one cell: weights are the queen neighbours plus itself.
    n, x = len(counts), counts
    i = 3 * 12 + 3
    wi = np.zeros(n)
    wi[[i, *w.neighbors[i]]] = 1.0
    mean, s = x.mean(), np.sqrt((x**2).mean() - x.mean() ** 2)
    z_hand = (wi @ x - mean * wi.sum()) / (
        s * np.sqrt((n * (wi**2).sum() - wi.sum() ** 2) / (n - 1))
    )
    assert z[i] == pytest.approx(z_hand, abs=1e-9)
    assert p[i] == pytest.approx(2 * norm.sf(abs(z_hand)), abs=1e-12)


def test_the_planted_hotspot_and_coldspot_are_found():
    frame, counts = lattice(), planted()
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    labels = np.array(classes(*gi_star(counts, w))).reshape(12, 12)
    assert labels[3, 3] == "hot_99"
    assert labels[8, 8].startswith("cold")
    assert labels[0, 11] == "ns"


def test_fdr_correction_changes_a_class():
    z = np.array([2.1, 0.1, -0.2, 0.3, 0.0, 0.5])
    p = 2 * norm.sf(np.abs(z))  # the first: p = 0.036, hot_95 without correction
    assert p[0] < 0.05
    assert classes(z, p)[0] == "ns"  # BH over six tests: 0.036 × 6 > 0.10
    assert classes(np.array([2.1]), p[:1]) == ["hot_95"]


def run(client, headers, **params):
    """GET /api/analytics/hotspots."""
    return client.get("/api/analytics/hotspots", query_string=params, headers=headers)


def test_every_unit_grid_takes_part_and_matches_esda(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:  # days on the city's clock, as the analysis counts them
        last = conn.execute(text(f"SELECT max({CITY_DAY}) FROM case_record")).scalar()
        grids = conn.execute(text("SELECT count(*) FROM unit_grid")).scalar()
    start = (last.replace(day=1)).isoformat()
    body = run(
        client, auth(role_tokens, "operator"), **{"from": start, "to": last.isoformat()}
    ).get_json()
    feats = body["features"]
    assert len(feats) == grids and any(f["properties"]["count"] == 0 for f in feats)
    with demo_engine.connect() as conn:
        in_window = conn.execute(text(f"SELECT count(*) FROM case_record c WHERE {CITY_DAY} "
                                      "BETWEEN CAST(:a AS date) AND CAST(:b AS date) AND EXISTS "
                                      "(SELECT 1 FROM unit_grid g WHERE ST_Intersects(g.geom, c.geom))"),
                                 {"a": start, "b": last.isoformat()}).scalar()  # fmt: skip
    assert (
        sum(f["properties"]["count"] for f in feats) >= in_window
    )  # a case on a shared edge counts twice
    frame = gpd.GeoDataFrame({"count": [f["properties"]["count"] for f in feats]},
                             geometry=[shape(f["geometry"]) for f in feats], crs=4326).to_crs(4548)  # fmt: skip
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    reference = esda.G_Local(
        frame["count"].to_numpy(float), w, transform="B", star=True, permutations=0
    )
    got = np.array([f["properties"]["gi_z"] for f in feats])
    assert np.allclose(got, reference.Zs, atol=1e-5)  # answers are rounded to 6 decimals
    assert {f["properties"]["hotspot_class"] for f in feats} >= {"ns"}


def test_hexagons_and_bad_parameters(client, role_tokens):
    headers = auth(role_tokens, "leader")
    hexes = run(client, headers, cells="hex", size=800, area="370102").get_json()["features"]
    assert hexes and all(len(f["geometry"]["coordinates"][0]) == 7 for f in hexes)
    for bad in ({"from": "2024-13-01"}, {"size": 10}, {"cells": "tiles"}, {"class": "99"},
                {"from": "2025-02-01", "to": "2025-01-01"}):  # fmt: skip
        assert run(client, headers, **bad).status_code == 400
    assert run(client, auth(role_tokens, "kiosk")).status_code == 403


def test_a_district_user_gets_only_its_cells(client, demo_engine):
    with demo_engine.connect() as conn:
        street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' ORDER BY code "
                                   "LIMIT 1")).scalar()  # fmt: skip
        inside = conn.execute(text("SELECT count(*) FROM unit_grid WHERE code LIKE :s || '%'"),
                              {"s": street}).scalar()  # fmt: skip
    headers = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    feats = run(client, headers).get_json()["features"]
    assert len(feats) == inside and all(f["id"].startswith(street) for f in feats)
    assert run(client, headers, area="370103").status_code == 403


def test_heat_payload_is_bounded_and_counts_every_case(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:
        row = conn.execute(text("SELECT ST_XMin(e) a, ST_YMin(e) b, ST_XMax(e) c, ST_YMax(e) d, "
                                f"min({CITY_DAY}) f, max({CITY_DAY}) t FROM "
                                "(SELECT ST_Extent(geom) e FROM case_record) x, case_record "
                                "GROUP BY 1, 2, 3, 4")).mappings().one()  # fmt: skip
    bbox = f"{row['a'] - 0.001},{row['b'] - 0.001},{row['c'] + 0.001},{row['d'] + 0.001}"
    body = client.get("/api/analytics/heat", query_string={
        "bbox": bbox, "from": row["f"].isoformat(), "to": row["t"].isoformat()},
        headers=auth(role_tokens, "operator")).get_json()["result"]  # fmt: skip
    with demo_engine.connect() as conn:
        cases = conn.execute(text("SELECT count(*) FROM case_record")).scalar()
    assert 0 < len(body["points"]) <= 64 * 64
    assert sum(p[2] for p in body["points"]) == body["total"] == cases
    bad = client.get("/api/analytics/heat", query_string={"bbox": "1,2,3"},
                     headers=auth(role_tokens, "operator"))  # fmt: skip
    assert bad.status_code == 400
    # the map's area focus: only the cases inside the area count
    with demo_engine.connect() as conn:
        street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' "
                                   "ORDER BY code LIMIT 1")).scalar()  # fmt: skip
        inside = conn.execute(text("SELECT count(*) FROM case_record c, admin_area a WHERE "
                                   "a.code = :s AND ST_Intersects(c.geom, a.geom)"),
                              {"s": street}).scalar()  # fmt: skip
    focused = client.get("/api/analytics/heat", query_string={
        "bbox": bbox, "from": row["f"].isoformat(), "to": row["t"].isoformat(), "area": street},
        headers=auth(role_tokens, "operator")).get_json()["result"]  # fmt: skip
    assert 0 < focused["total"] == inside < cases
    mine = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    other = client.get("/api/analytics/heat", query_string={"bbox": bbox, "area": "370103"},
                       headers=mine)  # fmt: skip
    assert other.status_code == 403


# --- hand-made cases: the shared case filters, the bbox extent, the city's clock, the scope ----

LIXIA = "370102"
MAX_CELLS = 50_000  # the limit the API promises (docs/CASE_ANALYTICS.md)
ADMIN = User(0, "t_hot_admin", ROLES["admin"], ())
LIXIA_USER = User(0, "t_hot_lixia", ROLES["district"], (LIXIA,))


@dataclass(frozen=True)
class Planted:
    """One hand-made case: where, when (UTC) and what."""

    code: str
    lon: float
    lat: float
    at: datetime
    source: str
    status: str


def planted_cases(lon0: float, lat0: float, away: shapely.Point,
                  edge: shapely.Point) -> list[Planted]:  # fmt: skip
    """Cases on a 400 m lattice around (lon0, lat0) and two outside 历下区 (`away` from it, just
    over its `edge`), mixed sources and statuses.

    All are reported on 2026-03-02 in Asia/Shanghai (UTC+8) except HOT0101, reported at 16:30 UTC
    that day, which is already 2026-03-03 in the city.
    """
    kinds = [("公众举报", "已结案"), ("公众举报", "已结案"), ("公众举报", "已派遣"),
             ("监督员上报", "已派遣"), ("监督员上报", "已结案"), ("物联感知", "已作废"),
             ("视频智能识别", "已核查"), ("监督员上报", "已立案")]  # fmt: skip
    times = [
        datetime(2026, 3, 1, 17, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 2, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 15, 30, tzinfo=UTC),
    ]  # 01:00, 10:00, 23:30 in the city
    cases = []
    for i, (source, status) in enumerate(kinds):
        lon, lat = lon0 + 0.0047 * (i % 4), lat0 + 0.0036 * (i // 4)  # ≈ 420 m × 400 m apart
        cases.append(Planted(f"HOT{i:04d}", lon, lat, times[i % 3], source, status))
    cases.append(Planted("HOT0100", away.x, away.y, times[1], "公众举报", "已结案"))
    cases.append(Planted("HOT0101", lon0 + 0.0023, lat0 + 0.0018,
                         datetime(2026, 3, 2, 16, 30, tzinfo=UTC), "公众举报", "已结案"))  # fmt: skip
    cases.append(Planted("HOT0102", edge.x, edge.y, times[1], "监督员上报", "已派遣"))
    return cases


@pytest.fixture(scope="module")
def hot_db(scratch):
    """A migrated database with the Shandong boundaries and the planted cases (nothing else)."""
    engine = make_engine(scratch.create_city("onemap_hot"))
    with engine.begin() as conn:
        lixia = area_shape(conn, LIXIA)
        inner = lixia.representative_point()
        minx, miny, maxx, maxy = lixia.bounds  # the point of its bbox farthest from 历下区
        grid = [shapely.Point(x, y) for x in np.linspace(minx + 0.003, maxx - 0.003, 40)
                for y in np.linspace(miny + 0.003, maxy - 0.003, 40)]  # fmt: skip
        away = max(grid, key=lixia.distance)
        assert lixia.distance(away) > 0.015  # beyond any 400 m hexagon that meets 历下区
        ring = shapely.get_exterior_ring(lixia.buffer(0.0003))  # ≈ 30 m outside 历下区
        edge = next(pt for pt in (ring.interpolate(f, normalized=True) for f in np.linspace(0, 1, 50))
                    if shapely.box(*lixia.bounds).contains(pt) and not lixia.intersects(pt))  # fmt: skip
        cases = planted_cases(inner.x - 0.007, inner.y - 0.002, away, edge)
        outside = {"HOT0100", "HOT0102"}
        assert all(lixia.contains(shapely.Point(c.lon, c.lat)) for c in cases
                   if c.code not in outside)  # fmt: skip
        for c in cases:
            conn.execute(text(
                "INSERT INTO case_record (code, kind, event_class_code, source, status, reported_at, "
                "closed_at, geom) VALUES (:code, '事件', '0102', :source, :status, :at, :closed, "
                "ST_SetSRID(ST_MakePoint(:lon, :lat), 4490))"),
                {"code": c.code, "source": c.source, "status": c.status, "at": c.at,
                 "closed": c.at + timedelta(days=1) if c.status == "已结案" else None,
                 "lon": c.lon, "lat": c.lat})  # fmt: skip
    yield engine, cases, lixia
    engine.dispose()


def expected(cases, *, view=None, day=date(2026, 3, 2), source=None, status=None, area=None):
    """The planted cases a filter should keep, decided in Python (not by the SQL under test)."""
    city = ZoneInfo("Asia/Shanghai")
    keep = []
    for c in cases:
        point = shapely.Point(c.lon, c.lat)
        if view is not None and not view.contains(point):
            continue
        if c.at.astimezone(city).date() != day or (source and c.source != source):
            continue
        if status == "未结案" and c.status in ("已结案", "已作废"):
            continue
        if status not in (None, "未结案") and c.status != status:
            continue
        if area is not None and not area.intersects(point):
            continue
        keep.append(c)
    return keep


def hot(conn, user, **params) -> dict:
    """The hotspots result for the planted day, hexagons of 100 m unless told otherwise."""
    raw = {"from": "2026-03-02", "to": "2026-03-02", "cells": "hex", "size": "100", **params}
    return run_analysis(conn, user, "hotspots", raw)["result"]


def per_cell(features, cases) -> None:
    """Each cell's count is the number of the given cases inside its polygon (shapely, lon/lat)."""
    points = [shapely.Point(c.lon, c.lat) for c in cases]
    for f in features:
        cell = shape(f["geometry"])
        assert f["properties"]["count"] == sum(cell.covers(p) for p in points), f["id"]


@pytest.mark.parametrize("filters", [{}, {"source": "公众举报"}, {"source": "监督员上报"},
                                     {"status": "已结案"}, {"status": "未结案"},
                                     {"status": "已作废"}, {"source": "公众举报", "status": "未结案"},
                                     {"source": "上级交办"}])  # fmt: skip
def test_source_and_status_filters_count_the_planted_cases(hot_db, filters):
    engine, cases, _ = hot_db
    view = lattice_view(cases)
    raw = ",".join(map(str, view.bounds))
    with engine.connect() as conn:
        body = hot(conn, ADMIN, bbox=raw, **filters)
        heat = run_analysis(conn, ADMIN, "heat", {"from": "2026-03-02", "to": "2026-03-02",
                                                  "bbox": raw, **filters})["result"]  # fmt: skip
    want = expected(cases, view=view, **filters)
    assert sum(f["properties"]["count"] for f in body["features"]) == len(want)
    assert body["summary"]["count_total"] == len(want)
    per_cell(body["features"], want)
    assert heat["total"] == len(want)


def lattice_view(cases) -> shapely.Polygon:
    """A lon/lat box around the planted lattice (the first eight cases) with a margin."""
    west, south = min(c.lon for c in cases[:8]), min(c.lat for c in cases[:8])
    return shapely.box(west - 0.003, south - 0.003, west + 0.02, south + 0.01)


def test_the_window_is_counted_in_the_city_clock(hot_db):
    engine, cases, _ = hot_db
    view = lattice_view(cases)
    raw = ",".join(map(str, view.bounds))
    with engine.connect() as conn:
        day = hot(conn, ADMIN, bbox=raw, size="400")
        before = hot(
            conn, ADMIN, bbox=raw, size="400", **{"from": "2026-03-01", "to": "2026-03-01"}
        )
        after = hot(conn, ADMIN, bbox=raw, size="400", **{"from": "2026-03-03", "to": "2026-03-03"})
    want = expected(cases, view=view)
    assert any(c.at.day == 1 for c in want)  # 17:00 UTC on 1 March is 2 March in the city
    assert day["summary"]["count_total"] == len(want) >= 8
    assert (
        before["summary"]["count_total"]
        == len(expected(cases, view=view, day=date(2026, 3, 1)))
        == 0
    )
    assert (
        after["summary"]["count_total"]
        == len(expected(cases, view=view, day=date(2026, 3, 3)))
        == 1
    )
    assert day["summary"]["crs"] == "EPSG:4548"  # Gauss-Krüger CM 117°E for 济南


def test_a_bbox_extent_is_covered_by_hexagons_and_cut_to_the_users_areas(hot_db):
    engine, cases, lixia = hot_db
    view = shapely.box(*lixia.bounds)  # 历下区's bounding box: it reaches into other districts
    raw = ",".join(map(str, view.bounds))
    with engine.connect() as conn:
        everything = hot(conn, ADMIN, bbox=raw, size="300")
        mine = hot(conn, LIXIA_USER, bbox=raw, size="300")
    cells = shapely.union_all([shape(f["geometry"]) for f in everything["features"]])
    uncovered = gpd.GeoSeries([view.difference(cells)], crs=4326).to_crs(4548)
    assert uncovered.area.sum() < 1.0  # m²: the bbox is covered
    assert all(shape(f["geometry"]).intersects(view) for f in everything["features"])
    assert everything["summary"]["count_total"] == len(expected(cases, view=view)) == 10
    per_cell(everything["features"], expected(cases, view=view))
    # the district user's cells all meet 历下区, fewer than the bbox holds; of the two cases outside
    # 历下区 one is in none of them, the other in a cell on the edge, which must not count it
    assert 0 < len(mine["features"]) < len(everything["features"])
    assert all(shape(f["geometry"]).intersects(lixia) for f in mine["features"])
    edge = next(shapely.Point(c.lon, c.lat) for c in cases if c.code == "HOT0102")
    assert any(shape(f["geometry"]).covers(edge) for f in mine["features"])
    assert mine["summary"]["count_total"] == len(expected(cases, view=view, area=lixia)) == 8
    per_cell(mine["features"], expected(cases, view=view, area=lixia))
    with engine.connect() as conn, pytest.raises(Forbidden):
        hot(conn, LIXIA_USER, bbox="116.60,36.50,116.70,36.55")  # 槐荫/市中, not 历下


def test_boston_is_measured_in_utm_zone_19n(hot_db):
    assert metric_epsg(-71.0589, 42.3601) == 32619
    assert CRS.from_epsg(metric_epsg(-71.0589, 42.3601)).name == "WGS 84 / UTM zone 19N"
    engine, _, _ = hot_db
    with engine.connect() as conn:
        body = hot(conn, ADMIN, bbox="-71.10,42.33,-71.05,42.37", size="250")
    assert body["summary"]["crs"] == "EPSG:32619"
    hexes = [shape(f["geometry"]) for f in body["features"]]
    first = gpd.GeoSeries(hexes[:1], crs=4326).to_crs(32619).iloc[0]
    assert first.length == pytest.approx(6 * 250, rel=1e-6)  # regular hexagons of 250 m edges
    assert all(f["properties"]["count"] == 0 for f in body["features"])  # no case in Boston here


def hex_reference(conn, bounds: tuple[float, float, float, float], srid: int, size: float) -> int:
    """How many hexagons PostGIS lays over metric bounds (counted, not estimated)."""
    return conn.execute(text("SELECT count(*) FROM ST_HexagonGrid(:s, ST_MakeEnvelope(:a, :b, :c, "
                             ":d, :srid))"), {"s": size, "a": bounds[0], "b": bounds[1],
                             "c": bounds[2], "d": bounds[3], "srid": srid}).scalar()  # fmt: skip


def test_too_many_hexagons_is_a_400_that_asks_for_bigger_ones(hot_db):
    engine, _, _ = hot_db
    with engine.connect() as conn:
        big = conn.execute(text("SELECT code, ST_X(ST_Centroid(geom)) FROM admin_area WHERE "
                                "level = 'district' ORDER BY ST_Area(geom) DESC LIMIT 1")).one()  # fmt: skip
        srid = 4534 + (3 * round(big[1] / 3) - 75) // 3  # its Gauss-Krüger zone, by hand
        bounds = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                   "(SELECT ST_Extent(ST_Transform(geom, :srid)) e FROM admin_area "
                                   "WHERE code = :c) x"), {"srid": srid, "c": big[0]}).one()  # fmt: skip
        width, height = bounds[2] - bounds[0], bounds[3] - bounds[1]
        many = math.sqrt(width * height / (2.6 * 1.3 * MAX_CELLS))  # about 1.3 × the limit
        assert hex_reference(conn, bounds, srid, many) > 1.1 * MAX_CELLS
        with pytest.raises(BadRequest, match="更大的六边形"):
            hot(conn, ADMIN, area=big[0], size=f"{many:.1f}")
        fewer = math.sqrt(width * height / (2.6 * 0.9 * MAX_CELLS))  # about 0.9 × the limit
        assert 0.8 * MAX_CELLS < hex_reference(conn, bounds, srid, fewer) < MAX_CELLS
        area = Area(big[0], "", "district", srid, shapely.box(*bounds))
        check_cells(area, "hex", fewer)  # allowed: no exception
        with pytest.raises(BadRequest):  # the whole province in 500 m hexagons
            hot(conn, ADMIN, size="500")


def test_bad_extents_and_filters_are_400(client, role_tokens):
    headers = auth(role_tokens, "planner")
    for bad in ({"bbox": "117,36"}, {"bbox": "117.2,36.6,117.1,36.7"},
                {"bbox": "110,30,117,36"}, {"bbox": "117,36.6,117.1,36.7", "area": "370102"},
                {"source": "微博"}, {"status": "已完成"}, {"cells": "hex", "size": "20"}):  # fmt: skip
        response = run(client, headers, **bad)
        assert response.status_code == 400, bad
        assert response.get_json()["error"]
