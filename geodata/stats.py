"""Layer statistics within an administrative area: counts (and areas for polygons) by property."""

from __future__ import annotations

from sqlalchemy import Connection, text

from errors import NotFound
from geodata.layer_sql import Filter, filter_sql, q
from layers.registry import Field, Layer


def layer_stats(conn: Connection, layer: Layer, *, area: str | None, by: Field,
                filters: list[Filter]) -> dict:  # fmt: skip
    """Counts grouped by `by` inside the admin area `area` (whole database when None)."""
    params: dict = {}
    parts = filter_sql(layer, filters, params)
    area_name = None
    if area is not None:
        found = conn.execute(text("SELECT name FROM admin_area WHERE code = :c"), {"c": area})
        area_name = found.scalar()
        if area_name is None:
            raise NotFound(f"没有代码为 {area} 的行政区划")
        parts.append("ST_Intersects(t.geom, (SELECT geom FROM admin_area WHERE code = :area))")
        params["area"] = area
    measure = ", sum(ST_Area(t.geom::geography)) AS area_m2" if layer.geometry == "polygon" else ""
    sql = (f"SELECT t.{q(by.name)}::text AS value, count(*) AS count{measure} "
           f"FROM {layer.source} t WHERE {' AND '.join(parts) or 'true'} "
           f"GROUP BY 1 ORDER BY count(*) DESC, 1")  # fmt: skip
    rows = [dict(r) for r in conn.execute(text(sql), params).mappings()]
    return {"layer": layer.id, "area": area, "area_name": area_name, "by": by.name,
            "total": sum(r["count"] for r in rows), "groups": rows}  # fmt: skip
