"""反复发生问题 (recurring problems): places where the same class of problem keeps coming back.

A place is a cell (unit grid, community or hexagon, as for the hotspots) or one component (部件).
Over the last M weeks up to `to` (weeks counted back from its end), a (place, class) pair recurs
when its cases fall in at least N distinct weeks. Pairs are ranked by those weeks, then by the
number of cases; each row carries its latest cases' codes so the page can open them.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Connection, text

from analytics.case_filters import CASE_PARAMS, CaseFilter, class_prefix
from analytics.cells import CELL_SQL, CELLS, EXTENT, IN_EXTENT
from analytics.contract import Analysis, Param, register
from analytics.hotspots import BBOX_PARAM, extent
from auth.accounts import User
from errors import BadRequest
from geodata import catalog
from geodata.catalog import SRID

PLACES = (*CELLS, "component")
LINKED_CASES = 20
WEEK_S = 7 * 86400
CELL_PLACES = f"""
    WITH {EXTENT},
         places AS MATERIALIZED (SELECT c.cell_id AS place, c.native FROM ({{cells}}) c, a
                                 WHERE {IN_EXTENT})
    SELECT places.place, k.id, k.code, k.reported_at, k.geom,
           coalesce(k.event_class_code, k.component_class_code) AS cls
    FROM places JOIN case_record k ON k.geom && places.native AND ST_Intersects(k.geom, places.native)
"""
COMPONENT_PLACES = """
    WITH a AS (SELECT ST_Transform(ST_GeomFromWKB(:wkb, :srid), {srid}) AS g)
    SELECT p.code AS place, k.id, k.code, k.reported_at, k.geom, k.component_class_code AS cls
    FROM case_record k JOIN component p ON p.id = k.component_id, a
    WHERE k.geom && a.g AND ST_Intersects(k.geom, a.g)
"""
RANKED = """
    WITH hits AS ({hits} AND {where})
    SELECT place, cls, count(DISTINCT floor(extract(epoch FROM (:f_stop - reported_at)) / :week_s))
             AS weeks,
           count(*) AS cases, min(reported_at) AS first_at, max(reported_at) AS last_at,
           (array_agg(code ORDER BY reported_at DESC))[1:{linked}] AS codes,
           ST_X(ST_Centroid(ST_Collect(geom))) AS lon, ST_Y(ST_Centroid(ST_Collect(geom))) AS lat
    FROM hits GROUP BY place, cls
    HAVING count(DISTINCT floor(extract(epoch FROM (:f_stop - reported_at)) / :week_s)) >= :min_weeks
    ORDER BY weeks DESC, cases DESC, place, cls LIMIT :top
"""


def class_name(code: str) -> str:
    """The Chinese name of an event or component class code."""
    return (catalog.EVENT_MINOR.get(code) or catalog.COMPONENT_MINOR.get(code)
            or catalog.EVENT_MAJOR.get(code) or catalog.COMPONENT_MAJOR.get(code) or code)  # fmt: skip


def recent_weeks(params: dict, user: User) -> CaseFilter:
    """The last M whole weeks up to `to` (default today) with the class/source/status filters."""
    if params["min_weeks"] > params["weeks"]:
        raise BadRequest("min_weeks 不能大于 weeks")
    stop = date.fromisoformat(params["to"]) if params["to"] else date.today()
    start = stop - timedelta(days=7 * params["weeks"] - 1)
    return CaseFilter(start, stop, class_prefix(params["class"]), params["source"],
                      params["status"], tuple(user.scope) if user.scope else None)  # fmt: skip


def hits_sql(place: str) -> str:
    """The cases of the area with their place, as a query ending in a WHERE clause."""
    if place == "component":
        return COMPONENT_PLACES.replace("{srid}", str(SRID))
    return CELL_PLACES.replace("{cells}", CELL_SQL[place]) + " WHERE TRUE"


def recurring(conn: Connection, params: dict, user: User) -> dict:
    """The (place, class) pairs recurring in at least N of the last M weeks, ranked."""
    filt = recent_weeks(params, user)
    area = extent(conn, user, params)
    sql = (RANKED.replace("{hits}", hits_sql(params["place"])).replace("{where}", filt.where("k"))
           .replace("{linked}", str(LINKED_CASES)))  # fmt: skip
    rows = conn.execute(text(sql), {**area.sql_params, **filt.bind(), "size": float(params["size"]),
                                    "week_s": WEEK_S, "min_weeks": params["min_weeks"],
                                    "top": params["top"]}).mappings().all()  # fmt: skip
    return {
        "from": filt.start.isoformat(), "to": filt.stop.isoformat(), "weeks": params["weeks"],
        "min_weeks": params["min_weeks"], "place_kind": params["place"],
        "rows": [{"rank": i + 1, "place": r["place"], "class_code": r["cls"],
                  "class_name": class_name(r["cls"]), "weeks_with_cases": int(r["weeks"]),
                  "count": int(r["cases"]), "first_at": r["first_at"].isoformat(),
                  "last_at": r["last_at"].isoformat(), "case_codes": list(r["codes"]),
                  "lon": round(r["lon"], 6), "lat": round(r["lat"], 6)}
                 for i, r in enumerate(rows)],
    }  # fmt: skip


RECURRING = register(Analysis(
    id="recurring", title="反复发生问题",
    description="近 M 周内同一地点（网格或部件）同类问题在至少 N 周出现，按出现周数和案件数排序。",
    output="table",
    params=(Param("to", "截止日期", "date"),
            Param("weeks", "最近周数 M", "int", 12, low=2, high=104),
            Param("min_weeks", "至少出现周数 N", "int", 4, low=2, high=104),
            *(p for p in CASE_PARAMS if p.name in ("class", "source", "status")),
            Param("place", "地点", "choice", "unit_grid", choices=PLACES),
            Param("size", "六边形边长(m)", "float", 500, low=50, high=5000),
            Param("top", "返回条数", "int", 100, low=1, high=1000),
            Param("area", "区域", "area"), BBOX_PARAM),
    tables=("admin_area", "unit_grid", "component", "case_record"), run=recurring, cached=True,
))  # fmt: skip
