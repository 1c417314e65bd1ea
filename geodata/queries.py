"""Read queries about places: administrative areas, code search and road labels."""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from geodata import catalog
from geodata.areas import in_areas

ADMIN_FEATURES = text(
    """
    SELECT json_build_object(
      'type', 'FeatureCollection',
      'features', coalesce(json_agg(json_build_object(
        'type', 'Feature',
        'id', a.code,
        'geometry', ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(a.geom, :tolerance), 4326), 6)::json,
        'properties', json_build_object('code', a.code, 'name', a.name, 'level', a.level,
                                        'parent_code', a.parent_code)
      ) ORDER BY a.code), '[]'::json))
    FROM admin_area a
    WHERE a.level = :level AND (CAST(:parent AS text) IS NULL OR a.parent_code = :parent)
    """
)


def admin_areas_geojson(
    conn: Connection, *, level: str, parent: str | None = None, tolerance: float = 0.0
) -> dict:
    """Administrative areas of one level (optionally under a parent) as a GeoJSON dict."""
    if level not in catalog.ADMIN_LEVELS:
        raise ValueError(f"unknown level {level!r}")
    row = conn.execute(ADMIN_FEATURES, {"level": level, "parent": parent, "tolerance": tolerance})
    result = row.scalar_one()
    return result if isinstance(result, dict) else json.loads(result)


AREA = text(
    """
    SELECT code, level, name, parent_code,
           ST_XMin(geom) AS minx, ST_YMin(geom) AS miny, ST_XMax(geom) AS maxx, ST_YMax(geom) AS maxy,
           ST_AsGeoJSON(ST_Transform(geom, 4326), 6)::json AS geometry
    FROM admin_area WHERE code = :code
    """
)
CHILD_AREAS = text(
    "SELECT code, name FROM admin_area WHERE parent_code = :code AND level <> 'city' ORDER BY code"
)
AREAS_WITH_CHILDREN = text(
    """
    SELECT DISTINCT d.code, d.name FROM admin_area d
    JOIN admin_area s ON s.parent_code = d.code AND s.level = 'street'
    WHERE d.level = 'district' ORDER BY d.code
    """
)
# Scope is applied before each LIMIT, so a district user's hits are not crowded out by others'.
CODE_SEARCH = text(
    f"""
    (SELECT 'component' AS kind, c.id, c.code, k.name AS title, left(c.class_code, 2) AS major,
            ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
     FROM component c JOIN component_class k ON k.code = c.class_code
     WHERE c.code LIKE :prefix AND (CAST(:scope AS text[]) IS NULL OR {in_areas("c.geom", "scope")})
     ORDER BY c.code LIMIT :limit)
    UNION ALL
    (SELECT 'unit_grid', g.id, g.code, '单元网格', NULL,
            ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom))
     FROM unit_grid g
     WHERE g.code LIKE :prefix
       AND (CAST(:scope AS text[]) IS NULL OR {in_areas("g.geom", "scope", polygonal=True)})
     ORDER BY g.code LIMIT :limit)
    """
)


def area(conn: Connection, code: str) -> dict | None:
    """One administrative area with its bounding box and outline (GeoJSON)."""
    row = conn.execute(AREA, {"code": code}).mappings().first()
    return dict(row) if row else None


def child_areas(conn: Connection, code: str) -> list[dict]:
    """Streets of a district, or communities of a street."""
    return [dict(r) for r in conn.execute(CHILD_AREAS, {"code": code}).mappings()]


def districts_with_streets(conn: Connection) -> list[dict]:
    """Districts that have streets loaded (the ones worth focusing on)."""
    return [dict(r) for r in conn.execute(AREAS_WITH_CHILDREN).mappings()]


def search_codes(conn: Connection, digits: str, limit: int = 10, scope=None) -> list[dict]:
    """Components and unit grids whose code starts with the given digits (within `scope`)."""
    escaped = digits.replace("%", "").replace("_", "")
    rows = conn.execute(CODE_SEARCH, {"prefix": escaped + "%", "limit": limit,
                                      "scope": list(scope) if scope else None})  # fmt: skip
    return [dict(r) for r in rows.mappings()]


ROAD_LABELS = text(
    f"""
    SELECT r.name, ST_X(p.pt) AS lon, ST_Y(p.pt) AS lat FROM road r
    CROSS JOIN LATERAL (
      SELECT ST_LineInterpolatePoint(ST_GeometryN(ST_Multi(ST_LineMerge(
        ST_Intersection(r.geom, ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4490)))), 1), 0.5) AS pt
    ) p
    WHERE r.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4490) AND r.name IS NOT NULL
      AND NOT ST_IsEmpty(ST_Intersection(r.geom, ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4490)))
      AND (CAST(:scope AS text[]) IS NULL OR {in_areas("p.pt", "scope")})
    ORDER BY array_position(CAST(:classes AS text[]), r.road_class), r.name
    LIMIT :limit
    """
)


def road_labels(
    conn: Connection, bbox: tuple[float, float, float, float], limit: int = 150, scope=None
) -> list:
    """Road names midway along the visible part of each road (the offline basemap's labels)."""
    params = dict(zip(("minx", "miny", "maxx", "maxy"), bbox, strict=True)) | {
        "limit": limit, "classes": list(catalog.ROAD_CLASSES),
        "scope": list(scope) if scope else None}  # fmt: skip
    return [dict(r) for r in conn.execute(ROAD_LABELS, params).mappings()]
