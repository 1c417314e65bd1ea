"""Read queries shared by the API and the pages (SQL strings live in geodata/ only)."""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from geodata import catalog

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
