"""统计网格 (analysis cells): unit grids, communities or a hexagon grid over an extent, their queen
contiguity, and the cases counted per cell (and per time step).

The hotspots, the emerging hotspots and the recurring problems read their cells here. A cell
takes part when its interior meets the extent's (sharing an edge is not enough), compared in the
extent's metric CRS. The cell set of an extent — ids, lon/lat GeoJSON and the binary queen weights
including the cell itself — is kept per cells, size, extent and data version of the cell tables:
building the weights is the largest part of a first run. Cases are counted through the spatial
index against each cell's stored (EPSG:4490) geometry, never by transforming every case.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from libpysal.weights import Queen
from scipy.sparse import csr_matrix, identity
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
    "unit_grid": "SELECT g.code AS cell_id, ST_Transform(g.geom, :srid) AS geom, g.geom AS native "
                 "FROM unit_grid g, a WHERE g.geom && a.box",
    "community": "SELECT c.code AS cell_id, ST_Transform(c.geom, :srid) AS geom, c.geom AS native "
                 "FROM admin_area c, a WHERE c.level = 'community' AND c.geom && a.box",
    "hex": f"SELECT h.i || '_' || h.j AS cell_id, h.geom, ST_Transform(h.geom, {SRID}) AS native "
           "FROM a, ST_HexagonGrid(:size, a.g) h",
}  # fmt: skip
EXTENT = f"""a AS (SELECT g, ST_Expand(ST_Envelope(ST_Transform(g, {SRID})), 1e-6) AS box
                   FROM (SELECT ST_GeomFromWKB(:wkb, :srid) AS g) x)"""
# ST_ContainsProperly settles the inner cells with the extent prepared once, before the costlier
# ST_Touches against a large polygon for the cells on its edge.
IN_EXTENT = "ST_Intersects(c.geom, a.g) AND (ST_ContainsProperly(a.g, c.geom) OR NOT ST_Touches(c.geom, a.g))"
CELL_LIST = f"""
    WITH {EXTENT}
    SELECT c.cell_id, ST_AsBinary(c.geom) AS geom, ST_AsGeoJSON(ST_Transform(c.native, 4326), 9) AS lonlat
    FROM ({{cells}}) c, a WHERE {IN_EXTENT} ORDER BY c.cell_id
"""
# {where}: CaseFilter.where("k"), applied per joined case so the planner finds a cell's cases by
# the spatial index (as an index condition, the user's areas would make it scan every case of the
# areas once per cell); {step}: the step of a case (0 for totals).
STEP_COUNTS = f"""
    WITH {EXTENT},
         cells AS MATERIALIZED (SELECT c.cell_id, c.native FROM ({{cells}}) c, a WHERE {IN_EXTENT})
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


def cell_set(conn: Connection, area: cov.Area, cells: str, size: float) -> CellSet:
    """The cells of the extent with their weights (remembered per data version of the cells)."""
    check_cells(area, cells, size)
    key = (cells, size if cells == "hex" else None, area.srid, shapely.to_wkb(area.geom),
           version_key(conn, ("admin_area", "unit_grid")))  # fmt: skip
    found = SETS.get(key)
    if found is None:
        rows = conn.execute(text(CELL_LIST.replace("{cells}", CELL_SQL[cells])),
                            {**area.sql_params, "size": size}).all()  # fmt: skip
        geoms = np.array([shapely.from_wkb(bytes(r.geom)) for r in rows], dtype=object)
        weights = queen_weights(geoms, area.srid) if len(rows) else csr_matrix((0, 0))
        found = CellSet([r.cell_id for r in rows], [json.loads(r.lonlat) for r in rows], weights)
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
    sql = (STEP_COUNTS.replace("{cells}", CELL_SQL[cells]).replace("{where}", filt.where("k"))
           .replace("{step}", step))  # fmt: skip
    rows = conn.execute(text(sql), {**area.sql_params, **filt.bind(), "size": size,
                                    "step_s": step_s}).all()  # fmt: skip
    index = {cid: i for i, cid in enumerate(cell_ids)}
    counts = np.zeros((len(cell_ids), steps))
    for cell_id, back, n in rows:
        if back < steps and cell_id in index:
            counts[index[cell_id], steps - 1 - back] += n
    return counts
