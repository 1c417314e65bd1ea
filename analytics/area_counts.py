"""各区域对象数量: how many objects of a point layer lie in each district, street or community.

The first analysis on the contract, and the ranking the big screen and leaders read: counts per
area with the density per km². Areas and objects are both limited to the user's areas; a point
on a shared boundary counts for each area it touches (ST_Intersects).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from analytics.contract import Analysis, Param, register
from auth.access import find_layer, scoped
from auth.accounts import User
from errors import BadRequest
from geodata.areas import in_areas
from layers.filters import where_parts
from layers.registry import LAYERS

POINT_LAYERS = tuple(x.id for x in LAYERS if x.geometry == "point")
LEVELS = ("district", "street", "community")


def area_counts(conn: Connection, params: dict, user: User) -> dict:
    """Rows (code, name, count, area_km2, per_km2) per area, most objects first."""
    layer = find_layer(params["layer"], user)
    if layer.geometry != "point":
        raise BadRequest("只能统计点图层")
    values: dict = {"level": params["level"], "parent": params["parent"],
                    "scope": list(user.scope) if user.scope else None}  # fmt: skip
    joined = " AND ".join(["ST_Intersects(t.geom, a.geom)",
                           *where_parts(layer, scoped(user, []), values)])  # fmt: skip
    sql = f"""
    SELECT a.code, a.name, count(t.id) AS count, a.area_m2 / 1e6 AS area_km2
    FROM admin_area a LEFT JOIN {layer.source} t ON {joined}
    WHERE a.level = :level AND (CAST(:parent AS text) IS NULL OR a.parent_code = :parent)
      AND (CAST(:scope AS text[]) IS NULL OR {in_areas("a.geom", "scope", polygonal=True)})
    GROUP BY a.code, a.name, a.area_m2 ORDER BY count(t.id) DESC, a.code"""
    rows = [dict(r) for r in conn.execute(text(sql), values).mappings()]
    for r in rows:
        r["per_km2"] = round(r["count"] / r["area_km2"], 3) if r["area_km2"] else None
    return {"layer": layer.id, "layer_title": layer.title, "level": params["level"], "rows": rows}


AREA_COUNTS = register(Analysis(
    id="area_counts", title="各区域对象数量",
    description="点图层的对象在各区县、街道或社区中的数量与密度（个/平方公里），按数量排序。",
    output="table",
    params=(Param("layer", "图层", "choice", "case", choices=POINT_LAYERS),
            Param("level", "区域级别", "choice", "district", choices=LEVELS),
            Param("parent", "上级区域", "area")),
    tables=("admin_area", "component", "case_record", "geocode", "drain_well", "drain_outfall",
            "pump_station", "waterlogging_point", "sanitation_facility", "parking_lot",
            "parking_occupancy", "camera", "sensor", "alarm"),
    run=area_counts, cached=True,
))  # fmt: skip
