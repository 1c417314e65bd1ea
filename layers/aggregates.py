"""Pre-aggregated low-zoom tiles of point layers: counts per cell, built once per data version.

Below a point layer's detail zoom a tile holds one feature per cell (1/64 of the tile side) with
the count and the mean position of the points in it. Counting live is slow on big layers at low
zoom, so `refresh_aggregates` stores (count, sum x, sum y) per cell for the zooms from
`min_zoom` to `aggregate_max_zoom(layer)`: the finest level is grouped from the points, each
coarser level is rolled up from the one below (cell x // 2). A tile is served from the table only
for unfiltered requests and only while the build version equals the layer's current data version;
otherwise (filters, stale or missing build) the live query of `layers.sql` answers.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from geodata.catalog import WEB_MERCATOR_SRID
from layers.registry import LAYERS, Layer
from layers.sql import AGGREGATE_CELLS, TILE_BUFFER, TILE_EXTENT, cell_size, data_version

AGGREGATE_MAX_ZOOM = 14  # finest pre-aggregated zoom; above it live counting is fast enough


def aggregate_zooms(layer: Layer) -> range:
    """The zooms of the layer served from pre-aggregated counts (empty for non-point layers)."""
    if layer.geometry != "point":
        return range(0)
    return range(layer.min_zoom, min(layer.detail_zoom - 1, AGGREGATE_MAX_ZOOM) + 1)


def aggregated_layers(tables: set[str] | None = None) -> list[Layer]:
    """Layers with pre-aggregated zooms, optionally only those reading one of `tables`."""
    return [layer for layer in LAYERS if aggregate_zooms(layer)
            and (tables is None or tables & set(layer.tables))]  # fmt: skip


def refresh_aggregates(conn: Connection, layer: Layer) -> int:
    """Rebuild the layer's cells in the caller's transaction; returns the number of points."""
    zooms = aggregate_zooms(layer)
    conn.execute(text("DELETE FROM tile_aggregate WHERE layer = :layer"), {"layer": layer.id})
    if zooms:
        finest = zooms[-1]
        where = f"WHERE {layer.where}" if layer.where else ""
        conn.execute(text(f"""
            INSERT INTO tile_aggregate (layer, z, cx, cy, n, sx, sy)
            SELECT :layer, :z, floor(ST_X(p) / :cell)::int, floor(ST_Y(p) / :cell)::int,
                   count(*), sum(ST_X(p)), sum(ST_Y(p))
            FROM (SELECT ST_Transform(t.geom, {WEB_MERCATOR_SRID}) AS p FROM {layer.source} t {where}) s
            WHERE p IS NOT NULL GROUP BY 3, 4"""),
            {"layer": layer.id, "z": finest, "cell": cell_size(finest)},
        )  # fmt: skip
        for z in reversed(zooms[:-1]):
            conn.execute(text("""
                INSERT INTO tile_aggregate (layer, z, cx, cy, n, sx, sy)
                SELECT layer, :z, floor(cx / 2.0)::int, floor(cy / 2.0)::int,
                       sum(n), sum(sx), sum(sy)
                FROM tile_aggregate WHERE layer = :layer AND z = :z + 1 GROUP BY 1, 3, 4"""),
                {"layer": layer.id, "z": z},
            )  # fmt: skip
    conn.execute(
        text("INSERT INTO tile_aggregate_build AS b (layer, version) VALUES (:layer, :version) "
             "ON CONFLICT (layer) DO UPDATE SET version = :version, built_at = now()"),
        {"layer": layer.id, "version": data_version(conn, layer)},
    )  # fmt: skip
    return aggregate_total(conn, layer, zooms[-1]) if zooms else 0


def aggregate_total(conn: Connection, layer: Layer, z: int) -> int:
    """Sum of the stored counts of the layer at zoom z."""
    sql = text("SELECT coalesce(sum(n), 0) FROM tile_aggregate WHERE layer = :layer AND z = :z")
    return int(conn.execute(sql, {"layer": layer.id, "z": z}).scalar())


def refresh_tables(conn: Connection, tables: set[str] | None = None) -> dict[str, int]:
    """Rebuild the aggregated layers reading one of `tables` (all when None) plus every stale one.

    A write can bump the version of tables it does not name (foreign-key actions on children),
    so after an import every layer whose build no longer matches its data version is rebuilt too.
    Returns the number of points per rebuilt layer.
    """
    layers = [layer for layer in aggregated_layers()
              if layer in aggregated_layers(tables) or not is_current(
                  conn, layer, data_version(conn, layer))]  # fmt: skip
    done = {layer.id: refresh_aggregates(conn, layer) for layer in layers}
    if done:
        conn.execute(text("ANALYZE tile_aggregate"))
    return done


def is_current(conn: Connection, layer: Layer, version: int) -> bool:
    """Whether the stored cells of the layer were built at this data version."""
    sql = text("SELECT version FROM tile_aggregate_build WHERE layer = :layer")
    return conn.execute(sql, {"layer": layer.id}).scalar() == version


def cell_range(z: int, x: int, y: int) -> dict[str, int]:
    """Cell index bounds of tile (z, x, y) widened by the one-cell buffer (64/4096 of the tile)."""
    origin = AGGREGATE_CELLS * 2**z // 2  # the world's west / north edge in cells from 0
    return {"cx0": x * AGGREGATE_CELLS - origin - 1, "cx1": (x + 1) * AGGREGATE_CELLS - origin,
            "cy0": origin - (y + 1) * AGGREGATE_CELLS - 1, "cy1": origin - y * AGGREGATE_CELLS}  # fmt: skip


AGGREGATE_TILE_SQL = f"""
SELECT ST_AsMVT(m, :layer, {TILE_EXTENT}, 'geom') FROM (
  SELECT a.n AS count,
         ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(a.sx / a.n, a.sy / a.n), {WEB_MERCATOR_SRID}),
                      ST_TileEnvelope(:z, :x, :y), {TILE_EXTENT}, {TILE_BUFFER}, true) AS geom
  FROM tile_aggregate a
  WHERE a.layer = :layer AND a.z = :z AND a.cx BETWEEN :cx0 AND :cx1
    AND a.cy BETWEEN :cy0 AND :cy1) m
WHERE m.geom IS NOT NULL"""


def render_aggregate_tile(conn: Connection, layer: Layer, z: int, x: int, y: int) -> bytes:
    """The tile from the stored cells (the caller checked `is_current`)."""
    params = {"layer": layer.id, "z": z, "x": x, "y": y, **cell_range(z, x, y)}
    return bytes(conn.execute(text(AGGREGATE_TILE_SQL), params).scalar() or b"")
