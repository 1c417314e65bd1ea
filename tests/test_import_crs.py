"""Coordinate conversions: GCJ-02 / BD-09 against published pairs, Gauss-Krüger through pyproj."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geodata import crs as c


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


def test_to_storage_converts_every_vertex():
    line = shapely.LineString([c.wgs84_to_gcj02(117.0, 36.6), c.wgs84_to_gcj02(117.1, 36.7)])
    back = c.to_storage(np.array([line], dtype=object), c.parse_crs("gcj02"))[0]
    (x1, y1), (x2, y2) = back.coords
    assert metres(x1, y1, 117.0, 36.6) < 1 and metres(x2, y2, 117.1, 36.7) < 1
