"""统计网格 (analysis cells): unit grids, communities or a hexagon grid over an extent, their queen
contiguity, and the cases counted per cell (and per time step).

The hotspots, the emerging hotspots and the recurring problems read their cells here. A cell
takes part when its interior meets the extent's (sharing an edge is not enough), compared in the
extent's metric CRS. The cell set of an extent — ids, lon/lat GeoJSON and the binary queen weights
including the cell itself — is kept per cells, size, extent and data version of the cell tables.
Unit grids' weights come from the queen pairs the database keeps (`unit_grid_neighbour`, kept by
triggers, migration 0012: PySAL's Queen, the same vertices shared), read for the extent's grids in
one indexed query; communities and hexagons are computed by PySAL. Cases are counted through the
spatial index against each cell's stored (EPSG:4490) geometry, never by transforming every case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import geopandas as gpd
import numpy as np
import shapely
from libpysal.weights import Queen
from scipy.sparse import coo_matrix, csr_matrix, identity
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.case_filters import CaseFilter
from analytics.contract import Memo
from errors import BadRequest
from geodata.catalog import SRID
from geodata.versions import version_key

CELLS = ("unit_grid", "community", "hex")
MAX_CELLS = 50_000  # hexagons over one extent (Queen weights and the payload stay bounded)
SETS = Memo(8)
# Each source gives cell_id, geom (metric, :srid) and native (EPSG:4490), limited to the extent's
# box `a.box` (EPSG:4490) so an index serves it.
CELL_SQL = {
    "unit_grid": "SELECT g.code AS cell_id, ST_Transform(g.geom, :srid) AS geom, g.geom AS native, "
                 "g.id AS grid_id FROM unit_grid g, a WHERE g.geom && a.box",
    "community": "SELECT c.code AS cell_id, ST_Transform(c.geom, :srid) AS geom, c.geom AS native "
                 "FROM admin_area c, a WHERE c.level = 'community' AND c.geom && a.box",
    "hex": f"SELECT h.i || '_' || h.j AS cell_id, h.geom, ST_Transform(h.geom, {SRID}) AS native "
           "FROM a, ST_HexagonGrid(:size, a.g) h",
}  # fmt: skip
EXTENT = f"""a AS (SELECT g, ST_Expand(ST_Envelope(ST_Transform(g, {SRID})), 1e-6) AS box
                   FROM (SELECT ST_GeomFromWKB(:wkb, :srid) AS g) x)"""
# Each source's weights: computed from the metric geometries (`geom`), or read from the pairs the
# database keeps (`grid_id`, unit grids: migration 0012).
SHAPE = {"unit_grid": "c.grid_id", "community": "ST_AsBinary(c.geom) AS geom",
         "hex": "ST_AsBinary(c.geom) AS geom"}  # fmt: skip
# ST_ContainsProperly settles the inner cells with the extent prepared once, before the costlier
# ST_Touches against a large polygon for the cells on its edge.
IN_EXTENT = "ST_Intersects(c.geom, a.g) AND (ST_ContainsProperly(a.g, c.geom) OR NOT ST_Touches(c.geom, a.g))"
# OFFSET 0 keeps the source a subquery of its own: each cell is transformed once, not once per
# test of IN_EXTENT (0.5–0.9 s → 0.3 s for 11,661 grids under load).
CELL_LIST = f"""
    WITH {EXTENT}
    SELECT c.cell_id, {{shape}}, ST_AsBinary(ST_Transform(c.native, 4326)) AS lonlat
    FROM ({{cells}} OFFSET 0) c, a WHERE {IN_EXTENT} ORDER BY c.cell_id
"""
# The queen neighbours among unit grids (pairs both ways, kept by triggers: migration 0012), as the
# positions (0-based) of both grids in :ids.
NEIGHBOURS = """
    SELECT coalesce(array_agg(i.n - 1), '{}'), coalesce(array_agg(j.n - 1), '{}')
    FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY i(id, n)
    JOIN unit_grid_neighbour p ON p.grid_id = i.id
    JOIN unnest(CAST(:ids AS bigint[])) WITH ORDINALITY j(id, n) ON j.id = p.neighbour_id
