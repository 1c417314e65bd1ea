"""新兴热点 (emerging hotspots): how each cell's Gi* hotspot status moves through time.

The window is cut into time steps (weeks or days) counted back from its end, so the last step is
whole. For every step, Gi* is computed on that step's counts over every cell of the extent (binary
queen contiguity including the cell itself, as in `analytics.hotspots`), with FDR-corrected
significance per step; a cell is a significant hot (cold) spot in a step at 90 % confidence. The
Mann–Kendall test on each cell's series of Gi* z-scores gives the trend of its clustering
intensity. Each cell then takes one category (definitions in `CATEGORIES` and
docs/CASE_ANALYTICS.md), after ArcGIS's Emerging Hot Spot Analysis.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from scipy.stats import false_discovery_control, norm
from sqlalchemy import Connection

from analytics.case_filters import CASE_PARAMS, CaseFilter, case_filter
from analytics.cells import CELLS, case_counts, cell_set
from analytics.contract import Analysis, Param, register
from analytics.hotspots import BBOX_PARAM, LEVELS, extent, gi_star_matrix
from auth.accounts import User
from errors import BadRequest

STEP_DAYS = {"week": 7, "day": 1}
MIN_STEPS, MAX_STEPS = 4, 400
MAX_CELL_STEPS = 6_000_000  # cells × steps held in memory at most
PERSISTENT_SHARE = 0.9  # "hot in at least 90 % of the steps"
SIGNIFICANCE = max(alpha for alpha, _ in LEVELS)  # a hot/cold step: FDR-adjusted p < 0.10
TREND_ALPHA = 0.05  # Mann–Kendall two-sided significance
CATEGORIES = {
    "new": ("新出现热点", "只在最后一个时段是显著热点"),
    "consecutive": ("连续热点", "最后连续两个及以上时段是显著热点，此前从不是，且不足 90 % 的时段"),
    "intensifying": ("加剧热点", "至少 90 % 的时段（含最后一个）是显著热点，且强度显著上升"),
    "persistent": ("持续热点", "至少 90 % 的时段（含最后一个）是显著热点，强度无显著趋势"),
    "diminishing": ("减弱热点", "至少 90 % 的时段（含最后一个）是显著热点，且强度显著下降"),
    "sporadic": ("零星热点", "时有时无的显著热点（不足 90 % 的时段），从未是显著冷点"),
    "oscillating": ("振荡热点", "曾是显著热点，也曾是显著冷点"),
    "historical": ("历史热点", "至少 90 % 的时段是显著热点，但最后一个时段不是"),
    "none": ("无模式", "从未是显著热点"),
}


def mann_kendall(series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mann–Kendall S, z and two-sided p for each row (ties corrected, continuity corrected)."""
    rows, t = series.shape
    s = np.zeros(rows)
    for lag in range(1, t):
        s += np.sign(series[:, lag:] - series[:, :-lag]).sum(axis=1)
    var = np.full(rows, t * (t - 1) * (2 * t + 5) / 18.0)
    ordered = np.sort(series, axis=1)
    tied = np.flatnonzero((np.diff(ordered, axis=1) == 0).any(axis=1))
    for r in tied:
        _, sizes = np.unique(ordered[r], return_counts=True)
        var[r] -= float((sizes * (sizes - 1) * (2 * sizes + 5)).sum()) / 18.0
    root = np.sqrt(np.where(var > 0, var, 1.0))
    z = np.where(s > 0, (s - 1) / root, np.where(s < 0, (s + 1) / root, 0.0))
    z = np.where(var > 0, z, 0.0)
    return s, z, 2.0 * norm.sf(np.abs(z))


def category(hot: np.ndarray, cold: np.ndarray, trend_z: float, trend_p: float) -> str:
    """The emerging-hotspot category of one cell from its per-step hot/cold flags and trend."""
    steps, n_hot = len(hot), int(hot.sum())
    if n_hot == 0:
        return "none"
    mostly = n_hot >= PERSISTENT_SHARE * steps
    if not hot[-1]:
        return "historical" if mostly else ("oscillating" if cold.any() else "sporadic")
    if mostly:
        if trend_p < TREND_ALPHA:
            return "intensifying" if trend_z > 0 else "diminishing"
        return "persistent"
    if n_hot == 1:
        return "new"
    run = len(hot) - (np.flatnonzero(~hot)[-1] + 1)
    if run == n_hot and run >= 2:
        return "consecutive"
    return "oscillating" if cold.any() else "sporadic"


