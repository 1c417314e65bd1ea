"""案件热力 (heat map): case counts aggregated in PostGIS on a grid fitted to the view.

The view (`bbox`) is cut into at most GRID × GRID square cells in web mercator, so the payload
stays bounded (≤ 4,096 weighted points) whatever the number of cases; zooming in makes the cells
smaller. Each point is the mean position of its cell's cases, weighted by their count. The cases
are those of the shared case filters (`analytics.case_filters`: window in the city's clock, class,
source, status, the user's areas).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.case_filters import CASE_PARAMS, case_filter
from analytics.contract import Analysis, Param, register
from auth.accounts import User
from errors import BadRequest, Forbidden
from geodata.areas import in_areas
from geodata.catalog import SRID, WEB_MERCATOR_SRID
from params import parse_bbox

GRID = 64
HEAT = (  # {where}: CaseFilter.where("c")
    f"""
    WITH v AS (SELECT ST_Transform(ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326), {WEB_MERCATOR_SRID}) AS e)
    SELECT avg(ST_Y(c.geom)) AS lat, avg(ST_X(c.geom)) AS lon, count(*) AS n
    FROM case_record c, v
    WHERE c.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, {SRID}) AND {{where}}
      AND (CAST(:focus AS text[]) IS NULL OR {in_areas("c.geom", "focus")})
    GROUP BY floor((ST_X(ST_Transform(c.geom, {WEB_MERCATOR_SRID})) - ST_XMin(v.e)) / :cell),
             floor((ST_Y(ST_Transform(c.geom, {WEB_MERCATOR_SRID})) - ST_YMin(v.e)) / :cell)
    """
)
EXTENT = text(
    f"SELECT greatest(ST_XMax(e) - ST_XMin(e), ST_YMax(e) - ST_YMin(e)) FROM (SELECT ST_Transform("
    f"ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326), {WEB_MERCATOR_SRID}) AS e) v"
)


def heat(conn: Connection, params: dict, user: User) -> dict:
    """Weighted points [lat, lon, count] of the filtered cases in the view."""
    if not params["bbox"]:
        raise BadRequest("缺少参数 bbox（minx,miny,maxx,maxy）")
    minx, miny, maxx, maxy = parse_bbox(params["bbox"])
    filt = case_filter(params, user)
    if params["area"] is not None and not cov.allowed(user, params["area"]):
        raise Forbidden("该区域不在您的管辖范围内")
    box = {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy}
    cell = float(conn.execute(EXTENT, box).scalar()) / GRID
    rows = conn.execute(text(HEAT.replace("{where}", filt.where("c"))),
                        {**box, **filt.bind(), "cell": cell,
                         "focus": [params["area"]] if params["area"] else None}).all()  # fmt: skip
    points = [[round(r.lat, 6), round(r.lon, 6), int(r.n)] for r in rows]
    return {"points": points, "cell_m": round(cell, 1), "max": max((p[2] for p in points), default=0),
            "total": sum(p[2] for p in points), "from": filt.start.isoformat(),
            "to": filt.stop.isoformat()}  # fmt: skip


HEAT_MAP = register(Analysis(
    id="heat", title="案件热力",
    description="视野内案件按网格聚合的加权点（不超过 4,096 个），用于热力图；放大时网格随之变细。",
    output="layer",
    params=(*CASE_PARAMS, Param("bbox", "视野范围", "text"),
            Param("zoom", "缩放级别（可选：网格按 bbox 计算）", "int", None, low=0, high=22),
            Param("area", "区域（地图聚焦的行政区划）", "area")),
    tables=("case_record",), run=heat,
))  # fmt: skip
