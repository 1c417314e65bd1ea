"""HTTP answers of the real server: data from PostGIS, JSON errors for bad parameters."""

from __future__ import annotations

from shapely.geometry import shape
from sqlalchemy import text

from tests.conftest import http


def test_district_geojson_matches_database(live_server, demo_engine):
    with demo_engine.connect() as conn:
        expected = conn.execute(text("SELECT count(*) FROM admin_area WHERE level='district'"))
        expected = expected.scalar()
    body = http.get(f"{live_server}/api/admin/district", timeout=30).json()
    assert body["type"] == "FeatureCollection"
    assert len(body["features"]) == expected == 136
    names = {f["properties"]["name"] for f in body["features"]}
    assert {"历下区", "市中区", "槐荫区"} <= names
    lon, lat = shape(body["features"][0]["geometry"]).representative_point().coords[0]
    assert 114 < lon < 123 and 34 < lat < 39  # lon, lat order inside Shandong


def test_districts_of_one_city(live_server):
    body = http.get(f"{live_server}/api/admin/district?parent=370100", timeout=30).json()
    codes = {f["properties"]["code"] for f in body["features"]}
    assert "370102" in codes and all(c.startswith("3701") for c in codes)


def test_bad_parameters_are_400_json(live_server):
    for path in ("/api/admin/planet", "/api/admin/district?simplify=abc",
                 "/api/admin/district?simplify=5", "/api/admin/district?parent=1;drop"):  # fmt: skip
        resp = http.get(live_server + path, timeout=10)
        assert resp.status_code == 400, path
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]