"""
# The cells to count in, found again: unit grids and communities by their codes (:cell_ids, the
# cell list settled the extent: testing it again cost 0.3 s of each run over 11,661 grids);
# hexagons have no table, their extent is tested again.
COUNTED = {
    "unit_grid": "SELECT code AS cell_id, geom AS native FROM unit_grid WHERE code = ANY(:cell_ids)",
    "community": "SELECT code AS cell_id, geom AS native FROM admin_area "
                 "WHERE level = 'community' AND code = ANY(:cell_ids)",
    "hex": f"SELECT c.cell_id, c.native FROM ({CELL_SQL['hex']} OFFSET 0) c, a WHERE {IN_EXTENT}",
}  # fmt: skip
# {where}: CaseFilter.where("k"), applied per joined case so the planner finds a cell's cases by
# the spatial index (as an index condition, the user's areas would make it scan every case of the
# areas once per cell); {step}: the step of a case (0 for totals).
STEP_COUNTS = f"""
    WITH {EXTENT},
         cells AS MATERIALIZED ({{cells}})
    SELECT cell_id, back, count(*) AS n FROM (
        SELECT cells.cell_id, CASE WHEN {{where}} THEN {{step}} END AS back
        FROM cells JOIN case_record k ON k.geom && cells.native AND ST_Intersects(k.geom, cells.native)
        WHERE k.reported_at >= :f_start AND k.reported_at < :f_stop) x
    WHERE back IS NOT NULL GROUP BY cell_id, back
