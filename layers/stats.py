"""Layer statistics within an administrative area: counts (and areas for polygons) by property."""

from __future__ import annotations

from sqlalchemy import Connection, text

from errors import BadRequest, NotFound
from geodata.areas import AREAS_UNION, area_name
from layers.filters import Filter, InAreas, q, where_parts
from layers.registry import Field, Layer

MAX_GROUPS = 200
PERIODS = {"day": "日", "week": "周", "month": "月"}


def group_expression(by: Field, period: str) -> str:
    """SQL of the grouping value: the field, or its date truncated to the period."""
    if by.kind in ("date", "datetime"):
        if period not in PERIODS:
            raise BadRequest(f"period 只能是 {', '.join(PERIODS)}")
        return f"to_char(date_trunc('{period}', t.{q(by.name)}), 'YYYY-MM-DD')"
    return f"t.{q(by.name)}::text"


def area_measure(layer: Layer, area: str | None, params: dict) -> str:
    """Select part summing polygon areas in m², clipped to the focused area when there is one."""
    if layer.geometry != "polygon":
        return ""
    if area is None:
        return ", sum(ST_Area(t.geom::geography)) AS area_m2"
    params["clip"] = [area]
    clip = AREAS_UNION.format(key="clip")
    return f", sum(ST_Area(ST_Intersection(t.geom, {clip})::geography)) AS area_m2"


def layer_stats(conn: Connection, layer: Layer, *, area: str | None, by: Field,
                filters: list[Filter], period: str = "day") -> dict:  # fmt: skip
    """Counts grouped by `by` inside the admin area `area` (whole database when None)."""
    name = None
    if area is not None:
        name = area_name(conn, area)
        if name is None:
            raise NotFound(f"没有代码为 {area} 的行政区划")
        filters = [*filters, InAreas((area,))]
    params: dict = {"max_groups": MAX_GROUPS + 1}
    where = " AND ".join(where_parts(layer, filters, params)) or "true"
    sql = (f"SELECT {group_expression(by, period)} AS value, count(*) AS count, "
           f"sum(count(*)) OVER () AS grand_total"
           f"{area_measure(layer, area, params)} FROM {layer.source} t WHERE {where} "
           f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT :max_groups")  # fmt: skip
    rows = [dict(r) for r in conn.execute(text(sql), params).mappings()]
    total = int(rows[0]["grand_total"]) if rows else 0
    for r in rows:
        del r["grand_total"]
    return {"layer": layer.id, "area": area, "area_name": name, "by": by.name,
            "total": total, "groups": rows[:MAX_GROUPS],
            "truncated": len(rows) > MAX_GROUPS}  # fmt: skip
