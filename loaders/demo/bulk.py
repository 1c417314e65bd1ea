"""Row buffers per table and their bulk load with COPY (geometries as hex EWKB in EPSG:4490)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import shapely
from sqlalchemy import Connection, text

from loaders.demo.lattice import TO_GEO, to_geo

SRID = 4490


def points_ewkb(x: np.ndarray, y: np.ndarray) -> list[str]:
    """Metric points to hex EWKB points in EPSG:4490."""
    lon, lat = TO_GEO.transform(np.asarray(x, float), np.asarray(y, float))
    pts = shapely.set_srid(shapely.points(lon, lat), SRID)
    return shapely.to_wkb(pts, hex=True, include_srid=True).tolist()


def geom_ewkb(geoms) -> list[str]:
    """Metric shapely geometries to hex EWKB in EPSG:4490."""
    geoms = np.asarray(geoms, dtype=object)
    geo = to_geo(geoms)
    bad = ~shapely.is_valid(geo)
    if bad.any():  # reprojection can pinch a clipped sliver into a self-touching ring
        geo[bad] = [_repaired(g) for g in geo[bad]]
    return shapely.to_wkb(shapely.set_srid(geo, SRID), hex=True, include_srid=True).tolist()


class Tables:
    """Rows waiting to be copied, per table, in insertion order."""

    def __init__(self):
        self.columns: dict[str, tuple[str, ...]] = {}
        self.rows: dict[str, list[tuple]] = defaultdict(list)

    def add(self, table: str, columns: tuple[str, ...], rows) -> None:
        """Queue rows (tuples in `columns` order) for `table`."""
        if self.columns.setdefault(table, columns) != columns:
            raise ValueError(f"{table}: columns differ from the first batch")
        self.rows[table].extend(rows)

    def count(self, table: str) -> int:
        """Rows queued for a table."""
        return len(self.rows.get(table, ()))

    def copy_into(self, conn: Connection, order: list[str]) -> dict[str, int]:
        """COPY every queued table, in dependency order; returns rows per table."""
        raw = conn.connection.driver_connection
        written = {}
        for table in order:
            rows = self.rows.get(table)
            if not rows:
                continue
            cols = ", ".join(self.columns[table])
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            written[table] = len(rows)
        for table in order:
            if "id" in self.columns.get(table, ()):
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                ))  # fmt: skip
        return written


def _repaired(geom):
    """make_valid, keeping the original type (polygonal parts of a MultiPolygon)."""
    from loaders.demo.lattice import as_multipolygon

    fixed = shapely.make_valid(geom)
    return as_multipolygon(fixed) if geom.geom_type == "MultiPolygon" else fixed
