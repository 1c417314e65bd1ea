"""Geocoding (地理编码) over standard addresses and POIs with pg_trgm, and reverse geocoding."""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from geodata.areas import in_areas

# Scoped users (district) find and are told only addresses inside their areas.
SCOPE = f"(CAST(:scope AS text[]) IS NULL OR {in_areas('g.geom', 'scope')})"
SEARCH = text(
    f"""
    SELECT g.id, g.address, g.kind, g.road_name, g.door_number, g.building, g.poi_name,
           g.grid_code, g.community_code, ST_X(g.geom) AS lon, ST_Y(g.geom) AS lat,
           similarity(g.address, :q) AS score
    FROM geocode g
    WHERE g.address ILIKE ALL(:patterns) AND {SCOPE}
    ORDER BY (g.address LIKE :exact_door) DESC, similarity(g.address, :q) DESC, length(g.address), g.id
    LIMIT :limit
    """
)
FUZZY = text(
    f"""
    SELECT g.id, g.address, g.kind, g.road_name, g.door_number, g.building, g.poi_name,
           g.grid_code, g.community_code, ST_X(g.geom) AS lon, ST_Y(g.geom) AS lat,
           word_similarity(:q, g.address) AS score
    FROM geocode g
    WHERE :q <% g.address AND {SCOPE}
    ORDER BY word_similarity(:q, g.address) DESC, length(g.address), g.id
    LIMIT :limit
    """
)
NEAREST_ADDRESS = text(
    f"""
    SELECT g.address, g.kind, ST_X(g.geom) AS lon, ST_Y(g.geom) AS lat,
           ST_Distance(g.geom::geography, p.pt::geography) AS distance_m
    FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4490) AS pt) p,
         LATERAL (SELECT * FROM geocode g WHERE {SCOPE} ORDER BY g.geom <-> p.pt LIMIT 1) g
    """
)
GRIDS_AT = text(
    """
    SELECT code, ST_Contains(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4490)) AS inside
    FROM unit_grid WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4490))
    ORDER BY inside DESC, code
    """
)
AREAS_OF_GRID = text(
    "SELECT level, code, name FROM admin_area WHERE code IN (:c12, :c9, :c6) AND level <> 'city'"
)
AREAS_AT = text(
    """
    SELECT level, code, name FROM admin_area
    WHERE level IN ('district', 'street', 'community')
      AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4490))
    ORDER BY length(code), code
    """
)


def search_terms(query: str) -> tuple[str, list[str], str]:
    """Normalised query, ILIKE patterns (one per token) and the door number it names, if any."""
    tokens = [t for t in re.split(r"[\s,，、]+", query.strip()) if t]
    patterns = ["%" + t.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
                for t in tokens]  # fmt: skip
    door = next((t for t in reversed(tokens) if t.isdigit()), None)
    return "".join(tokens), patterns, f"%{door}号%" if door else ""


def geocode(conn: Connection, query: str, limit: int, scope=None) -> list[dict]:
    """Addresses and POIs matching every token of the query (within `scope` area codes, if any)."""
    q, patterns, exact_door = search_terms(query)
    scope = list(scope) if scope else None
    rows = conn.execute(SEARCH, {"q": q, "patterns": patterns, "exact_door": exact_door,
                                 "limit": limit, "scope": scope}).mappings().all()  # fmt: skip
    if not rows:  # misspelt input: trigram word similarity
        rows = conn.execute(FUZZY, {"q": q, "limit": limit, "scope": scope}).mappings().all()
    return [dict(r) for r in rows]


def reverse(conn: Connection, lon: float, lat: float, scope=None) -> dict:
    """Nearest address (within `scope` area codes, if any), unit grid(s) and areas of a point."""
    params = {"lon": lon, "lat": lat}
    nearest = (
        conn.execute(NEAREST_ADDRESS, {**params, "scope": list(scope) if scope else None})
        .mappings()
        .first()
    )
    grids = conn.execute(GRIDS_AT, params).mappings().all()
    if grids:  # on a boundary the areas follow the chosen grid, so the answer is consistent
        g = grids[0]["code"]
        found = conn.execute(AREAS_OF_GRID, {"c12": g[:12], "c9": g[:9], "c6": g[:6]})
    else:
        found = conn.execute(AREAS_AT, params)
    areas = {r["level"]: {"code": r["code"], "name": r["name"]} for r in found.mappings()}
    return {
        "lon": lon, "lat": lat, "nearest_address": dict(nearest) if nearest else None,
        "grid_code": grids[0]["code"] if grids else None,
        "on_grid_boundary": bool(grids) and not grids[0]["inside"],
        "grids": [g["code"] for g in grids],
        "community": areas.get("community"), "street": areas.get("street"),
        "district": areas.get("district"),
    }  # fmt: skip
