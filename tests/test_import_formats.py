"""Each file format and CRS path, the modes and the JSON report, against the real PostGIS."""

from __future__ import annotations

import gzip
import json

import geopandas as gpd
import pyogrio
import pytest
from pyproj import Transformer
from shapely.geometry import Point, Polygon

from geodata import crs as c
from tests import import_helpers
from tests.import_helpers import (
    LIXIA,
    camera_rows,
    cli,
    codes,
    count,
    run,
    scalar,
    write_csv,
)
from tests.test_import_crs import metres

import_url, db = import_helpers.import_url, import_helpers.db  # module fixtures

GK = Transformer.from_crs(4490, 4548, always_xy=True)


def stored_point(engine, table: str, code: str) -> tuple[float, float]:
    """(lon, lat) stored for a code."""
    wkt = scalar(engine, f"SELECT ST_AsText(geom) FROM {table} WHERE code = :c", c=code)
    x, y = wkt[wkt.index("(") + 1 : -1].split()
    return float(x), float(y)


def test_geojson_with_crs_member(db, tmp_path):
    x, y = GK.transform(*LIXIA)
    path = tmp_path / "cams.geojson"
    path.write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4548"}},
        "features": [{"type": "Feature", "properties": {"code": "GJ001", "name": "历下一号",
                                                         "direction_deg": 90},
                      "geometry": {"type": "Point", "coordinates": [x, y]}}],
    }), encoding="utf-8")  # fmt: skip
    report = run(db, "camera", path)
    assert (report.loaded, report.rejected) == (1, 0), report.summary()
    assert "4548" in report.crs
    assert metres(*stored_point(db, "camera", "GJ001"), *LIXIA) < 1


def test_shapefile_gbk_with_cpg_and_encoding_option(db, tmp_path):
    frame = gpd.GeoDataFrame({"code": ["HW1", "HW2"], "name": ["泉城路公厕", "大明湖公厕"],
                              "kind": ["公共厕所", "公共厕所"]},
                             geometry=[Point(*LIXIA), Point(LIXIA[0] + 0.001, LIXIA[1])],
                             crs=4490)  # fmt: skip
    shp = tmp_path / "toilets.shp"
    pyogrio.write_dataframe(frame, shp, encoding="GBK")
    assert "GBK" in (tmp_path / "toilets.cpg").read_text().upper()
    assert "泉城路".encode("gbk") in (tmp_path / "toilets.dbf").read_bytes()
    report = run(db, "sanitation_facility", shp)
    assert report.loaded == 2, report.summary()
    assert scalar(db, "SELECT name FROM sanitation_facility WHERE code = 'HW1'") == "泉城路公厕"
    (tmp_path / "toilets.cpg").unlink()  # as many surveyors' files come: GBK without .cpg
    report = run(db, "sanitation_facility", shp, encoding="gbk", mode="upsert",
                 maps=["name=name"])  # fmt: skip
    assert report.loaded == 2
    assert scalar(db, "SELECT name FROM sanitation_facility WHERE code = 'HW2'") == "大明湖公厕"


def test_geopackage_two_layers_needs_sublayer(db, tmp_path, import_url):
    gpkg = tmp_path / "city.gpkg"
    x, y = GK.transform(*LIXIA)
    pumps = gpd.GeoDataFrame({"code": ["BZ1"], "name": ["历下泵站"], "kind": ["雨水"]},
                             geometry=[Point(x, y)], crs=4548)  # fmt: skip
    wells = gpd.GeoDataFrame({"code": ["YS1"], "kind": ["检查井"], "pipe_kind": ["雨水"]},
                             geometry=[Point(x + 10, y)], crs=4548)  # fmt: skip
    pyogrio.write_dataframe(pumps, gpkg, layer="pumps")
    pyogrio.write_dataframe(wells, gpkg, layer="wells", append=True)
    result = cli(import_url, "import", "pump_station", str(gpkg))
    assert result.returncode == 2
    assert "--sublayer" in result.stderr and "pumps" in result.stderr
    report = run(db, "drain_well", gpkg, sublayer="wells")
    assert report.loaded == 1 and "4548" in report.crs
    assert metres(*stored_point(db, "drain_well", "YS1"), *LIXIA) == pytest.approx(10, abs=0.5)


def test_csv_lon_lat_detected_case_insensitively_and_gzipped(db, tmp_path):
    rows = "\n".join(["Code,Name,Longitude,LAT", *camera_rows(3, start=100)]) + "\n"
    path = tmp_path / "cams.csv.gz"
    path.write_bytes(gzip.compress(rows.encode("utf-8")))
    report = run(db, "camera", path, maps=["Code=code", "Name=name"])
    assert report.loaded == 3, report.summary()
    assert scalar(db, "SELECT name FROM camera WHERE code = 'CAM000101'") == "摄像头101"


def test_csv_wkt_column(db, tmp_path):
    lon, lat = LIXIA
    square = Polygon(
        [(lon, lat), (lon + 0.001, lat), (lon + 0.001, lat + 0.001), (lon, lat + 0.001)]
    )
    path = write_csv(
        tmp_path / "parks.csv", "code,name,kind,wkt", [f'LY1,泉城公园,G11,"{square.wkt}"']
    )
    report = run(db, "green_space", path)
    assert report.loaded == 1, report.summary()
    assert (
        scalar(db, "SELECT GeometryType(geom) FROM green_space WHERE code = 'LY1'")
        == "MULTIPOLYGON"
    )
    assert 9_000 < scalar(db, "SELECT area_m2 FROM green_space WHERE code = 'LY1'") < 11_000


