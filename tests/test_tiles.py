"""Vector tiles from the real server: counts against independent SQL, caps, errors, caching."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import mapbox_vector_tile
import pytest
import requests
from sqlalchemy import text

from layers.aggregates import (
    aggregate_zooms,
    aggregated_layers,
    is_current,
    refresh_tables,
    render_aggregate_tile,
)
from layers.check import RegistryMismatch, check_registry
from layers.filters import parse_filters
from layers.registry import REGISTRY, Field, Layer
from layers.sql import MAX_TILE_FEATURES, data_version, render_tile
from settings import PROJECT_ROOT, Settings
from tests.conftest import auth, http, tile_of


@pytest.fixture(scope="module")
def centre(demo_engine) -> tuple[float, float]:
    """A point in the middle of the demo city."""
    with demo_engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) c FROM unit_grid) x"
        )).one())  # fmt: skip


def fetch(base: str, layer: str, z: int, x: int, y: int, **params) -> requests.Response:
    """GET one tile."""
    return http.get(f"{base}/tiles/{layer}/{z}/{x}/{y}.pbf", params=params, timeout=60)


def decode(resp: requests.Response, layer: str) -> list[dict]:
    """Features of one layer in an MVT response (empty for 204)."""
    if resp.status_code == 204:
        return []
    return mapbox_vector_tile.decode(resp.content).get(layer, {}).get("features", [])


def sql_count(engine, where: str, z: int, x: int, y: int, table: str = "component") -> int:
    """Independent count: transform the points (not the envelope) and test the buffered tile."""
    with engine.connect() as conn:
        return conn.execute(text(
            f"SELECT count(*) FROM {table} WHERE {where} AND ST_Intersects(ST_Transform(geom, 3857), "
            "ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))"), {"z": z, "x": x, "y": y}).scalar()  # fmt: skip


def test_detail_tile_matches_sql_count(live_server, demo_engine, centre):
    x, y = tile_of(*centre, 16)
    features = decode(fetch(live_server, "component_01", 16, x, y), "component_01")
    expected = sql_count(demo_engine, "left(class_code, 2) = '01'", 16, x, y)
    assert 0 < len(features) == expected
    assert {"code", "status", "class_code"} <= set(features[0]["properties"])


def test_filtered_tile_matches_sql_count(live_server, demo_engine, centre):
    x, y = tile_of(*centre, 16)
    resp = fetch(live_server, "component_01", 16, x, y, status="完好", class_code="0118,0103")
    expected = sql_count(
        demo_engine, "status = '完好' AND class_code IN ('0118', '0103')", 16, x, y
    )
    assert len(decode(resp, "component_01")) == expected > 0


def test_low_zoom_aggregates_counts(live_server, demo_engine, centre):
    for z in (11, 13):
        x, y = tile_of(*centre, z)
        features = decode(fetch(live_server, "component_04", z, x, y), "component_04")
        assert 0 < len(features) <= MAX_TILE_FEATURES
        assert all(set(f["properties"]) == {"count"} for f in features)
        total = sum(f["properties"]["count"] for f in features)
        assert total == sql_count(demo_engine, "left(class_code, 2) = '04'", z, x, y)


def tile_cells(data: bytes, layer: str) -> list[dict]:
    """Properties of the features of a tile that fell back to counts (all must be cells)."""
    features = decode_bytes(data, layer)
    assert features and all(set(f["properties"]) == {"count", "aggregated"} for f in features)
    assert all(f["properties"]["aggregated"] is True for f in features)
    return [f["properties"] for f in features]


@pytest.mark.parametrize(("layer_id", "args", "where"), [
    ("component_01", {}, "left(class_code, 2) = '01'"),
    ("component_01", {"status": "完好"}, "left(class_code, 2) = '01' AND status = '完好'"),
    ("case", {}, "true"),
])  # fmt: skip
def test_a_detail_tile_over_the_cap_sends_counts(demo_engine, centre, layer_id, args, where):
    layer = REGISTRY[layer_id]
    z = layer.detail_zoom
    x, y = tile_of(*centre, z)
    table = layer.tables[0]
    expected = sql_count(demo_engine, where, z, x, y, table)
    assert expected > 10
    filters = parse_filters(layer, args, ignore=set())
    with demo_engine.connect() as conn:
        at_cap = decode_bytes(render_tile(conn, layer, z, x, y, filters, cap=expected), layer_id)
        over = render_tile(conn, layer, z, x, y, filters, cap=expected - 1)
        small = render_tile(conn, layer, z, x, y, filters, cap=10)
    assert len(at_cap) == expected  # exactly at the cap: every object, as itself
    assert all("count" not in f["properties"] for f in at_cap)
    for data in (over, small):  # one more than the cap: counts per cell, none lost
        assert sum(c["count"] for c in tile_cells(data, layer_id)) == expected


@pytest.mark.parametrize(("layer_id", "z"), [("unit_grid", 15), ("road", 13)])
def test_a_line_or_polygon_tile_over_the_cap_counts_points_on_surface(demo_engine, centre,
                                                                      layer_id, z):  # fmt: skip
    layer = REGISTRY[layer_id]
    x, y = tile_of(*centre, z)
    with demo_engine.connect() as conn:
        expected = conn.execute(text(
            f"SELECT count(*) FROM {layer.source} WHERE ST_Intersects(ST_Transform("
            "ST_PointOnSurface(geom), 3857), ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))"),
            {"z": z, "x": x, "y": y}).scalar()  # fmt: skip
        raw = decode_bytes(render_tile(conn, layer, z, x, y, []), layer_id)
        over = render_tile(conn, layer, z, x, y, [], cap=len(raw) - 1)
    assert expected > 1 and len(raw) >= expected
    assert all("count" not in f["properties"] for f in raw)
    assert sum(c["count"] for c in tile_cells(over, layer_id)) == expected


def test_empty_tile_is_204(live_server):
    assert fetch(live_server, "component_01", 14, 0, 0).status_code == 204


@pytest.mark.parametrize(("path", "status"), [
    ("/tiles/nosuch/10/0/0.pbf", 404),
    ("/tiles/case/23/0/0.pbf", 400),
    ("/tiles/case/-1/0/0.pbf", 400),
    ("/tiles/case/3/8/0.pbf", 400),
    ("/tiles/case/3/0/-2.pbf", 400),
    ("/tiles/case/3/a/0.pbf", 404),
    ("/tiles/case/10/0/0.pbf?colour=red", 400),
    ("/tiles/case/10/0/0.pbf?status=maybe", 400),
    ("/tiles/case/10/0/0.pbf?reported_at_from=yesterday", 400),
    ("/tiles/case/10/0/0.pbf?description=x", 400),
    ("/tiles/case/10/0/0.pbf?status=1%27%3B%20DROP%20TABLE%20component%3B--", 400),
])  # fmt: skip
def test_bad_requests(live_server, path, status):
    resp = http.get(live_server + path, timeout=30)
    assert resp.status_code == status
    assert resp.json()["error"]


def test_etag_304_and_gzip(live_server, centre):
    x, y = tile_of(*centre, 15)
    first = fetch(live_server, "case", 15, x, y)
    assert first.status_code == 200 and first.headers["ETag"]
    assert "max-age" in first.headers["Cache-Control"]
    again = http.get(f"{live_server}/tiles/case/15/{x}/{y}.pbf",
                         headers={"If-None-Match": first.headers["ETag"]}, timeout=30)  # fmt: skip
    assert again.status_code == 304 and not again.content
    zipped = http.get(f"{live_server}/tiles/case/15/{x}/{y}.pbf",
                          headers={"Accept-Encoding": "gzip"}, timeout=30)  # fmt: skip
    assert zipped.headers.get("Content-Encoding") == "gzip"
    assert zipped.content == first.content  # requests decompresses


def test_a_revalidation_of_unchanged_data_renders_nothing(live_server, demo_database_url,
                                                          role_tokens, centre):  # fmt: skip
    from api.tiles import tile_cache
    from app import create_app  # importing app builds its module-level app: only when needed

    x, y = tile_of(*centre, 15)
    etag = fetch(live_server, "case", 15, x, y).headers["ETag"]
    fresh = create_app(Settings(DATABASE_URL=demo_database_url))  # a new worker: nothing cached
    client = fresh.server.test_client()
    with fresh.server.app_context():
        rendered = tile_cache()
    path = f"/tiles/case/15/{x}/{y}.pbf"
    again = client.get(path, headers={**auth(role_tokens, "admin"), "If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    assert not rendered.items  # answered from the data version alone
    assert client.get(path, headers=auth(role_tokens, "admin")).status_code == 200
    assert len(rendered.items) == 1


def test_import_invalidates_cached_tiles(live_server, demo_engine, demo_database_url, centre,
                                         tmp_path):  # fmt: skip
    x, y = tile_of(*centre, 16)
    before = fetch(live_server, "component_02", 16, x, y)
    n_before = len(decode(before, "component_02"))
    lon, lat = centre
    path = tmp_path / "one.csv"
    path.write_text(f"code,class_code,lon,lat\n3701020209900001,0209,{lon},{lat}\n", "utf-8")
    env = {"DATABASE_URL": demo_database_url, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "loaders", "import", "component", str(path)],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    with demo_engine.connect() as conn:  # imports are audited
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'import' "
                                 "AND target = 'component'")).scalar() >= 1  # fmt: skip
    try:
        after = fetch(live_server, "component_02", 16, x, y)
        assert after.headers["ETag"] != before.headers["ETag"]
        assert len(decode(after, "component_02")) == n_before + 1
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("DELETE FROM component WHERE code = '3701020209900001'"))
            refresh_tables(conn, {"component"})


def test_registry_check_fails_loudly(demo_engine):
    check_registry(demo_engine)  # the real registry matches the schema
    bad = Layer(id="bad", title="坏", group="基础", source="component", geometry="point",
                fields=(Field("no_such_column", "无"),), style=REGISTRY["case"].style)  # fmt: skip
    with pytest.raises(RegistryMismatch, match="no_such_column"):
        check_registry(demo_engine, (REGISTRY["case"], bad))


def with_field(layer: Layer, name: str, **changes) -> Layer:
    """The layer with one field changed."""
    fields = tuple(replace(f, **changes) if f.name == name else f for f in layer.fields)
    return replace(layer, fields=fields)


def test_registry_check_catches_a_wrong_kind_and_drifted_code_lists(demo_engine):
    case = REGISTRY["case"]
    with pytest.raises(RegistryMismatch, match=r"case\.code: 注册为 int"):
        check_registry(demo_engine, (with_field(case, "code", kind="int"),))
    missing_status = with_field(case, "status", values=case.field("status").values[:-1])
    with pytest.raises(RegistryMismatch, match="已作废"):
        check_registry(demo_engine, (missing_status,))
    extra_risk = with_field(
        REGISTRY["waterlogging_point"], "risk_level", values=("低", "中", "高", "极高")
    )
    with pytest.raises(RegistryMismatch, match="极高"):
        check_registry(demo_engine, (extra_risk,))
    unknown_class = with_field(case, "event_class_code", values=("0101", "9999"))
    with pytest.raises(RegistryMismatch, match="9999"):
        check_registry(demo_engine, (unknown_class,))
    with pytest.raises(RegistryMismatch, match="热力概览只适用于案件图层"):
        check_registry(demo_engine, (replace(REGISTRY["component_04"], overview="heat"),))
    with pytest.raises(RegistryMismatch, match="overview dots"):
        check_registry(demo_engine, (replace(case, overview="dots"),))


def decode_bytes(data: bytes, layer: str) -> list[dict]:
    """Features of one layer in MVT bytes (empty for an empty tile)."""
    return mapbox_vector_tile.decode(data).get(layer, {}).get("features", []) if data else []


def counts_of(features: list[dict]) -> list[int]:
    """The sorted cell counts of an aggregated tile."""
    return sorted(f["properties"]["count"] for f in features)


@pytest.mark.parametrize("layer_id", ["component_04", "case"])
def test_stored_counts_equal_live_counts(demo_engine, centre, layer_id):
    layer = REGISTRY[layer_id]
    with demo_engine.connect() as conn:
        assert is_current(conn, layer, data_version(conn, layer))
        for z in aggregate_zooms(layer):
            x, y = tile_of(*centre, z)
            stored = decode_bytes(render_aggregate_tile(conn, layer, z, x, y), layer_id)
            live = decode_bytes(render_tile(conn, layer, z, x, y, []), layer_id)
            assert 0 < len(stored) <= MAX_TILE_FEATURES
            assert counts_of(stored) == counts_of(live), z


def test_stored_totals_equal_independent_counts(demo_engine):
    with demo_engine.connect() as conn:
        for layer in aggregated_layers():
            where = layer.where or "true"
            expected = conn.execute(text(f"SELECT count(*) FROM {layer.tables[0]} WHERE {where}")).scalar()  # fmt: skip
            totals = conn.execute(text(
                "SELECT z, sum(n) FROM tile_aggregate WHERE layer = :l GROUP BY z"), {"l": layer.id}).all()  # fmt: skip
            assert {z for z, _ in totals} == set(aggregate_zooms(layer)) or expected == 0
            assert all(n == expected for _, n in totals), layer.id


def test_stored_cells_per_tile_stay_under_the_cap(demo_engine):
    with demo_engine.connect() as conn:
        most = conn.execute(text(
            "SELECT max(n) FROM (SELECT count(*) n FROM tile_aggregate "
            "GROUP BY layer, z, floor(cx / 64.0), floor(cy / 64.0)) t")).scalar()  # fmt: skip
    assert 0 < most <= 64 * 64
    assert MAX_TILE_FEATURES > (64 + 2) ** 2  # with the one-cell buffer on each side


def test_server_serves_stored_counts(live_server, demo_engine, centre):
    layer = REGISTRY["component_04"]
    z = aggregate_zooms(layer)[-1]
    x, y = tile_of(*centre, z)
    with demo_engine.connect() as conn:
        stored = render_aggregate_tile(conn, layer, z, x, y)
    assert fetch(live_server, "component_04", z, x, y).content == stored
    filtered = decode(fetch(live_server, "component_04", z, x, y, status="完好"), "component_04")
    total = sum(f["properties"]["count"] for f in filtered)
    assert total == sql_count(
        demo_engine, "left(class_code, 2) = '04' AND status = '完好'", z, x, y
    )


def test_stale_counts_are_not_served(live_server, demo_engine, demo_database_url, centre,
                                     tmp_path):  # fmt: skip
    layer = REGISTRY["component_03"]
    z = aggregate_zooms(layer)[-1]
    x, y = tile_of(*centre, z)
    where = "left(class_code, 2) = '03'"
    lon, lat = centre
    try:
        with demo_engine.begin() as conn:  # a write that does not rebuild the counts
            conn.execute(text(
                "INSERT INTO component (code, class_code, status, geom) VALUES "
                "('3701020301900001', '0301', '完好', ST_SetSRID(ST_MakePoint(:x, :y), 4490))"),
                {"x": lon, "y": lat})  # fmt: skip
        with demo_engine.connect() as conn:
            assert not is_current(conn, layer, data_version(conn, layer))
        served = decode(fetch(live_server, "component_03", z, x, y), "component_03")
        assert sum(f["properties"]["count"] for f in served) == sql_count(
            demo_engine, where, z, x, y
        )
        path = tmp_path / "one.csv"
        path.write_text(f"code,class_code,lon,lat\n3701020301900002,0301,{lon},{lat}\n", "utf-8")
        env = {"DATABASE_URL": demo_database_url, "PATH": "/usr/bin:/bin"}
        result = subprocess.run([sys.executable, "-m", "loaders", "import", "component", str(path)],
                                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        with demo_engine.connect() as conn:
            assert is_current(conn, layer, data_version(conn, layer))
            stored = render_aggregate_tile(conn, layer, z, x, y)
        served = fetch(live_server, "component_03", z, x, y)
        assert served.content == stored
        assert sum(f["properties"]["count"] for f in decode(served, "component_03")) == sql_count(
            demo_engine, where, z, x, y)  # fmt: skip
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("DELETE FROM component WHERE code LIKE '370102030190000_'"))
            refresh_tables(conn, {"component"})


def test_area_filter_keeps_objects_inside_the_area(live_server, demo_engine, centre):
    x, y = tile_of(*centre, 15)
    with demo_engine.connect() as conn:
        street = conn.execute(text(
            "SELECT a.code FROM admin_area a WHERE a.level = 'street' AND ST_Intersects(a.geom, "
            "ST_Transform(ST_TileEnvelope(15, :x, :y), 4490)) ORDER BY a.code LIMIT 1"),
            {"x": x, "y": y}).scalar()  # fmt: skip
    features = decode(fetch(live_server, "component_01", 15, x, y, area=street), "component_01")
    where = ("left(class_code, 2) = '01' AND ST_Intersects(geom, "
             f"(SELECT geom FROM admin_area WHERE code = '{street}'))")  # fmt: skip
    total = sum(f["properties"].get("count", 1) for f in features)  # z15 is aggregated
    assert total == sql_count(demo_engine, where, 15, x, y) > 0
    assert fetch(live_server, "component_01", 15, x, y, area="12").status_code == 400
