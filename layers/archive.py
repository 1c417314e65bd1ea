"""Object archives (档案): all attributes, unit grid and community, related cases."""

from __future__ import annotations

from sqlalchemy import Connection, text

from errors import NotFound
from geodata.areas import in_areas
from layers.filters import Filter, where_parts
from layers.registry import Layer

RELATED_RADIUS_M = 30
MAX_RELATED = 50

PLACE = text(
    """
    SELECT g.code AS grid_code, c.code AS community_code, c.name AS community_name,
           s.code AS street_code, s.name AS street_name, d.code AS district_code, d.name AS district_name
    FROM (SELECT CAST(:wkt AS text) AS wkt) p
    CROSS JOIN LATERAL (SELECT ST_PointOnSurface(ST_GeomFromText(p.wkt, 4490)) AS pt) x
    LEFT JOIN LATERAL (SELECT code FROM unit_grid WHERE ST_Intersects(geom, x.pt)
                       ORDER BY code LIMIT 1) g ON true
    LEFT JOIN admin_area c ON c.level = 'community' AND ST_Intersects(c.geom, x.pt)
    LEFT JOIN admin_area s ON s.level = 'street' AND ST_Intersects(s.geom, x.pt)
    LEFT JOIN admin_area d ON d.level = 'district' AND ST_Intersects(d.geom, x.pt)
    LIMIT 1
    """
)

RELATED_CASES = text(
    f"""
    SELECT c.id, c.code, c.status, c.overdue, c.reported_at, c.closed_at,
           c.class_name, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
           (c.component_id = :component_id) AS linked
    FROM case_view c
    WHERE (c.component_id = :component_id
           OR ST_DWithin(c.geom::geography, ST_GeomFromText(:wkt, 4490)::geography, :radius))
      AND (CAST(:scope AS text[]) IS NULL OR {in_areas("c.geom", "scope")})
    ORDER BY c.reported_at DESC LIMIT :limit
    """
)


def object_archive(conn: Connection, layer: Layer, object_id: int, filters: list[Filter] = (),
                   scope: tuple[str, ...] | None = None) -> dict:  # fmt: skip
    """The archive of one object (within the filters), its related cases within `scope`, or 404."""
    params: dict = {"id": object_id}
    where = " AND ".join(["t.id = :id", *where_parts(layer, list(filters), params)])
    row = conn.execute(
        text(f"SELECT to_jsonb(t) - 'geom' - 'entrances' AS attrs, ST_AsText(t.geom) AS wkt, "
             f"ST_AsGeoJSON(ST_Transform(t.geom, 4326), 7)::json AS geometry "
             f"FROM {layer.source} t WHERE {where}"), params,
    ).mappings().first()  # fmt: skip
    if row is None:
        raise NotFound(f"图层 {layer.id} 中没有编号为 {object_id} 的对象，或您无权查看")
    place = conn.execute(PLACE, {"wkt": row["wkt"]}).mappings().first() or {}
    component_id = object_id if layer.id.startswith("component_") else -1
    cases = conn.execute(RELATED_CASES, {"component_id": component_id, "wkt": row["wkt"],
                                         "radius": RELATED_RADIUS_M, "limit": MAX_RELATED,
                                         "scope": list(scope) if scope else None})  # fmt: skip
    attrs = row["attrs"]
    return {
        "layer": layer.id, "layer_title": layer.title, "id": object_id,
        "attributes": attrs, "titles": {f.name: f.title for f in layer.fields},
        "geometry": row["geometry"], "place": dict(place),
        "owner": attrs.get("owner"), "maintainer": attrs.get("maintainer"),
        "related_cases": [_case(c) for c in cases.mappings()],
    }  # fmt: skip


def _case(row) -> dict:
    """A related case as JSON."""
    out = dict(row)
    for key in ("reported_at", "closed_at"):
        out[key] = out[key].isoformat() if out[key] else None
    return out