def step_flags(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell and step: a significant hot / cold spot at 90 % after Benjamini–Hochberg within
    each step (the rule of `analytics.hotspots.classes`, for every column at once)."""
    p = np.nan_to_num(2.0 * norm.sf(np.abs(z)), nan=1.0)
    q = false_discovery_control(p, axis=0, method="bh")
    significant = (q < SIGNIFICANCE) & np.isfinite(z)
    return significant & (z > 0), significant & (z < 0)


def step_count(filt: CaseFilter, step: str) -> int:
    """How many whole steps fit in the window (at least MIN_STEPS, at most MAX_STEPS), or 400."""
    steps = filt.days // STEP_DAYS[step]
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise BadRequest(
            f"时间窗口需含 {MIN_STEPS}–{MAX_STEPS} 个{'周' if step == 'week' else '日'}"
        )
    return steps


def step_starts(filt: CaseFilter, step: str, steps: int) -> list[str]:
    """The first day of each step, oldest first."""
    days = STEP_DAYS[step]
    return [(filt.stop - timedelta(days=days * (steps - k) - 1)).isoformat() for k in range(steps)]


def emerging(conn: Connection, params: dict, user: User) -> dict:
    """The cells with a pattern (category other than none) with their Mann–Kendall trend and
    hot-step count (GeoJSON, lon/lat); `categories` tallies every cell of the extent."""
    filt = case_filter(params, user, default_days=364)
    steps = step_count(filt, params["step"])
    area = extent(conn, user, params)
    size = float(params["size"])
    cellset = cell_set(conn, area, params["cells"], size)
    if len(cellset) * steps > MAX_CELL_STEPS:
        raise BadRequest("网格数 × 时段数过多，请缩小区域、加大六边形或缩短窗口")
    if len(cellset) < 3:
        return {"type": "FeatureCollection", "features": [], "steps": [], "categories": {},
                "cells": len(cellset)}  # fmt: skip
    counts = case_counts(conn, area, params["cells"], size, cellset.ids, filt,
                         STEP_DAYS[params["step"]] * 86400, steps)  # fmt: skip
    z = gi_star_matrix(cellset.weights, counts)
    hot, cold = step_flags(z)
    _, trend_z, trend_p = mann_kendall(z)
    cats = [category(hot[i], cold[i], trend_z[i], trend_p[i]) for i in range(len(cellset))]
    shown = np.flatnonzero(np.array(cats) != "none")
    features = [
        {"type": "Feature", "id": cid, "geometry": g,
         "properties": {"cell_id": cid, "category": c, "category_label": CATEGORIES[c][0],
                        "count": int(counts[i].sum()), "last_count": int(counts[i, -1]),
                        "hot_steps": int(hot[i].sum()), "cold_steps": int(cold[i].sum()),
                        "last_z": round(float(z[i, -1]), 4),
                        "trend_z": round(float(trend_z[i]), 4),
                        "trend_p": round(float(trend_p[i]), 6)}}
        for i, cid, g, c in ((i, cellset.ids[i], cellset.lonlat[i], cats[i]) for i in shown)
    ]  # fmt: skip
    tally = {k: cats.count(k) for k in CATEGORIES}
    return {"type": "FeatureCollection", "features": features, "categories": tally, "cells": len(cats),
            "steps": step_starts(filt, params["step"], steps)}  # fmt: skip


EMERGING = register(Analysis(
    id="emerging", title="新兴热点（时空趋势）",
    description="按周（或日）逐时段计算 Gi* 热点，再对每个网格的 z 序列做 Mann–Kendall 趋势检验，"
                "归为新出现、连续、加剧、持续、减弱、零星、振荡、历史或无模式。",
    output="layer",
    params=(*CASE_PARAMS,
            Param("step", "时段", "choice", "week", choices=tuple(STEP_DAYS)),
            Param("cells", "网格", "choice", "unit_grid", choices=CELLS),
            Param("size", "六边形边长(m)", "float", 500, low=50, high=5000),
            Param("area", "区域", "area"), BBOX_PARAM),
    tables=("admin_area", "unit_grid", "case_record"), run=emerging, cached=True,
    extra={"categories": {k: {"label": v[0], "rule": v[1]} for k, v in CATEGORIES.items()}},
))  # fmt: skip
