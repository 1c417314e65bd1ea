"""The one spelling of "inside these administrative areas" (区域范围) for every query.

Scoping a district user, focusing the map on an area and area statistics all go through
`in_areas`, so the rule (what counts as inside) lives here and nowhere else. Codes are always
bound as a text[] parameter; the areas are unioned once per statement (an init-plan), so the GiST
index of the tested column still serves the query.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from errors import BadRequest
from geodata.catalog import ADMIN_CODE_LENGTHS, SRID

AREAS_UNION = (
    "(SELECT ST_Union(a.geom) FROM admin_area a WHERE a.code = ANY(CAST(:{key} AS text[])))"
)


def in_areas(geom: str, key: str, *, polygonal: bool = False) -> str:
    """SQL: `geom` lies in the areas whose codes are bound as :key (a list of codes).

    Points and lines count when they meet the areas, boundary included. A polygon (a grid, a
    parcel, a tile) that only shares an edge with the areas is outside them: its interior must
    meet theirs.
    """
    union = AREAS_UNION.format(key=key)
    if polygonal:
        return f"(ST_Intersects({geom}, {union}) AND NOT ST_Touches({geom}, {union}))"
    return f"ST_Intersects({geom}, {union})"


def is_area_code(code: str) -> bool:
    """A district, street or community code (6, 9 or 12 digits)."""
    return code.isdigit() and len(code) in ADMIN_CODE_LENGTHS.values()


def area_code(raw, name: str = "area") -> str:
    """A district, street or community code from untrusted input, or 400."""
    if not isinstance(raw, str) or not is_area_code(raw):
        raise BadRequest(f"{name} 必须是 6、9 或 12 位行政区划代码")
    return raw


def area_name(conn: Connection, code: str) -> str | None:
    """The name of an administrative area, or None when there is no such code."""
    return conn.execute(text("SELECT name FROM admin_area WHERE code = :c"), {"c": code}).scalar()


def point_in_areas(conn: Connection, lon: float, lat: float, codes: tuple[str, ...]) -> bool:
    """Whether a lon/lat point lies in the areas."""
    sql = f"SELECT {in_areas(f'ST_SetSRID(ST_MakePoint(:lon, :lat), {SRID})', 'codes')}"
    return bool(conn.execute(text(sql), {"lon": lon, "lat": lat, "codes": list(codes)}).scalar())


def tile_in_areas(conn: Connection, z: int, x: int, y: int, codes: tuple[str, ...]) -> bool:
    """Whether a web-mercator tile overlaps the areas."""
    envelope = f"ST_Transform(ST_TileEnvelope(:z, :x, :y), {SRID})"
    sql = f"SELECT {in_areas(envelope, 'codes', polygonal=True)}"
    return bool(conn.execute(text(sql), {"z": z, "x": x, "y": y, "codes": list(codes)}).scalar())
