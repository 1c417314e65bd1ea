"""案件热力 (heat map): case counts per web-mercator tile of the view, from a pre-aggregated pyramid.

The grid of a view (`bbox`) is the web-mercator tiles (XYZ, EPSG:3857) of the finest zoom z whose
tile side is at least max(width, height) / 64 of the view, so at most 65 × 65 tiles meet the view
and the payload stays bounded (≤ 4,225 weighted points) whatever the number of cases; zooming in
makes the tiles smaller. Each point is the mean position of its tile's cases, weighted by their
count; a tile that meets the view counts all its cases (also those just outside the view: the
grid is aligned to the tiles, not to the view). The cases are those of the shared case filters
(`analytics.case_filters`: window in the city's clock, class, source, status, the user's areas).

Two paths give the same answer: the pyramid `case_heat_cell` (migration 0010, kept by triggers on
`case_record`) when z ≤ 17 and neither a user's scope nor an area focus applies, summing monthly
rows of zoom max(z, 11) and daily rows of zoom 17 for the days outside whole months; otherwise
the raw cases. Positions are summed in nano-degrees on both paths, so the means are identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.case_filters import (
    CASE_PARAMS,
    DONE_STATUSES,
    OPEN_STATUS,
    CaseFilter,
    case_filter,
)
from analytics.contract import Analysis, Param, register
from auth.accounts import User
from errors import BadRequest, Forbidden
from geodata.areas import in_areas
from geodata.catalog import CASE_STATUSES, SRID, WEB_MERCATOR_HALF, WEB_MERCATOR_SRID
from params import parse_bbox

GRID = 64
PYRAMID_ZOOMS = (11, 17)  # monthly rows at these zooms and between; daily rows at the last
MAX_ZOOM = 24  # the finest grid (tiles of ≈ 2.4 m), for the smallest views
VIEW = text(
    f"SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM (SELECT ST_Transform("
    f"ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326), {WEB_MERCATOR_SRID}) AS e) v"
)
RAW = (  # {where}: CaseFilter.where("c"); tile indexes as the pyramid's triggers compute them
    f"""
    SELECT x, y, count(*) AS n, sum(lon) AS lon, sum(lat) AS lat FROM (
      SELECT floor((ST_X(m.p) + :half) / :side)::int AS x, floor((:half - ST_Y(m.p)) / :side)::int AS y,
             round(ST_X(c.geom) * 1e9)::bigint AS lon, round(ST_Y(c.geom) * 1e9)::bigint AS lat
      FROM case_record c CROSS JOIN LATERAL (SELECT ST_Transform(c.geom, {WEB_MERCATOR_SRID}) AS p) m
      WHERE c.geom && ST_Expand(ST_Transform(ST_MakeEnvelope(:mx0, :my0, :mx1, :my1,
                                {WEB_MERCATOR_SRID}), {SRID}), 1e-5)
        AND {{where}} AND (CAST(:focus AS text[]) IS NULL OR {in_areas("c.geom", "focus")})) t
    WHERE x BETWEEN :x0 AND :x1 AND y BETWEEN :y0 AND :y1
    GROUP BY x, y
    """
)
ALL = "*"  # the class, source and status of the pyramid's rows that count every case
DIMS = (  # :statuses: ["*"] with no filter (the rows of every case), else the wanted statuses
    "h.status = ANY(CAST(:statuses AS text[]))"
    " AND (CAST(:f_prefix AS text) IS NULL OR h.class_code LIKE :f_prefix || '%')"
    " AND (CAST(:f_source AS text) IS NULL OR h.source = :f_source)"
)
PYRAMID = text(
    f"""
    SELECT x, y, sum(n) AS n, sum(sum_lon) AS lon, sum(sum_lat) AS lat FROM (
      SELECT h.x >> :ms AS x, h.y >> :ms AS y, h.n, h.sum_lon, h.sum_lat FROM case_heat_cell h
      WHERE h.z = :mz AND h.grain = 'month' AND h.period >= :m0 AND h.period < :m1
        AND h.x BETWEEN :mx0 AND :mx1 AND h.y BETWEEN :my0 AND :my1 AND {DIMS}
      UNION ALL
      SELECT h.x >> :ds, h.y >> :ds, h.n, h.sum_lon, h.sum_lat FROM case_heat_cell h
      WHERE h.z = :dz AND h.grain = 'day'
        AND (h.period >= :d0 AND h.period < :m0 OR h.period >= :m1 AND h.period <= :d1)
        AND h.x BETWEEN :dx0 AND :dx1 AND h.y BETWEEN :dy0 AND :dy1 AND {DIMS}) r
    GROUP BY x, y
    """
)


@dataclass(frozen=True)
class Grid:
    """The tiles of zoom z meeting a view: columns x0..x1, rows y0..y1 (rows from the north)."""

    z: int
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def side(self) -> float:
        """A tile's side in EPSG:3857 metres."""
        return 2 * WEB_MERCATOR_HALF / 2**self.z

    def corner(self, x: int, y: int) -> tuple[float, float]:
        """The EPSG:3857 north-west corner of tile (x, y)."""
        return x * self.side - WEB_MERCATOR_HALF, WEB_MERCATOR_HALF - y * self.side

    def span(self, shift: int) -> dict:
        """The tile ranges at zoom z + shift covering this grid's tiles."""
        return {"x0": self.x0 << shift, "x1": ((self.x1 + 1) << shift) - 1,
                "y0": self.y0 << shift, "y1": ((self.y1 + 1) << shift) - 1}  # fmt: skip


