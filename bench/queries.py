"""Read-only queries the tile benchmark (`bench/tiles.py`) needs: sample places and data sizes."""

from __future__ import annotations

from sqlalchemy import Connection, text

from layers.filters import q
from layers.registry import LAYERS


def grid_centres(conn: Connection) -> list[tuple[float, float]]:
    """(lon, lat) of a point inside every unit grid cell, in id order (deterministic)."""
    sql = "SELECT ST_X(p), ST_Y(p) FROM (SELECT id, ST_PointOnSurface(geom) p FROM unit_grid) g"
    return [tuple(r) for r in conn.execute(text(sql + " ORDER BY id")).all()]


def table_sizes(conn: Connection) -> dict[str, int]:
    """Row counts of every table a registry layer reads, plus the stored aggregate cells."""
    tables = sorted({t for layer in LAYERS for t in layer.tables} | {"tile_aggregate"})
    return {t: int(conn.execute(text(f"SELECT count(*) FROM {q(t)}")).scalar()) for t in tables}
