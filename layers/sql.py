"""SQL for registry layers: vector tiles (ST_AsMVT), GeoJSON features and the start-up probe.

Identifiers come only from the registry (quoted); request values are always bound parameters.
The tile envelope is transformed to the storage SRID, so the GiST index on `geom` serves the query.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from geodata import versions
from geodata.catalog import SRID, WEB_MERCATOR_HALF, WEB_MERCATOR_SRID
from layers.filters import Filter, q, where_parts
from layers.registry import Layer

TILE_EXTENT = 4096
TILE_BUFFER = 64
MAX_TILE_FEATURES = 5000  # more in a tile: counts per cell instead (feature_tile_sql)
AGGREGATE_CELLS = 64  # per tile side: at most 66 x 66 = 4356 cells with the buffer, under the cap
TILE_BOUNDS = (
    "WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS e, "
    "ST_TileEnvelope(:z, :x, :y, margin => :margin) AS em, "
    f"ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), {SRID}) AS q)"
)


def property_columns(layer: Layer) -> str:
    """Select list of the exposed fields."""
    return ", ".join(f"t.{q(f.name)}" for f in layer.fields)


def cell_size(z: int) -> float:
    """Side of a low-zoom aggregation cell at zoom z in web-mercator metres."""
    return 2 * WEB_MERCATOR_HALF / 2**z / AGGREGATE_CELLS


def count_body(layer: Layer, where: str, *, marked: bool = False) -> str:
    """MVT counts per cell over `b` (lines, polygons: a point on surface); `marked`: aggregated."""
    # marked cells carry `aggregated = true`: the tile fell back from raw features (over the cap)
    geom = "t.geom" if layer.geometry == "point" else "ST_PointOnSurface(t.geom)"
    mark = ", true AS aggregated" if marked else ""
    return f"""SELECT ST_AsMVT(m, :layer, {TILE_EXTENT}, 'geom') FROM (
      SELECT count(*)::int AS count{mark},
             ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(avg(ST_X(s.p)), avg(ST_Y(s.p))), {WEB_MERCATOR_SRID}),
                          (SELECT e FROM b), {TILE_EXTENT}, {TILE_BUFFER}, true) AS geom
      FROM (SELECT ST_Transform({geom}, {WEB_MERCATOR_SRID}) AS p
            FROM {layer.source} t, b WHERE {where}) s, b
      WHERE ST_Intersects(s.p, b.em)  -- the {SRID} box of the envelope is a little larger
      GROUP BY floor(ST_X(s.p) / :cell), floor(ST_Y(s.p) / :cell)) m
    WHERE m.geom IS NOT NULL"""


def count_tile_sql(layer: Layer, filters: list[Filter]) -> tuple[str, dict]:
    """The MVT query of counts per cell (1/64 of the tile side) with their mean position."""
    params: dict = {"layer": layer.id, "margin": TILE_BUFFER / TILE_EXTENT}
    where = " AND ".join(["t.geom && b.q", *where_parts(layer, filters, params)])
    return f"{TILE_BOUNDS}\n    {count_body(layer, where)}", params


def feature_tile_sql(layer: Layer, z: int, filters: list[Filter],
                     cap: int = MAX_TILE_FEATURES) -> tuple[str, dict]:  # fmt: skip
    """The MVT query of raw features (lines and polygons simplified to the tile's pixel)."""
    # Never cut silently: a tile over `cap` features (at most cap + 1 are rendered to find out)
    # holds marked counts per cell instead; PostgreSQL runs only the CASE branch it needs.
    params: dict = {"layer": layer.id, "margin": TILE_BUFFER / TILE_EXTENT, "cap": cap,
                    "cell": cell_size(z)}  # fmt: skip
    where = " AND ".join(["t.geom && b.q", *where_parts(layer, filters, params)])
    geom = f"ST_Transform(t.geom, {WEB_MERCATOR_SRID})"
    if layer.geometry != "point":
        params["tolerance"] = 2 * WEB_MERCATOR_HALF / 2**z / TILE_EXTENT
        geom = f"ST_Simplify({geom}, :tolerance, true)"
    sql = f"""{TILE_BOUNDS},
    m AS (SELECT * FROM (
      SELECT t.id, {property_columns(layer)},
             ST_AsMVTGeom({geom}, b.e, {TILE_EXTENT}, {TILE_BUFFER}, true) AS geom
      FROM {layer.source} t, b WHERE {where}) f
      WHERE f.geom IS NOT NULL LIMIT :cap + 1)
    SELECT CASE WHEN (SELECT count(*) FROM m) > :cap
                THEN ({count_body(layer, where, marked=True)})
                ELSE (SELECT ST_AsMVT(m, :layer, {TILE_EXTENT}, 'geom', 'id') FROM m) END"""
    return sql, params


def tile_sql(layer: Layer, z: int, filters: list[Filter],
             cap: int = MAX_TILE_FEATURES) -> tuple[str, dict]:  # fmt: skip
    """The MVT query for a layer at zoom z: raw features, or counts per cell for points."""
    if layer.geometry == "point" and z < layer.detail_zoom:
        sql, params = count_tile_sql(layer, filters)
        return sql, {**params, "cell": cell_size(z)}
    return feature_tile_sql(layer, z, filters, cap)


def render_tile(conn: Connection, layer: Layer, z: int, x: int, y: int, filters: list[Filter],
                cap: int = MAX_TILE_FEATURES) -> bytes:  # fmt: skip
    """Run the tile query; empty bytes for an empty tile."""
    sql, params = tile_sql(layer, z, filters, cap)
    data = conn.execute(text(sql), {**params, "z": z, "x": x, "y": y}).scalar()
    return bytes(data or b"")


def data_version(conn: Connection, layer: Layer) -> int:
    """Sum of the write counters of the layer's tables (changes on every write)."""
    return versions.data_version(conn, layer.tables)


def features_sql(layer: Layer, filters: list[Filter], bbox: tuple | None) -> tuple[str, dict]:
    """GeoJSON features of a layer in EPSG:4326 (lon, lat) with the number matched."""
    params: dict = {}
    parts = where_parts(layer, filters, params)
    if bbox is not None:
        parts.append(f"t.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, {SRID})")
        params.update(dict(zip(("minx", "miny", "maxx", "maxy"), bbox, strict=True)))
    where = " AND ".join(parts) or "true"
    props = ", ".join(f"'{f.name}', t.{q(f.name)}" for f in layer.fields)
    sql = f"""
    WITH hits AS (SELECT t.* FROM {layer.source} t WHERE {where}),
         page AS (SELECT * FROM hits t ORDER BY t.id LIMIT :limit)
    SELECT (SELECT count(*) FROM hits) AS matched,
           coalesce(json_agg(json_build_object(
             'type', 'Feature', 'id', t.id,
             'geometry', ST_AsGeoJSON(ST_Transform(t.geom, 4326), 7)::json,
             'properties', json_build_object('id', t.id, {props})) ORDER BY t.id), '[]'::json)
    FROM page t"""
    return sql, params


def read_features(conn: Connection, layer: Layer, filters: list[Filter], bbox: tuple | None,
                  limit: int) -> dict:  # fmt: skip
    """A GeoJSON FeatureCollection of at most `limit` features, with paging counts."""
    sql, params = features_sql(layer, filters, bbox)
    matched, feats = conn.execute(text(sql), {**params, "limit": limit}).one()
    return {"type": "FeatureCollection", "features": feats, "numberMatched": matched,
            "numberReturned": len(feats)}  # fmt: skip


def probe_sql(layer: Layer) -> str:
    """A query that fails when the layer's source or a field is missing (start-up check)."""
    return (f"SELECT t.id, t.geom, {property_columns(layer)} FROM {layer.source} t "
            f"WHERE {layer.where or 'true'} LIMIT 0")  # fmt: skip