"""


@dataclass(frozen=True)
class CellSet:
    """The cells of an extent: ids (sorted), lon/lat GeoJSON geometries, queen weights + self."""

    ids: list[str]
    lonlat: list[dict]
    weights: csr_matrix

    def __len__(self) -> int:
        return len(self.ids)


def hex_count(bounds: tuple[float, float, float, float], size: float) -> int:
    """About how many hexagons of edge `size` ST_HexagonGrid lays over metric bounds."""
    minx, miny, maxx, maxy = bounds
    columns = math.ceil((maxx - minx) / (1.5 * size)) + 1
    rows = math.ceil((maxy - miny) / (math.sqrt(3) * size)) + 1
    return columns * rows


def check_cells(area: cov.Area, cells: str, size: float) -> None:
    """400 when a hexagon grid over the extent would have more than MAX_CELLS cells."""
    if cells != "hex" or area.geom.is_empty:
        return
    n = hex_count(area.geom.bounds, size)
    if n > MAX_CELLS:
        at_least = math.ceil(size * math.sqrt(n / MAX_CELLS) / 10) * 10
        raise BadRequest(
            f"六边形过多：边长 {size:g} 米时该范围约有 {n:,} 个六边形（上限 {MAX_CELLS:,}）。"
            f"请使用更大的六边形（size 至少约 {at_least:g} 米）或缩小范围"
        )


def queen_weights(geoms: np.ndarray, srid: int) -> csr_matrix:
    """Binary queen contiguity (PySAL's, shared vertices) plus the cell itself, as a sparse matrix."""
    frame = gpd.GeoDataFrame(geometry=geoms, crs=srid)
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    return ((w.sparse + identity(len(geoms), format="csr")) != 0).astype(float).tocsr()


def stored_queen_weights(conn: Connection, grid_ids: list[int]) -> csr_matrix:
    """`queen_weights` of unit grids (rows in `grid_ids` order) from the pairs the database keeps."""
    n = len(grid_ids)
    rows, cols = conn.execute(text(NEIGHBOURS), {"ids": grid_ids}).one()
    contiguity = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return ((contiguity.tocsr() + identity(n, format="csr")) != 0).astype(float).tocsr()


def cell_weights(conn: Connection, cells: str, rows, srid: int) -> csr_matrix:
    """The weights of listed cells: stored pairs for unit grids, computed for the others."""
    if not rows:
        return csr_matrix((0, 0))
    if cells == "unit_grid":
        return stored_queen_weights(conn, [r.grid_id for r in rows])
    geoms = np.array([shapely.from_wkb(bytes(r.geom)) for r in rows], dtype=object)
    return queen_weights(geoms, srid)


def geojson(wkbs: list[bytes]) -> list[dict]:
    """GeoJSON geometries of polygons or multipolygons (coordinates to 9 decimals) from flat arrays.

    Nested tuples, not lists: the collector stops tracking tuples of floats, so building thousands
    of cells does not set off full garbage collections (lists or json.loads of ST_AsGeoJSON took
    0.4–1.0 s for 11,661 grids under load, tuples 0.1–0.3 s).
    """
    kind, coords, offsets = shapely.to_ragged_array(shapely.from_wkb(wkbs))
    xy = coords.round(9)
    points = tuple(zip(xy[:, 0].tolist(), xy[:, 1].tolist(), strict=True))
    rings = tuple(points[a:b] for a, b in pairwise(offsets[0].tolist()))
    if kind == shapely.GeometryType.POLYGON:
        return [{"type": "Polygon", "coordinates": rings[a:b]}
                for a, b in pairwise(offsets[1].tolist())]  # fmt: skip
    polygons = tuple(rings[a:b] for a, b in pairwise(offsets[1].tolist()))
    return [{"type": "MultiPolygon", "coordinates": polygons[a:b]}
            for a, b in pairwise(offsets[2].tolist())]  # fmt: skip


def cell_set(conn: Connection, area: cov.Area, cells: str, size: float) -> CellSet:
    """The cells of the extent with their weights (remembered per data version of the cells)."""
    check_cells(area, cells, size)
    key = (cells, size if cells == "hex" else None, area.srid, shapely.to_wkb(area.geom),
           version_key(conn, ("admin_area", "unit_grid")))  # fmt: skip
    found = SETS.get(key)
    if found is None:
        sql = CELL_LIST.replace("{cells}", CELL_SQL[cells]).replace("{shape}", SHAPE[cells])
        rows = conn.execute(text(sql), {**area.sql_params, "size": size}).all()
        weights = cell_weights(conn, cells, rows, area.srid)
        lonlat = geojson([bytes(r.lonlat) for r in rows]) if rows else []
        found = CellSet([r.cell_id for r in rows], lonlat, weights)
        SETS.put(key, found)  # the key holds the extent, already cut to the user's areas
    return found


def case_counts(conn: Connection, area: cov.Area, cells: str, size: float, cell_ids: list[str],
                filt: CaseFilter, step_s: int | None = None, steps: int = 1) -> np.ndarray:  # fmt: skip
    """Cases per cell (rows, in `cell_ids` order) and step (columns, oldest first; one column of
    totals without `step_s`; steps are counted back from the end of the window)."""
    step = (
        "0"
        if step_s is None
        else "floor(extract(epoch FROM (:f_stop - k.reported_at)) / :step_s)::int"
    )
    sql = (STEP_COUNTS.replace("{cells}", COUNTED[cells]).replace("{where}", filt.where("k"))
           .replace("{step}", step))  # fmt: skip
    rows = conn.execute(text(sql), {**area.sql_params, **filt.bind(), "size": size,
                                    "step_s": step_s, "cell_ids": cell_ids}).all()  # fmt: skip
    index = {cid: i for i, cid in enumerate(cell_ids)}
    counts = np.zeros((len(cell_ids), steps))
    for cell_id, back, n in rows:
        if back < steps and cell_id in index:
            counts[index[cell_id], steps - 1 - back] += n
    return counts
