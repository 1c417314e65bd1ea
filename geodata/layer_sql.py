"""SQL for registry layers: vector tiles (ST_AsMVT), GeoJSON features, statistics and versions.

Identifiers come only from the registry (quoted); request values are always bound parameters.
The tile envelope is transformed to the storage SRID, so the GiST index on `geom` serves the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, text

from errors import BadRequest
from layers.registry import Field, Layer

TILE_EXTENT = 4096
TILE_BUFFER = 64
MAX_TILE_FEATURES = 5000
AGGREGATE_CELLS = 64  # per tile side: at most 66 x 66 = 4356 cells with the buffer, under the cap
WEB_MERCATOR_HALF = 20037508.342789244


@dataclass(frozen=True)
class Filter:
    """One validated filter: a registry field and bound values."""

    field: Field
    op: str  # in | from | to
    values: tuple


def q(name: str) -> str:
    """Quote an identifier taken from the registry."""
    return '"' + name.replace('"', '""') + '"'


def parse_filters(layer: Layer, args: dict[str, str], *, ignore: set[str]) -> list[Filter]:
    """Validate query parameters against the layer's filterable fields (400 on anything else)."""
    filters = []
    for key, raw in sorted(args.items()):
        if key in ignore:
            continue
        if key == "area":
            filters.append(area_filter(raw))
            continue
        name, op = _split_range(key)
        fld = layer.field(name)
        if fld is None or not fld.filterable or (op != "in" and not fld.range):
            allowed = ", ".join(f.name for f in layer.filterable) or "无"
            raise BadRequest(f"图层 {layer.id} 不支持筛选参数 {key}（可用：{allowed}）")
        filters.append(Filter(fld, op, _parse_values(fld, op, raw)))
    return filters


AREA_FIELD = Field("area", "区域")


def area_filter(raw: str) -> Filter:
    """Keep only objects inside an administrative area (6, 9 or 12-digit code)."""
    code = raw.strip()
    if not (code.isdigit() and len(code) in (6, 9, 12)):
        raise BadRequest("area 必须是 6、9 或 12 位行政区划代码")
    return Filter(AREA_FIELD, "area", (code,))


def scope_filter(codes: tuple[str, ...]) -> Filter:
    """Limit to a user's districts/streets (access control; never from request parameters)."""
    return Filter(AREA_FIELD, "scope", tuple(codes))


SCOPE_SQL = "(SELECT ST_Union(a.geom) FROM admin_area a WHERE a.code = ANY(:{key}))"


def tile_in_scope(conn: Connection, z: int, x: int, y: int, codes: tuple[str, ...]) -> bool:
    """Whether a tile touches the user's areas at all."""
    sql = ("SELECT ST_Intersects(ST_Transform(ST_TileEnvelope(:z, :x, :y), 4490), "
           + SCOPE_SQL.format(key="codes") + ")")  # fmt: skip
    return bool(conn.execute(text(sql), {"z": z, "x": x, "y": y, "codes": list(codes)}).scalar())


def point_in_scope(conn: Connection, lon: float, lat: float, codes: tuple[str, ...]) -> bool:
    """Whether a point lies in the user's areas."""
    sql = ("SELECT ST_Intersects(ST_SetSRID(ST_MakePoint(:lon, :lat), 4490), "
           + SCOPE_SQL.format(key="codes") + ")")  # fmt: skip
    return bool(conn.execute(text(sql), {"lon": lon, "lat": lat, "codes": list(codes)}).scalar())


def _split_range(key: str) -> tuple[str, str]:
    """`reported_at_from` -> (reported_at, from); plain names are equality filters."""
    for suffix in ("_from", "_to"):
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix[1:]
    return key, "in"


def _parse_values(fld: Field, op: str, raw: str) -> tuple:
    """Parse comma-separated filter values by the field's kind."""
    parts = [p.strip() for p in raw.split(",") if p.strip()] if op == "in" else [raw.strip()]
    if not parts:
        raise BadRequest(f"筛选参数 {fld.name} 不能为空")
    if fld.kind == "bool":
        if any(p not in ("true", "false") for p in parts):
            raise BadRequest(f"筛选参数 {fld.name} 只能是 true 或 false")
        return tuple(p == "true" for p in parts)
    if fld.kind in ("date", "datetime"):
        try:
            return tuple(datetime.fromisoformat(p) if "T" in p else date.fromisoformat(p)
                         for p in parts)  # fmt: skip
        except ValueError:
            raise BadRequest(f"筛选参数 {fld.name} 需要 YYYY-MM-DD 格式的日期") from None
    if fld.values and any(p not in fld.values for p in parts):
        bad = next(p for p in parts if p not in fld.values)
        raise BadRequest(f"筛选参数 {fld.name} 的取值 {bad} 无效")
    return tuple(parts)


def filter_sql(layer: Layer, filters: list[Filter], params: dict) -> list[str]:
    """WHERE parts for the layer's fixed condition and the request filters (params filled in)."""
    parts = [f"({layer.where})"] if layer.where else []
    for i, f in enumerate(filters):
        key = f"f{i}"
        column = f"t.{q(f.field.name)}"
        if f.op == "scope":
            parts.append(f"ST_Intersects(t.geom, {SCOPE_SQL.format(key=key)})")
            params[key] = list(f.values)
        elif f.op == "area":
            parts.append(
                f"ST_Intersects(t.geom, (SELECT a.geom FROM admin_area a WHERE a.code = :{key}))"
            )
            params[key] = f.values[0]
        elif f.op == "in":
            parts.append(f"{column} = ANY(:{key})")
            params[key] = list(f.values)
        else:
            parts.append(f"{column} {'>=' if f.op == 'from' else '<'} :{key}")
            value = f.values[0]
            params[key] = _day_after(value) if f.op == "to" and type(value) is date else value
    return parts