def view_grid(conn: Connection, box: dict) -> Grid:
    """The grid of a lon/lat view: the finest zoom with at most GRID tiles across its extent."""
    v = conn.execute(VIEW, box).one()
    extent = max(v.x1 - v.x0, v.y1 - v.y0)
    z = min(MAX_ZOOM, max(0, math.floor(math.log2(2 * WEB_MERCATOR_HALF * GRID / extent))))
    side = 2 * WEB_MERCATOR_HALF / 2**z
    top = 2**z - 1
    return Grid(z, *(min(top, max(0, math.floor(d / side))) for d in (
        v.x0 + WEB_MERCATOR_HALF, WEB_MERCATOR_HALF - v.y1,
        v.x1 + WEB_MERCATOR_HALF, WEB_MERCATOR_HALF - v.y0)))  # fmt: skip


def raw_cells(conn: Connection, grid: Grid, filt: CaseFilter, focus: str | None) -> list:
    """Per tile of the grid (x, y, n, Σ lon, Σ lat in nano-degrees), from the cases themselves."""
    (mx0, my1), (mx1, my0) = grid.corner(grid.x0, grid.y0), grid.corner(grid.x1 + 1, grid.y1 + 1)
    return conn.execute(text(RAW.replace("{where}", filt.where("c"))), {
        **filt.bind(), "half": WEB_MERCATOR_HALF, "side": grid.side, "mx0": mx0, "my0": my0,
        "mx1": mx1, "my1": my1, "x0": grid.x0, "x1": grid.x1, "y0": grid.y0, "y1": grid.y1,
        "focus": [focus] if focus else None}).all()  # fmt: skip


def whole_months(start: date, stop: date) -> tuple[date, date]:
    """[first, last) of the whole calendar months inside [start, stop] (first == last: none)."""
    first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    last = (stop + timedelta(days=1)).replace(day=1) if (stop + timedelta(days=1)).day == 1 \
        else stop.replace(day=1)  # fmt: skip
    return (first, last) if first < last else (stop + timedelta(days=1),) * 2


def statuses(filt: CaseFilter) -> list[str]:
    """The pyramid's status values a filter reads: "*" when it filters nothing, else real ones."""
    if filt.prefix is None and filt.source is None and filt.status is None:
        return [ALL]
    if filt.status == OPEN_STATUS:
        return [s for s in CASE_STATUSES if s not in DONE_STATUSES]
    return [filt.status] if filt.status else list(CASE_STATUSES)


def pyramid_cells(conn: Connection, grid: Grid, filt: CaseFilter) -> list:
    """Per tile of the grid (x, y, n, Σ lon, Σ lat), summed from the pyramid's rows."""
    low, high = PYRAMID_ZOOMS
    mz = max(grid.z, low)
    m0, m1 = whole_months(filt.start, filt.stop)
    month, day = grid.span(mz - grid.z), grid.span(high - grid.z)
    return conn.execute(PYRAMID, {
        **filt.bind(), "statuses": statuses(filt), "mz": mz, "ms": mz - grid.z, "dz": high,
        "ds": high - grid.z, "m0": m0, "m1": m1, "d0": filt.start, "d1": filt.stop,
        **{f"m{k}": v for k, v in month.items()}, **{f"d{k}": v for k, v in day.items()}}).all()  # fmt: skip


def uses_pyramid(grid: Grid, filt: CaseFilter, focus: str | None) -> bool:
    """Whether the pyramid answers: a grid of zoom ≤ 17, no scope, no area focus."""
    return grid.z <= PYRAMID_ZOOMS[1] and filt.scope is None and focus is None


def points(cells: list) -> list[list]:
    """Weighted points [lat, lon, n] at the mean position of each tile's cases."""
    return [[round(int(c.lat) / int(c.n) / 1e9, 6), round(int(c.lon) / int(c.n) / 1e9, 6), int(c.n)]
            for c in sorted(cells, key=lambda c: (c.y, c.x)) if c.n]  # fmt: skip


def heat(conn: Connection, params: dict, user: User) -> dict:
    """Weighted points [lat, lon, count] of the filtered cases in the tiles meeting the view."""
    if not params["bbox"]:
        raise BadRequest("缺少参数 bbox（minx,miny,maxx,maxy）")
    minx, miny, maxx, maxy = parse_bbox(params["bbox"])
    filt = case_filter(params, user)
    focus = params["area"]
    if focus is not None and not cov.allowed(user, focus):
        raise Forbidden("该区域不在您的管辖范围内")
    grid = view_grid(conn, {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy})
    pyramid = uses_pyramid(grid, filt, focus)
    cells = pyramid_cells(conn, grid, filt) if pyramid else raw_cells(conn, grid, filt, focus)
    pts = points(cells)
    return {"points": pts, "cell_m": round(grid.side, 1), "zoom": grid.z,
            "source": "pyramid" if pyramid else "cases", "max": max((p[2] for p in pts), default=0),
            "total": sum(p[2] for p in pts), "from": filt.start.isoformat(),
            "to": filt.stop.isoformat()}  # fmt: skip


HEAT_MAP = register(Analysis(
    id="heat", title="案件热力",
    description="视野内案件按网格（Web 墨卡托瓦片）聚合的加权点（不超过 4,225 个），用于热力图；"
                "放大时网格随之变细。",
    output="layer",
    params=(*CASE_PARAMS, Param("bbox", "视野范围", "text"),
            Param("zoom", "缩放级别（可选：网格按 bbox 计算）", "int", None, low=0, high=22),
            Param("area", "区域（地图聚焦的行政区划）", "area")),
    tables=("case_record",), run=heat,
))  # fmt: skip
