"""Coordinate conversions: GCJ-02 / BD-09 against published pairs, Gauss-Krüger through pyproj."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from geodata import crs as c
from loaders.importer.run import ImportUsageError
from tests import import_helpers
from tests.import_helpers import LIXIA, camera_rows, cli, count, run, scalar, write_csv

import_url, db = import_helpers.import_url, import_helpers.db  # module fixtures


def metres(lon1, lat1, lon2, lat2) -> float:
    """Approximate ground distance between two lon/lat points."""
    dx = (lon2 - lon1) * 111_320 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, (lat2 - lat1) * 110_574)


# Published by the coordtransform library (wandergis/coordtransform, test/app.js) for 116.404, 39.915.
WGS_TO_GCJ = ((116.404, 39.915), (116.41024449916938, 39.91640428150164))
GCJ_TO_BD = ((116.404, 39.915), (116.41036949371029, 39.92133699351021))
BD_TO_GCJ = ((116.404, 39.915), (116.39762729119315, 39.90865673957631))


@pytest.mark.parametrize(("func", "pair"), [(c.wgs84_to_gcj02, WGS_TO_GCJ),
                                            (c.gcj02_to_bd09, GCJ_TO_BD),
                                            (c.bd09_to_gcj02, BD_TO_GCJ)])  # fmt: skip
def test_published_pairs(func, pair):
    (lon, lat), expected = pair
    assert metres(*func(lon, lat), *expected) < 0.01


# Published by eviltransform (googollee/eviltransform, python/test.py and go/transform_test.go):
# WGS84 → GCJ-02 in Shanghai, Shenzhen and Beijing, here as (lon, lat).
EVIL_WGS_TO_GCJ = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
]
# Published by gcoord (hujiulong/gcoord, test/unit/crs/GCJ02.spec.ts and BD09.spec.ts) for 123, 45.
GCOORD_GCJ_TO_WGS = ((123.0, 45.0), (122.99395597, 44.99804071))
GCOORD_GCJ_TO_BD = ((123.0, 45.0), (123.00636499, 45.00636899))
GCOORD_BD_TO_GCJ = ((123.0, 45.0), (122.99363304, 44.99365430))


@pytest.mark.parametrize("pair", [WGS_TO_GCJ, *EVIL_WGS_TO_GCJ])
def test_published_wgs84_gcj02_pairs_inverted(pair):
    (wlon, wlat), (glon, glat) = pair
    assert metres(*c.wgs84_to_gcj02(wlon, wlat), glon, glat) < 0.01
    assert metres(*c.gcj02_to_wgs84(glon, glat), wlon, wlat) < 1


def test_published_gcj02_to_wgs84_pair():
    (glon, glat), expected = GCOORD_GCJ_TO_WGS
    assert metres(*c.gcj02_to_wgs84(glon, glat), *expected) < 1


@pytest.mark.parametrize("pair", [GCJ_TO_BD, GCOORD_GCJ_TO_BD])
def test_published_gcj02_bd09_pairs_inverted(pair):
    gcj, bd = pair
    assert metres(*c.bd09_to_gcj02(*bd), *gcj) < 1


def test_published_bd09_to_gcj02_pair():
    bd, expected = GCOORD_BD_TO_GCJ
    assert metres(*c.bd09_to_gcj02(*bd), *expected) < 1


def test_gcj02_inverse_is_sub_metre():
    (wlon, wlat), (glon, glat) = WGS_TO_GCJ
    assert metres(*c.gcj02_to_wgs84(glon, glat), wlon, wlat) < 0.1
    lon = np.linspace(115.5, 122.5, 50)
    lat = np.linspace(34.5, 38.2, 50)
    back = c.gcj02_to_wgs84(*c.wgs84_to_gcj02(lon, lat))
    assert max(metres(a, b, x, y) for a, b, x, y in zip(*back, lon, lat, strict=True)) < 0.5


def test_bd09_round_trip_within_a_metre():
    lon, lat = 117.0009, 36.6758  # 泉城广场
    bd = c.wgs84_to_bd09(lon, lat)
    assert metres(*bd, lon, lat) > 300  # the offset is hundreds of metres
    assert metres(*c.bd09_to_wgs84(*bd), lon, lat) < 1


@pytest.mark.parametrize(("text", "epsg"), [("EPSG:4326", 4326), ("4548", 4548), ("gk117", 4548),
                                            ("cgcs2000-gk3-cm117", 4548), ("gk3-39", 4527),
                                            ("cgcs2000-gk3-39", 4527), ("gk6-20", 4498),
                                            ("gk6-cm117", 4509), ("CGCS2000", 4490)])  # fmt: skip
def test_parse_crs(text, epsg):
    assert c.parse_crs(text).crs.to_epsg() == epsg


def test_parse_crs_offsets_and_errors():
    assert c.parse_crs("GCJ02").kind == "gcj02"
    assert c.parse_crs("bd-09").kind == "bd09"
    with pytest.raises(c.CrsError, match="不存在"):
        c.parse_crs("gk3-50")
    with pytest.raises(c.CrsError, match="无法识别"):
        c.parse_crs("mars")


def test_gauss_kruger_zone_and_cm_forms_agree_with_pyproj():
    lon, lat = 117.0009, 36.6758
    for epsg in (4548, 4527):
        x, y = Transformer.from_crs(4490, epsg, always_xy=True).transform(lon, lat)
        source = c.SourceCrs("epsg", c.CRS.from_epsg(epsg))
        back = c.to_storage(np.array([shapely.Point(x, y)], dtype=object), source)[0]
        assert metres(back.x, back.y, lon, lat) < 0.01
    x39, _ = Transformer.from_crs(4490, 4527, always_xy=True).transform(lon, lat)
    assert 39_000_000 < x39 < 40_000_000  # zone number prefixed to the easting


@pytest.mark.parametrize(("lon", "lat"), [(-71.06, 42.36), (151.2, -33.87), (2.35, 48.85),
                                          (-0.13, 51.5), (72.8, 19.0), (139.7, 35.7),
                                          (-46.6, -23.5), (174.8, -41.3)])  # fmt: skip
def test_metric_epsg_abroad_is_the_utm_zone_pyproj_finds(lon, lat):
    found = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    assert [int(info.code) for info in found] == [c.metric_epsg(lon, lat)]


@pytest.mark.parametrize("lon", [73.5, 75.99, 87.6, 104.07, 117.0, 118.6, 120.38, 126.6, 135.0])
def test_metric_epsg_in_china_is_the_nearest_gauss_kruger_zone(lon):
    crs = CRS.from_epsg(c.metric_epsg(lon, 36.0))
    assert crs.name.startswith("CGCS2000 / 3-degree Gauss-Kruger CM")
    central = next(p.value for p in crs.coordinate_operation.params
                   if p.name == "Longitude of natural origin")  # fmt: skip
    assert abs(central - lon) <= 1.5 or lon < 75  # 73.5–75°E falls in the westmost zone, CM 75°E
    assert central % 3 == 0 and 75 <= central <= 135


def test_to_storage_converts_every_vertex():
    line = shapely.LineString([c.wgs84_to_gcj02(117.0, 36.6), c.wgs84_to_gcj02(117.1, 36.7)])
    back = c.to_storage(np.array([line], dtype=object), c.parse_crs("gcj02"))[0]
    (x1, y1), (x2, y2) = back.coords
    assert metres(x1, y1, 117.0, 36.6) < 1 and metres(x2, y2, 117.1, 36.7) < 1


# Illustrative Bursa-Wolf parameters (PROJ +towgs84: metres, arc-seconds, ppm, position vector).
SHIFT3 = "15.8,-154.4,-82.3"
SHIFT7 = "15.8,-154.4,-82.3,0.5,-0.3,0.2,1.1"
BEIJING54_SHIFT3 = f"+proj=longlat +ellps=krass +towgs84={SHIFT3} +no_defs"
BEIJING54_GK117 = "+proj=tmerc +lat_0=0 +lon_0=117 +k=1 +x_0=500000 +y_0=0 +ellps=krass +units=m"
XIAN80_WKT = ('GEOGCS["GCS_Xian_1980",DATUM["D_Xian_1980",SPHEROID["Xian_1980",6378140.0,'
              '298.257]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')  # fmt: skip


def pyproj_to_wgs84(proj: str, x: float, y: float) -> tuple[float, float]:
    """(lon, lat) in WGS84 of a point in an explicit PROJ string, by pyproj alone."""
    return Transformer.from_crs(proj, "EPSG:4326", always_xy=True).transform(x, y)


def one_point(source: c.SourceCrs, x: float, y: float) -> tuple[float, float]:
    """A point through to_storage."""
    point = c.to_storage(np.array([shapely.Point(x, y)], dtype=object), source)[0]
    return point.x, point.y


LEGACY = {"4214": "EPSG:4214", "4610": "EPSG:4610", "2435": "EPSG:2435", "4555": "4555",
          "esri-xian80": XIAN80_WKT, "proj-krass": BEIJING54_GK117}  # fmt: skip


@pytest.mark.parametrize("text", list(LEGACY.values()), ids=list(LEGACY))
def test_legacy_datums_refused(text):
    with pytest.raises(c.CrsError, match=r"(北京1954|西安1980|新北京54)大地基准.*towgs84"):
        c.parse_crs(text)


def test_legacy_datum_found_by_datum_name_in_any_projected_crs():
    from pyproj.database import query_crs_info

    projected = [i for i in query_crs_info(auth_name="EPSG", pj_types="PROJECTED_CRS")
                 if i.name.startswith(("Beijing 1954 /", "Xian 1980 /"))]  # fmt: skip
    assert len(projected) > 50
    for info in projected:
        with pytest.raises(c.CrsError, match="--towgs84"):
            c.parse_crs(f"EPSG:{info.code}")


def test_towgs84_shifts_like_pyproj_three_parameters():
    lon, lat = LIXIA
    source = c.parse_crs("EPSG:4214", SHIFT3)
    expected = pyproj_to_wgs84(BEIJING54_SHIFT3, lon, lat)
    assert metres(*expected, lon, lat) > 20  # the shift is tens of metres
    assert metres(*one_point(source, lon, lat), *expected) < 0.001
    assert "EPSG:4214" in source.label and SHIFT3 in source.label


def test_towgs84_shifts_like_pyproj_seven_parameters_projected():
    x, y = 517_412.0, 4_058_690.0  # Gauss-Krüger CM 117°E, in 济南
    source = c.parse_crs("EPSG:2436", SHIFT7)  # Beijing 1954 / 3-degree Gauss-Kruger CM 117E
    expected = pyproj_to_wgs84(f"{BEIJING54_GK117} +towgs84={SHIFT7} +no_defs", x, y)
    unshifted = pyproj_to_wgs84(f"{BEIJING54_GK117} +towgs84=0,0,0 +no_defs", x, y)
    assert metres(*expected, *unshifted) > 20
    assert metres(*one_point(source, x, y), *expected) < 0.001


@pytest.mark.parametrize(("crs", "towgs84", "message"), [
    ("EPSG:4214", "1,2", "3 个或 7 个数"), ("EPSG:4214", "1,2,x", "3 个或 7 个数"),
    ("EPSG:4326", SHIFT3, "只用于"), ("gcj02", SHIFT3, "只用于"), ("gk117", SHIFT3, "只用于"),
], ids=["two-numbers", "not-a-number", "wgs84", "gcj02", "cgcs2000-gk"])  # fmt: skip
def test_towgs84_errors(crs, towgs84, message):
    with pytest.raises(c.CrsError, match=message):
        c.parse_crs(crs, towgs84)


def test_file_crs_with_its_own_legacy_datum_shift():
    wkt = ('GEOGCS["Beijing 1954",DATUM["Beijing_1954",SPHEROID["Krassowsky 1940",6378245,298.3],'
           'TOWGS84[{}]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]')  # fmt: skip
    zero = CRS.from_wkt(wkt.format("0,0,0,0,0,0,0"))  # as many .prj files carry it: no shift
    with pytest.raises(c.CrsError, match="北京1954大地基准"):
        c.check_datum(c.SourceCrs("epsg", zero))
    source = c.check_datum(c.SourceCrs("epsg", CRS.from_wkt(wkt.format(f"{SHIFT3},0,0,0,0"))))
    lon, lat = LIXIA
    expected = pyproj_to_wgs84(BEIJING54_SHIFT3, lon, lat)
    assert metres(*one_point(source, lon, lat), *expected) < 0.001
    assert metres(*expected, lon, lat) > 20


def stored_point(engine, code: str) -> tuple[float, float]:
    """(lon, lat) of a camera."""
    return (scalar(engine, "SELECT ST_X(geom) FROM camera WHERE code = :c", c=code),
            scalar(engine, "SELECT ST_Y(geom) FROM camera WHERE code = :c", c=code))  # fmt: skip


def test_import_refuses_beijing_1954_and_leaves_the_table_alone(db, import_url, tmp_path):
    seed = write_csv(tmp_path / "seed.csv", "code,name,lon,lat", camera_rows(3, start=700_000))
    assert run(db, "camera", seed).loaded == 3
    before = count(db, "camera")
    lon, lat = LIXIA
    path = write_csv(tmp_path / "bj54.csv", "code,name,lon,lat", [f"BJ54A,北京54点,{lon},{lat}"])
    with pytest.raises(ImportUsageError, match="北京1954大地基准"):
        run(db, "camera", path, crs="EPSG:4214", mode="replace")
    result = cli(import_url, "import", "camera", str(path), "--crs", "EPSG:4214", "--mode",
                 "replace")  # fmt: skip
    assert result.returncode == 2
    assert "北京1954大地基准" in result.stderr and "--towgs84" in result.stderr
    assert count(db, "camera") == before and count(db, "camera", "code = 'BJ54A'") == 0
    assert count(db, "camera", "code = 'CAM700001'") == 1


def test_import_file_crs_with_legacy_datum_refused(db, tmp_path):
    x, y = 517_412.0, 4_058_690.0
    frame = gpd.GeoDataFrame({"code": ["XA80"], "name": ["西安80点"]},
                             geometry=[shapely.Point(x, y)], crs=2385)  # fmt: skip
    gpkg = tmp_path / "xian80.gpkg"
    pyogrio.write_dataframe(frame, gpkg)
    before = count(db, "camera")
    with pytest.raises(ImportUsageError, match="西安1980大地基准"):
        run(db, "camera", gpkg)
    assert count(db, "camera") == before


def test_import_with_towgs84_stores_the_shifted_point(db, import_url, tmp_path):
    lon, lat = LIXIA
    path = write_csv(tmp_path / "bj54.csv", "code,name,lon,lat", [f"BJ54B,北京54点,{lon},{lat}"])
    result = cli(import_url, "import", "camera", str(path), "--crs", "EPSG:4214",
                 "--towgs84", SHIFT3)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+towgs84=" in result.stdout
    expected = pyproj_to_wgs84(BEIJING54_SHIFT3, lon, lat)
    assert metres(*stored_point(db, "BJ54B"), *expected) < 0.01
    assert scalar(db, "SELECT ST_SRID(geom) FROM camera WHERE code = 'BJ54B'") == 4490