def _day_after(d: date) -> date:
    """`_to=YYYY-MM-DD` includes that whole day."""
    return date.fromordinal(d.toordinal() + 1)


def property_columns(layer: Layer) -> str:
    """Select list of the exposed fields."""
    return ", ".join(f"t.{q(f.name)}" for f in layer.fields)


def tile_sql(layer: Layer, z: int, filters: list[Filter]) -> tuple[str, dict]:
    """The MVT query for a layer at zoom z: raw features, or counts per cell for points."""
    params: dict = {"layer": layer.id, "margin": TILE_BUFFER / TILE_EXTENT}
    where = " AND ".join(["t.geom && b.q", *filter_sql(layer, filters, params)])
    bounds = ("WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS e, "
              "ST_TileEnvelope(:z, :x, :y, margin => :margin) AS em, "
              "ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4490) AS q)")  # fmt: skip
    if layer.geometry == "point" and z < layer.detail_zoom:
        params["cell"] = 2 * WEB_MERCATOR_HALF / 2**z / AGGREGATE_CELLS
        sql = f"""{bounds}
        SELECT ST_AsMVT(m, :layer, {TILE_EXTENT}, 'geom') FROM (
          SELECT count(*)::int AS count,
                 ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(avg(ST_X(s.p)), avg(ST_Y(s.p))), 3857),
                              (SELECT e FROM b), {TILE_EXTENT}, {TILE_BUFFER}, true) AS geom
          FROM (SELECT ST_Transform(t.geom, 3857) AS p FROM {layer.source} t, b WHERE {where}) s, b
          WHERE ST_Intersects(s.p, b.em)  -- the 4490 box of the envelope is a little larger
          GROUP BY floor(ST_X(s.p) / :cell), floor(ST_Y(s.p) / :cell)) m
        WHERE m.geom IS NOT NULL"""
        return sql, params
    geom = "ST_Transform(t.geom, 3857)"
    if layer.geometry != "point":
        params["tolerance"] = 2 * WEB_MERCATOR_HALF / 2**z / TILE_EXTENT
        geom = f"ST_Simplify({geom}, :tolerance, true)"
    sql = f"""{bounds}
    SELECT ST_AsMVT(m, :layer, {TILE_EXTENT}, 'geom', 'id') FROM (
      SELECT t.id, {property_columns(layer)},
             ST_AsMVTGeom({geom}, b.e, {TILE_EXTENT}, {TILE_BUFFER}, true) AS geom
      FROM {layer.source} t, b WHERE {where}
      LIMIT {MAX_TILE_FEATURES}) m
    WHERE m.geom IS NOT NULL"""
    return sql, params


def render_tile(conn: Connection, layer: Layer, z: int, x: int, y: int,
                filters: list[Filter]) -> bytes:  # fmt: skip
    """Run the tile query; empty bytes for an empty tile."""
    sql, params = tile_sql(layer, z, filters)
    data = conn.execute(text(sql), {**params, "z": z, "x": x, "y": y}).scalar()
    return bytes(data or b"")


def data_version(conn: Connection, layer: Layer) -> int:
    """Sum of the write counters of the layer's tables (changes on every write)."""
    sql = text("SELECT coalesce(sum(version), 0) FROM data_version WHERE table_name = ANY(:t)")
    return int(conn.execute(sql, {"t": list(layer.tables)}).scalar())


def features_sql(layer: Layer, filters: list[Filter], bbox: tuple | None) -> tuple[str, dict]:
    """GeoJSON FeatureCollection of a layer in EPSG:4326 (lon, lat) with paging counts."""
    params: dict = {}
    parts = filter_sql(layer, filters, params)
    if bbox is not None:
        parts.append("t.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4490)")
        params.update(dict(zip(("minx", "miny", "maxx", "maxy"), bbox, strict=True)))
    where = " AND ".join(parts) or "true"
    props = ", ".join(f"'{f.name}', t.{q(f.name)}" for f in layer.fields)
    sql = f"""
    WITH hits AS (SELECT t.* FROM {layer.source} t WHERE {where}),
         page AS (SELECT * FROM hits t ORDER BY t.id LIMIT :limit)
    SELECT (SELECT count(*) FROM hits) AS matched,
           coalesce(json_agg(json_build_object(
             'type', 'Feature', 'id', t.id,
             'geometry', ST_AsGeoJSON(ST_Transform(t.geom, 4326), 7)::json,
             'properties', json_build_object('id', t.id, {props})) ORDER BY t.id), '[]'::json)
    FROM page t"""
    return sql, params


def probe_sql(layer: Layer) -> str:
    """A query that fails when the layer's source or a field is missing (start-up check)."""
    return (f"SELECT t.id, t.geom, {property_columns(layer)} FROM {layer.source} t "
            f"WHERE {layer.where or 'true'} LIMIT 0")  # fmt: skip
