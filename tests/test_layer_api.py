"""The JSON API on the demo city: layers, features, archives, geocoding, reverse, statistics."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import text

from tests.conftest import http


def get(base: str, path: str, **params) -> requests.Response:
    """GET a JSON endpoint."""
    return http.get(base + path, params=params, timeout=60)


def one(engine, sql: str, **params):
    """First row of a query."""
    with engine.connect() as conn:
        return conn.execute(text(sql), params).mappings().first()


def test_layers_lists_the_registry(live_server):
    body = get(live_server, "/api/layers").json()
    ids = {layer["id"] for layer in body["layers"]}
    assert {"district", "unit_grid", "component_01", "case", "parking", "green_space"} <= ids
    assert "camera" in ids  # the test session is an admin; roles are tested in test_access.py
    groups = {layer["group"] for layer in body["layers"]}
    assert groups == {"基础", "部件", "排水", "环卫", "停车", "视频", "园林", "案件"}
    case = next(x for x in body["layers"] if x["id"] == "case")
    assert case["legend"] and case["tiles"] == "/tiles/case/{z}/{x}/{y}.pbf"


def test_features_in_bbox(live_server, demo_engine):
    bbox = one(demo_engine, "SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 "
                            "FROM (SELECT ST_Expand(ST_Centroid(ST_Extent(geom)), 0.004) e FROM unit_grid) s")  # fmt: skip
    box = f"{bbox['x0']},{bbox['y0']},{bbox['x1']},{bbox['y1']}"
    expected = one(demo_engine, "SELECT count(*) n FROM case_record WHERE status = '已结案' AND "
                                "geom && ST_MakeEnvelope(:a, :b, :c, :d, 4490)",
                   a=bbox["x0"], b=bbox["y0"], c=bbox["x1"], d=bbox["y1"])["n"]  # fmt: skip
    body = get(live_server, "/api/features/case", bbox=box, limit=5, status="已结案").json()
    assert body["numberMatched"] == expected > 5
    assert body["numberReturned"] == len(body["features"]) == 5
    lon, lat = body["features"][0]["geometry"]["coordinates"]
    assert 116 < lon < 118 and 36 < lat < 37


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "20000"}, {"bbox": "1,2,3"},
                                    {"bbox": "3,2,1,4"}, {"bbox": "a,b,c,d"}, {"nope": "1"}])  # fmt: skip
def test_features_bad_parameters(live_server, params):
    resp = get(live_server, "/api/features/case", **params)
    assert resp.status_code == 400 and resp.json()["error"]


def test_component_archive_with_related_cases(live_server, demo_engine):
    row = one(demo_engine, """SELECT c.id, c.code, k.code AS case_code FROM component c
                              JOIN case_record k ON k.component_id = c.id
                              WHERE left(c.class_code, 2) = '01' ORDER BY c.id LIMIT 1""")  # fmt: skip
    body = get(live_server, f"/api/objects/component_01/{row['id']}").json()
    assert body["attributes"]["code"] == row["code"]
    assert body["place"]["grid_code"] and body["place"]["community_name"]
    assert body["owner"] and body["maintainer"]
    linked = [c for c in body["related_cases"] if c["linked"]]
    assert row["case_code"] in {c["code"] for c in linked}


def test_archive_errors(live_server, demo_engine):
    assert get(live_server, "/api/objects/component_01/999999999").status_code == 404
    other = one(demo_engine, "SELECT id FROM component WHERE left(class_code, 2) = '04' LIMIT 1")
    assert get(live_server, f"/api/objects/component_01/{other['id']}").status_code == 404
    assert get(live_server, "/api/objects/nolayer/1").status_code == 404


def test_geocode_partial_address(live_server, demo_engine):
    row = one(demo_engine, "SELECT road_name, door_number, address FROM geocode "
                           "WHERE kind = '门牌' AND door_number = '12号' ORDER BY id LIMIT 1")  # fmt: skip
    body = get(live_server, "/api/geocode", q=f"{row['road_name']} 12").json()
    first = body["results"][0]
    assert first["address"] == row["address"]
    assert {"lon", "lat", "grid_code"} <= set(first)


def test_geocode_misspelt_address(live_server, demo_engine):
    row = one(demo_engine, "SELECT address FROM geocode WHERE kind = '门牌' ORDER BY id LIMIT 1")
    address = row["address"]
    typo = address[:8] + ("甲" if address[8] != "甲" else "乙") + address[9:]
    results = get(live_server, "/api/geocode", q=typo).json()["results"]
    assert address in [r["address"] for r in results[:3]]


def test_geocode_bad_parameters(live_server):
    assert get(live_server, "/api/geocode").status_code == 400
    assert get(live_server, "/api/geocode", q="x" * 101).status_code == 400
    assert get(live_server, "/api/geocode", q="路", limit="0").status_code == 400


def test_reverse_inside_and_on_a_grid_boundary(live_server, demo_engine):
    pair = one(demo_engine, """
        SELECT a.code a, b.code b, ST_X(p) lon, ST_Y(p) lat FROM unit_grid a
        JOIN unit_grid b ON a.code < b.code AND a.community_code = b.community_code
         AND ST_Relate(a.geom, b.geom, 'F***1****'),
        LATERAL (SELECT ST_StartPoint(ST_LineMerge(ST_Intersection(a.geom, b.geom))) p) x  -- a shared vertex
        WHERE GeometryType(ST_LineMerge(ST_Intersection(a.geom, b.geom))) = 'LINESTRING'
        LIMIT 1""")  # fmt: skip
    body = get(live_server, "/api/reverse", lon=pair["lon"], lat=pair["lat"]).json()
    assert body["on_grid_boundary"] is True
    assert set(body["grids"]) >= {pair["a"], pair["b"]}
    assert body["grid_code"] == min(body["grids"])
    assert body["community"]["code"] == body["grid_code"][:12]
    assert body["district"]["code"] == "370102"
    assert body["nearest_address"]["distance_m"] < 200
    inside = one(demo_engine, "SELECT code, ST_X(ST_PointOnSurface(geom)) lon, "
                              "ST_Y(ST_PointOnSurface(geom)) lat FROM unit_grid LIMIT 1")  # fmt: skip
    body = get(live_server, "/api/reverse", lon=inside["lon"], lat=inside["lat"]).json()
    assert body["grid_code"] == inside["code"] and body["on_grid_boundary"] is False


@pytest.mark.parametrize("params", [{}, {"lon": "117"}, {"lon": "x", "lat": "36"},
                                    {"lon": "200", "lat": "36"}])  # fmt: skip
def test_reverse_bad_parameters(live_server, params):
    assert get(live_server, "/api/reverse", **params).status_code == 400


def test_stats_by_status_in_a_street(live_server, demo_engine):
    street = one(
        demo_engine, "SELECT code FROM admin_area WHERE level = 'street' ORDER BY code LIMIT 1"
    )
    body = get(live_server, "/api/stats/component_01", area=street["code"], by="status").json()
    with demo_engine.connect() as conn:
        expected = dict(conn.execute(text(
            "SELECT c.status, count(*) FROM component c JOIN admin_area a ON a.code = :s "
            "AND ST_Intersects(c.geom, a.geom) WHERE left(c.class_code, 2) = '01' GROUP BY 1"),
            {"s": street["code"]}).all())  # fmt: skip
    assert {g["value"]: g["count"] for g in body["groups"]} == expected
    assert body["total"] == sum(expected.values())


def test_stats_of_polygons_has_areas(live_server):
    body = get(live_server, "/api/stats/green_space", by="kind", area="370102").json()
    assert body["groups"] and all(g["area_m2"] > 0 for g in body["groups"])


@pytest.mark.parametrize(("path", "status"), [
    ("/api/stats/component_01", 400), ("/api/stats/component_01?by=code", 400),
    ("/api/stats/component_01?by=status&area=999999", 404),
    ("/api/stats/component_01?by=status&area=37;01", 400), ("/api/stats/nolayer?by=x", 404),
])  # fmt: skip
def test_stats_errors(live_server, path, status):
    assert http.get(live_server + path, timeout=30).status_code == status