@pytest.mark.parametrize("kind", ["gcj02", "bd09", "gk117", "4548", "EPSG:4326"])
def test_csv_crs_option(db, tmp_path, kind):
    lon, lat = LIXIA[0] + 0.01, LIXIA[1] + 0.01
    forward = {"gcj02": c.wgs84_to_gcj02, "bd09": c.wgs84_to_bd09, "gk117": GK.transform,
               "4548": GK.transform, "EPSG:4326": lambda a, b: (a, b)}[kind]  # fmt: skip
    x, y = (float(v) for v in forward(lon, lat))
    code = "CRS" + kind.replace(":", "")
    path = write_csv(tmp_path / "p.csv", "code,x,y", [f"{code},{x:.6f},{y:.6f}"])
    report = run(db, "camera", path, crs=kind)
    assert report.loaded == 1, report.summary()
    assert metres(*stored_point(db, "camera", code), lon, lat) < 1


def test_upsert_replace_and_append_existing_key(db, tmp_path):
    first = write_csv(tmp_path / "a.csv", "code,name,capacity,lot_type,lon,lat",
                      ["TC1,甲,100,路外,117.07,36.65", "TC2,乙,50,路内,117.071,36.65"])  # fmt: skip
    assert run(db, "parking_lot", first).loaded == 2
    again = run(db, "parking_lot", first)
    assert again.loaded == 0 and codes(again) == {"key_exists": 2}
    second = write_csv(tmp_path / "b.csv", "code,name,capacity,lot_type,lon,lat",
                       ["TC2,乙改,80,路内,117.071,36.65", "TC3,丙,30,地下,117.072,36.65"])  # fmt: skip
    assert run(db, "parking_lot", second, mode="upsert").loaded == 2
    assert count(db, "parking_lot") == 3
    assert scalar(db, "SELECT capacity FROM parking_lot WHERE code = 'TC2'") == 80
    assert run(db, "parking_lot", second, mode="replace").loaded == 2
    assert count(db, "parking_lot") == 2
    assert count(db, "parking_lot", "code = 'TC1'") == 0


def test_upsert_needs_a_natural_key(db, tmp_path):
    path = write_csv(tmp_path / "w.csv", "name,lon,lat", ["低洼点,117.07,36.65"])
    with pytest.raises(ValueError, match="自然键"):
        run(db, "waterlogging_point", path, mode="upsert")


def test_report_json_and_exit_status(import_url, tmp_path):
    path = write_csv(tmp_path / "r.csv", "code,name,lon,lat",
                     ["RP1,好,117.07,36.65", "RP2,无坐标,,", "RP1,重复,117.08,36.65"])  # fmt: skip
    out = tmp_path / "report.json"
    result = cli(import_url, "import", "camera", str(path), "--report", str(out))
    assert result.returncode == 1, result.stderr
    assert "读取 3 行，导入 1 行，拒绝 2 行" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["read"], report["loaded"], report["rejected"]) == (3, 1, 2)
    assert {(r["row"], r["key"], r["code"]) for r in report["rows"]} == {
        (2, "RP2", "empty_geometry"), (3, "RP1", "duplicate_key")}  # fmt: skip
    assert report["reasons"]["empty_geometry"]["reason"] == "坐标或几何为空"


def test_unknown_target_field_is_a_usage_error(import_url, tmp_path):
    path = write_csv(tmp_path / "u.csv", "code,lon,lat", ["U1,117.07,36.65"])
    result = cli(import_url, "import", "camera", str(path), "--map", "code=colour")
    assert result.returncode == 2
    assert "没有字段：colour" in result.stderr and "Traceback" not in result.stderr


def test_mapping_file_constants_and_value_maps(db, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "layer: road\nfields: {name: NAME}\nconstants: {width_m: 12}\n"
        "values: {road_class: {primary: 主干路, residential: 街巷}}\n"
        "geometry: {wkt: WKT}\n", encoding="utf-8")  # fmt: skip
    path = write_csv(tmp_path / "roads.csv", "NAME,road_class,WKT",
                     ['经十路,primary,"LINESTRING (117.0 36.65, 117.1 36.65)"'])  # fmt: skip
    report = run(db, "road", path, mapping_file=mapping)
    assert report.loaded == 1, report.summary()
    row = scalar(
        db, "SELECT road_class || width_m || GeometryType(geom) FROM road WHERE name = '经十路'"
    )
    assert row == "主干路12MULTILINESTRING"


def test_a_geopackage_point_with_a_nan_coordinate_is_a_rejected_row(db, tmp_path):
    gpkg = tmp_path / "nan.gpkg"
    x, y = GK.transform(*LIXIA)
    pumps = gpd.GeoDataFrame({"code": ["BZ2", "BZ3"], "name": ["甲泵站", "乙泵站"],
                              "kind": ["雨水", "雨水"]},
                             geometry=[Point(x, y), Point(float("nan"), y)],
                             crs=4548)  # fmt: skip
    pyogrio.write_dataframe(pumps, gpkg)
    report = run(db, "pump_station", gpkg)
    assert report.loaded == 1 and codes(report) == {"invalid_geometry": 1}
    assert [(i.row, i.key) for i in report.issues] == [(2, "BZ3")]
    assert count(db, "pump_station", "code IN ('BZ2', 'BZ3')") == 1
