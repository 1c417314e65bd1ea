"""案件热力 (heat map): case counts aggregated in PostGIS on a grid fitted to the view.

The view (`bbox`) is cut into at most GRID × GRID square cells in web mercator, so the payload
stays bounded (≤ 4,096 weighted points) whatever the number of cases; zooming in makes the cells
smaller. Each point is the mean position of its cell's cases, weighted by their count.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, text

from analytics.contract import Analysis, Param, register
from analytics.hotspots import class_prefix, window
from auth.accounts import User
from errors import BadRequest
from geodata.areas import in_areas
from geodata.catalog import SRID, WEB_MERCATOR_SRID
from params import parse_bbox

GRID = 64
HEAT = text(
    f"""
    WITH v AS (SELECT ST_Transform(ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326), {WEB_MERCATOR_SRID}) AS e)
    SELECT avg(ST_Y(c.geom)) AS lat, avg(ST_X(c.geom)) AS lon, count(*) AS n
    FROM case_record c, v
    WHERE c.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, {SRID})
      AND c.reported_at >= :start AND c.reported_at < :stop
      AND (CAST(:prefix AS text) IS NULL OR c.event_class_code LIKE :prefix || '%'
           OR c.component_class_code LIKE :prefix || '%')
      AND (CAST(:scope AS text[]) IS NULL OR {in_areas("c.geom", "scope")})
    GROUP BY floor((ST_X(ST_Transform(c.geom, {WEB_MERCATOR_SRID})) - ST_XMin(v.e)) / :cell),
             floor((ST_Y(ST_Transform(c.geom, {WEB_MERCATOR_SRID})) - ST_YMin(v.e)) / :cell)
    """
)
EXTENT = text(
    f"SELECT greatest(ST_XMax(e) - ST_XMin(e), ST_YMax(e) - ST_YMin(e)) FROM (SELECT ST_Transform("
    f"ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326), {WEB_MERCATOR_SRID}) AS e) v"
)


def heat(conn: Connection, params: dict, user: User) -> dict:
    """Weighted points [lat, lon, count] of the cases in the view and window."""
    if not params["bbox"]:
        raise BadRequest("缺少参数 bbox（minx,miny,maxx,maxy）")
    minx, miny, maxx, maxy = parse_bbox(params["bbox"])
    start, stop = window(params)
    box = {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy}
    cell = float(conn.execute(EXTENT, box).scalar()) / GRID
    rows = conn.execute(HEAT, {**box, "cell": cell, "start": start, "stop": stop + timedelta(days=1),
                               "prefix": class_prefix(params["class"]),
                               "scope": list(user.scope) if user.scope else None}).all()  # fmt: skip
    points = [[round(r.lat, 6), round(r.lon, 6), int(r.n)] for r in rows]
    return {"points": points, "cell_m": round(cell, 1), "max": max((p[2] for p in points), default=0),
            "total": sum(p[2] for p in points), "from": start.isoformat(), "to": stop.isoformat()}  # fmt: skip


HEAT_MAP = register(Analysis(
    id="heat", title="案件热力",
    description="视野内案件按网格聚合的加权点（不超过 4,096 个），用于热力图；放大时网格随之变细。",
    output="layer",
    params=(Param("from", "开始日期", "date"), Param("to", "结束日期", "date"),
            Param("class", "案件类别代码前缀", "text"), Param("bbox", "视野范围", "text"),
            Param("zoom", "缩放级别（可选：网格按 bbox 计算）", "int", None, low=0, high=22)),
    tables=("case_record",), run=heat,
))  # fmt: skip
