"""案件热点 (Getis-Ord Gi*): where cases cluster, per cell, with false-discovery-rate significance.

Cells are unit grids, communities, or a regular hexagon grid (`size` = hexagon edge in metres,
built by PostGIS in the area's Gauss-Krüger zone). Every cell of the extent takes part and is
returned, including cells with no case. Gi* uses binary queen contiguity that includes the cell
itself (PySAL `esda.G_Local(counts, w, transform="B", star=True)`); p-values are two-sided from
the standard normal, then corrected for multiple testing with Benjamini–Hochberg (FDR); a cell is
hot (cold) at 99 / 95 / 90 % when its FDR-adjusted p-value is under 0.01 / 0.05 / 0.10 and its z
is positive (negative).
"""

from __future__ import annotations

from datetime import date, timedelta

import esda
import geopandas as gpd
import numpy as np
import shapely
import shapely.geometry
from libpysal.weights import Queen
from scipy.stats import false_discovery_control, norm
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.contract import Analysis, Param, register
from auth.accounts import User
from errors import BadRequest
from geodata import catalog
from geodata.catalog import SRID

CELLS = ("unit_grid", "community", "hex")
LEVELS = ((0.01, "99"), (0.05, "95"), (0.10, "90"))
CLASS_LABELS = {"hot_99": "热点（99%）", "hot_95": "热点（95%）", "hot_90": "热点（90%）",
                "cold_99": "冷点（99%）", "cold_95": "冷点（95%）", "cold_90": "冷点（90%）",
                "ns": "不显著"}  # fmt: skip
CELL_SQL = {
    "unit_grid": "SELECT g.code AS cell_id, ST_Transform(g.geom, :srid) AS geom FROM unit_grid g",
    "community": "SELECT a.code AS cell_id, ST_Transform(a.geom, :srid) AS geom FROM admin_area a "
                 "WHERE a.level = 'community'",
    "hex": "SELECT h.i || '_' || h.j AS cell_id, h.geom FROM ST_HexagonGrid(:size, "
           "ST_GeomFromWKB(:wkb, :srid)) h",
}  # fmt: skip
COUNTS = (  # {cells}: the cell query of CELL_SQL
    f"""
    WITH a AS (SELECT ST_GeomFromWKB(:wkb, :srid) AS g),
         cells AS (SELECT c.cell_id, c.geom FROM ({{cells}}) c, a
                   WHERE ST_Intersects(c.geom, a.g) AND NOT ST_Touches(c.geom, a.g))
    SELECT cells.cell_id, ST_AsBinary(cells.geom) AS geom, count(k.id) AS count
    FROM cells LEFT JOIN case_record k
      ON k.geom && ST_Transform(cells.geom, {SRID}) AND ST_Intersects(ST_Transform(k.geom, :srid), cells.geom)
     AND k.reported_at >= :start AND k.reported_at < :stop
     AND (CAST(:prefix AS text) IS NULL OR k.event_class_code LIKE :prefix || '%'
          OR k.component_class_code LIKE :prefix || '%')
    GROUP BY cells.cell_id, cells.geom ORDER BY cells.cell_id
    """
)


def gi_star(counts: np.ndarray, w) -> tuple[np.ndarray, np.ndarray]:
    """Gi* z-scores and two-sided normal p-values (binary weights, the cell itself included)."""
    g = esda.G_Local(counts.astype(float), w, transform="B", star=True, permutations=0)
    z = np.asarray(g.Zs, dtype=float)
    return z, 2.0 * norm.sf(np.abs(z))


def classes(z: np.ndarray, p: np.ndarray) -> list[str]:
    """hot_99 … cold_90 or ns, by the Benjamini–Hochberg adjusted p-value and the sign of z."""
    q = false_discovery_control(np.nan_to_num(p, nan=1.0), method="bh") if len(p) else p
    out = []
    for zi, qi in zip(z, q, strict=True):
        level = next((name for alpha, name in LEVELS if qi < alpha), None)
        out.append("ns" if level is None or not np.isfinite(zi) or zi == 0
                   else f"{'hot' if zi > 0 else 'cold'}_{level}")  # fmt: skip
    return out


def window(params: dict) -> tuple[date, date]:
    """The [from, to] window as dates (to included), default the last 365 days of data."""
    start, stop = params["from"], params["to"]
    stop = date.fromisoformat(stop) if stop else date.today()
    start = date.fromisoformat(start) if start else stop - timedelta(days=365)
    if start > stop:
        raise BadRequest("from 不能晚于 to")
    return start, stop


def class_prefix(raw: str | None) -> str | None:
    """An event or component class code prefix (2 or 4 digits) that exists, or None."""
    if not raw:
        return None
    known = {*catalog.EVENT_MAJOR, *catalog.EVENT_MINOR, *catalog.COMPONENT_MAJOR,
             *catalog.COMPONENT_MINOR}  # fmt: skip
    if raw not in known:
        raise BadRequest(
            f"class 必须是已知的事件或部件大类/小类代码（如 01、0102），不是 {raw[:10]}"
        )
    return raw


def hotspots(conn: Connection, params: dict, user: User) -> dict:
    """Every cell of the area with its case count, Gi* z, p and class, as GeoJSON (lon/lat)."""
    start, stop = window(params)
    area = cov.load_area(conn, user, params["area"])
    sql = text(COUNTS.replace("{cells}", CELL_SQL[params["cells"]]))
    rows = conn.execute(sql, {**area.sql_params,
                              "size": float(params["size"]), "start": start,
                              "stop": stop + timedelta(days=1),
                              "prefix": class_prefix(params["class"])}).all()  # fmt: skip
    if not rows:
        return {"type": "FeatureCollection", "features": []}
    frame = gpd.GeoDataFrame({"cell_id": [r.cell_id for r in rows],
                              "count": np.array([r.count for r in rows], dtype=float)},
                             geometry=[shapely.from_wkb(bytes(r.geom)) for r in rows],
                             crs=area.srid)  # fmt: skip
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    z, p = gi_star(frame["count"].to_numpy(), w)
    labels = classes(z, p)
    lonlat = cov.to_lonlat(frame.geometry.to_numpy(), area.srid)
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": cid, "geometry": shapely.geometry.mapping(g),
         "properties": {"cell_id": cid, "count": int(n), "gi_z": round(float(zi), 6),
                        "gi_p": round(float(pi), 8), "hotspot_class": c,
                        "hotspot_label": CLASS_LABELS[c]}}
        for cid, g, n, zi, pi, c in zip(frame["cell_id"], lonlat, frame["count"], z, p, labels,
                                        strict=True)]}  # fmt: skip


HOTSPOTS = register(Analysis(
    id="hotspots", title="案件热点（Gi*）",
    description="按单元网格、社区或六边形网格统计时段内案件数，Getis-Ord Gi* 热点与冷点（FDR 校正）。",
    output="layer",
    params=(Param("from", "开始日期", "date"), Param("to", "结束日期", "date"),
            Param("class", "案件类别代码前缀", "text"),
            Param("cells", "网格", "choice", "unit_grid", choices=CELLS),
            Param("size", "六边形边长(m)", "float", 500, low=50, high=5000),
            Param("area", "区域", "area")),
    tables=("admin_area", "unit_grid", "case_record"), run=hotspots, cached=True,
))  # fmt: skip
