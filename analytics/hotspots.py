"""案件热点 (Getis-Ord Gi*): where cases cluster, per cell, with false-discovery-rate significance.

Cells are unit grids, communities, or a regular hexagon grid (`size` = hexagon edge in metres,
built by PostGIS in the extent's metric CRS: the Gauss-Krüger zone in China, the UTM zone abroad,
see `geodata.crs.metric_epsg`). The extent is an admin area, the user's areas, or a lon/lat `bbox`
(for cities without unit grids or admin areas, such as imported foreign data) cut to the user's
areas; a hexagon grid over it may hold at most MAX_CELLS cells. Every cell of the extent takes
part and is returned, including cells with no case. The cases are those of the shared case
filters (`analytics.case_filters`: window in the city's clock, class, source, status, the user's
areas). Gi* uses binary queen contiguity that includes the cell itself (PySAL
`esda.G_Local(counts, w, transform="B", star=True)`); p-values are two-sided from the standard
normal, then corrected for multiple testing with Benjamini–Hochberg (FDR); a cell is hot (cold)
at 99 / 95 / 90 % when its FDR-adjusted p-value is under 0.01 / 0.05 / 0.10 and its z is
positive (negative).
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import csr_matrix, identity
from scipy.stats import false_discovery_control, norm
from sqlalchemy import Connection

from analytics import coverage as cov
from analytics.case_filters import CASE_PARAMS, case_filter
from analytics.cells import CELLS, case_counts, cell_set
from analytics.contract import Analysis, Param, register
from auth.accounts import User
from errors import BadRequest, Forbidden
from params import parse_bbox

LEVELS = ((0.01, "99"), (0.05, "95"), (0.10, "90"))
CLASS_LABELS = {"hot_99": "热点（99%）", "hot_95": "热点（95%）", "hot_90": "热点（90%）",
                "cold_99": "冷点（99%）", "cold_95": "冷点（95%）", "cold_90": "冷点（90%）",
                "ns": "不显著"}  # fmt: skip
BBOX_PARAM = Param("bbox", "范围 minx,miny,maxx,maxy（经纬度，代替区域）", "text")
MAX_BBOX_DEG = 3.0  # a bbox extent spans a city, not a province: one metric zone stays accurate
BBOX_STEP_DEG = 0.01  # the bbox's edges are densified before projecting them


def gi_star_matrix(star: csr_matrix, counts: np.ndarray) -> np.ndarray:
    """Gi* z-scores for every column of counts at once (binary weights including the cell itself).

    Getis & Ord (1995), as `esda.G_Local(counts, w, transform="B", star=True)` computes it (the
    tests hold them equal) but with one sparse product instead of a loop:
    z_i = (Σ_j w_ij x_j − x̄ W_i) / (s √((n W_i − W_i²) / (n − 1))), s the population standard
    deviation of the column. A column without variance (e.g. no case at all), or fewer than three
    cells, has no clustering to test: z 0.
    """
    x = np.asarray(counts, dtype=float)
    n = x.shape[0]
    if n < 3:
        return np.zeros(x.shape)
    weight = np.asarray(star.sum(axis=1)).ravel()
    mean, sd = x.mean(axis=0), x.std(axis=0)
    spread = np.sqrt((n * weight - weight**2) / (n - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (star @ x - np.outer(weight, mean)) / np.outer(spread, sd)
    z[:, sd <= 1e-12] = 0.0
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def gi_star(counts: np.ndarray, w) -> tuple[np.ndarray, np.ndarray]:
    """Gi* z-scores and two-sided normal p-values of one set of counts on PySAL weights `w`."""
    n = len(counts)
    star = ((w.sparse + identity(n, format="csr")) != 0).astype(float)
    z = gi_star_matrix(star, np.asarray(counts, dtype=float).reshape(n, 1))[:, 0]
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


def bbox_area(conn: Connection, user: User, raw: str) -> cov.Area:
    """A lon/lat bbox as the extent (metric), cut to the user's areas when scoped; or 400/403."""
    minx, miny, maxx, maxy = parse_bbox(raw)
    if maxx - minx > MAX_BBOX_DEG or maxy - miny > MAX_BBOX_DEG:
        raise BadRequest(f"bbox 最大 {MAX_BBOX_DEG:g}°×{MAX_BBOX_DEG:g}°（一个城市的范围）")
    box = shapely.segmentize(shapely.box(minx, miny, maxx, maxy), BBOX_STEP_DEG)
    try:
        area = cov.drawn_area(conn, user, box)
    except Forbidden:
        raise Forbidden("bbox 范围不在您的管辖范围内") from None
    area.name = "bbox 范围"
    return area


def extent(conn: Connection, user: User, params: dict) -> cov.Area:
    """The analysed extent: the bbox, else the admin area, else everything the user may see."""
    if params.get("bbox") and params.get("area"):
        raise BadRequest("area 与 bbox 只能给出一个")
    if params.get("bbox"):
        return bbox_area(conn, user, params["bbox"])
    return cov.load_area(conn, user, params.get("area"))


def hotspots(conn: Connection, params: dict, user: User) -> dict:
    """Every cell of the extent with its case count, Gi* z, p and class, as GeoJSON (lon/lat)."""
    filt = case_filter(params, user)
    area = extent(conn, user, params)
    size = float(params["size"])
    cellset = cell_set(conn, area, params["cells"], size)
    counts = case_counts(conn, area, params["cells"], size, cellset.ids, filt)[:, 0]
    summary = {"cells": len(cellset), "count_total": int(counts.sum()),
               "crs": f"EPSG:{area.srid}", "from": filt.start.isoformat(),
               "to": filt.stop.isoformat()}  # fmt: skip
    if not len(cellset):
        return {"type": "FeatureCollection", "features": [],
                "summary": {**summary, "classes": {}}}  # fmt: skip
    z = gi_star_matrix(cellset.weights, counts.reshape(-1, 1))[:, 0]
    p = 2.0 * norm.sf(np.abs(z))
    labels = classes(z, p)
    features = [
        {"type": "Feature", "id": cid, "geometry": g,
         "properties": {"cell_id": cid, "count": int(n), "gi_z": round(float(zi), 6),
                        "gi_p": round(float(pi), 8), "hotspot_class": c,
                        "hotspot_label": CLASS_LABELS[c]}}
        for cid, g, n, zi, pi, c in zip(cellset.ids, cellset.lonlat, counts, z, p, labels,
                                        strict=True)]  # fmt: skip
    tally = {c: labels.count(c) for c in CLASS_LABELS}
    return {"type": "FeatureCollection", "features": features,
            "summary": {**summary, "classes": tally}}  # fmt: skip


HOTSPOTS = register(Analysis(
    id="hotspots", title="案件热点（Gi*）",
    description="按单元网格、社区或六边形网格统计时段内案件数，Getis-Ord Gi* 热点与冷点（FDR 校正）。"
                "范围为行政区划、管辖范围，或经纬度 bbox（如无单元网格的外部数据）。",
    output="layer",
    params=(*CASE_PARAMS,
            Param("cells", "网格", "choice", "unit_grid", choices=CELLS),
            Param("size", "六边形边长(m)", "float", 500, low=50, high=5000),
            Param("area", "区域", "area"), BBOX_PARAM),
    tables=("admin_area", "unit_grid", "case_record"), run=hotspots, cached=True,
))  # fmt: skip
