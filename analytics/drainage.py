"""排水一张图 (issue #14): network trace, upstream catchment, data-quality checks and pipe risk.

The network is the pipe graph in PostGIS: every `drain_pipe` runs in its flow direction from
`from_well` to `to_well`. Traces walk it with recursive SQL whose UNION keeps each pipe once, so
loops end the walk instead of hanging it; loops are then found (strongly connected components) and
reported. An outfall (排口) serves the nearest well of its kind within OUTFALL_SNAP_M. A parcel or
unit grid drains into the nearest well of the network's kind within CATCHMENT_MAX_M of a point on
its surface (a Thiessen sub-catchment). The risk score of a pipe is 100 × Σ weight × factor score,
each factor scored linearly from `zero` (0) to `full` (1) as RISK_FACTORS says. docs/DRAINAGE.md
describes every rule, the formula and the API.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from math import cos, radians
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.case_filters import city_today, latest_case_day
from analytics.contract import Analysis, Param, register
from analytics.duplicates import M_PER_DEG_LAT, M_PER_DEG_LON
from auth.accounts import User
from errors import BadRequest, Forbidden, NotFound
from geodata import catalog
from geodata.areas import in_areas
from geodata.crs import metric_epsg


@dataclass(frozen=True)
class Factor:
    """One factor of the pipe risk score: scored 0 at `zero`, 1 at `full`, linear between."""

    key: str
    label: str
    weight: float
    zero: float
    full: float
    unknown: float  # the factor's score when the pipe lacks the data
    rule: str


# The risk table (隐患排查): weights sum to 1; score = 100 × Σ weight × clamp((v − zero)/(full − zero)).
RISK_FACTORS = (
    Factor("age", "管龄", 0.20, 0, 50, 0.5, "评估年份 − 建设年代；0 年得 0，≥ 50 年得 1"),
    Factor("material", "材质", 0.10, 0, 1, 0.5, "材质易损系数（MATERIAL_RISK），未知材质 0.5"),
    Factor("diameter", "管径", 0.10, 1200, 300, 0.5, "管径 ≥ 1200 mm 得 0，≤ 300 mm 得 1（小管易堵）"),
    Factor("slope", "坡度", 0.10, 0.003, 0, 0.5, "坡度 ≥ 0.3% 得 0，平坡或倒坡得 1"),
    Factor("reverse_slope", "倒坡", 0.15, 0, 1, 0.0, "终点管底高于起点管底得 1"),
    Factor("waterlogging", "内涝点", 0.15, 0, 2, 0.0, "管线 200 m 内内涝点数；≥ 2 处得 1"),
    Factor("alarms", "告警", 0.10, 0, 3, 0.0, "管线 200 m 内传感器在评估窗口内的告警数；≥ 3 次得 1"),
    Factor("cases", "案件", 0.10, 0, 3, 0.0, "两端检查井 30 m 内评估窗口内的排水类案件数；≥ 3 件得 1"),
)  # fmt: skip
MATERIAL_RISK = {"砖": 1.0, "砖石": 1.0, "石": 1.0, "混凝土": 0.8, "素混凝土": 0.8, "灰口铸铁": 0.7,
                 "铸铁": 0.7, "钢筋混凝土": 0.5, "钢": 0.5, "球墨铸铁": 0.3, "PVC": 0.2,
                 "UPVC": 0.2, "PVC-U": 0.2, "玻璃钢": 0.2, "HDPE": 0.1, "PE": 0.1}  # fmt: skip
NEAR_M = 200.0  # waterlogging points and alarming sensors count within this distance of a pipe
WELL_CASE_M = 30.0  # cases count within this distance of one of the pipe's two wells
DRAIN_CASE_CLASSES = catalog.checked(
    ("0102", "0103", "0104"), catalog.COMPONENT_MINOR, "drain component classes"
) + catalog.checked(
    ("0404", "0406"), catalog.EVENT_MINOR, "drain event classes"
)  # 井盖, 箅子; 下水道, 积水
RISK_LEVELS = ((60.0, catalog.RISK_LEVELS[2]), (35.0, catalog.RISK_LEVELS[1]))  # else the lowest
OUTFALL_SNAP_M = 30.0
CATCHMENT_MAX_M = 500.0
MAX_QUALITY_ROWS = 5000
CODE = re.compile(r"^[\w.#/-]{1,32}$")
CHECKS = {"no_outfall": "未连通排口", "reverse_slope": "倒坡", "diameter_decrease": "下游管径变小",
          "loop": "环路"}  # fmt: skip
if abs(sum(f.weight for f in RISK_FACTORS) - 1.0) > 1e-9:
    raise ValueError("the risk weights must sum to 1")


# --- SQL helpers ----------------------------------------------------------------------------


def near(a: str, b: str, metres: str) -> str:
    """SQL: geometry `a` lies within :metres (geodesic) of point `b`, the bounding box first."""
    reach_lat = f"({metres} * 1.01 / {M_PER_DEG_LAT})"
    reach_lon = (f"({metres} * 1.01 / ({M_PER_DEG_LON} * "
                 f"cos(radians(least(abs(ST_Y({b})) + 0.1, 89.0)))))")  # fmt: skip
    return (f"{a} && ST_Expand({b}, {reach_lon}, {reach_lat}) "
            f"AND ST_DWithin({a}::geography, {b}::geography, {metres})")  # fmt: skip


def visible(geom: str) -> str:
    """SQL: the geometry lies in the user's areas (bound as :scope, NULL for everything)."""
    return f"(CAST(:scope AS text[]) IS NULL OR {in_areas(geom, 'scope')})"


def scope_of(user: User) -> list[str] | None:
    """The user's areas as a bound list (None: no limit)."""
    return list(user.scope) if user.scope else None


def feature(geometry: str, props: dict) -> dict:
    """A GeoJSON feature from ST_AsGeoJSON text."""
    return {"type": "Feature", "geometry": json.loads(geometry), "properties": props}


# --- the network ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Where a trace starts: a well, or a pipe (with its two wells)."""

    object: str  # well | pipe
    code: str
    pipe_id: int | None
    kind: str
    from_well: str | None = None
    to_well: str | None = None


START = text(
    f"""
    SELECT 'well' AS object, code, NULL::bigint AS id, pipe_kind AS kind, NULL AS from_well,
           NULL AS to_well FROM drain_well WHERE code = :code AND {visible("geom")}
    UNION ALL
    SELECT 'pipe', code, id, kind, from_well, to_well FROM drain_pipe
    WHERE code = :code AND {visible("geom")}
    """
)
OUTFALLS = text(
    f"""
    SELECT o.code, o.name, o.kind, w.code AS well, ST_AsGeoJSON(o.geom, 7) AS g,
           {visible("o.geom")} AS shown
    FROM drain_outfall o CROSS JOIN LATERAL (
        SELECT w.code FROM drain_well w WHERE {near("w.geom", "o.geom", ":snap")}
        ORDER BY w.pipe_kind <> o.kind, ST_Distance(w.geom::geography, o.geom::geography)
        LIMIT 1) w
    ORDER BY o.code
    """
)
PIPE_COLUMNS = (
    "p.id, p.code, p.kind, p.diameter_mm, p.material, p.build_year, p.from_well, p.to_well, "
    "ST_Length(p.geom::geography) AS length_m, ST_AsGeoJSON(p.geom, 7) AS g"
)
# Recursive walks: {seed} selects the first pipes; the UNION keeps every (pipe, next well) once.
WALKS = {
    "down": ("p.to_well", "p.from_well = t.next_well"),
    "up": ("p.from_well", "p.to_well = t.next_well"),
}
SEEDS = {("down", "well"): "p.from_well = :well", ("up", "well"): "p.to_well = :well",
         ("down", "pipe"): "p.id = :pipe", ("up", "pipe"): "p.id = :pipe"}  # fmt: skip


def walk_sql(direction: str, start_object: str) -> str:
    """SQL of the pipes reached from the start in one direction (the start pipe included)."""
    nxt, step = WALKS[direction]
    return f"""
        WITH RECURSIVE t(id, next_well) AS (
            SELECT p.id, {nxt} FROM drain_pipe p WHERE {SEEDS[direction, start_object]}
          UNION
            SELECT p.id, {nxt} FROM t JOIN drain_pipe p ON {step}
        )
        SELECT {PIPE_COLUMNS}, {visible("p.geom")} AS shown
        FROM drain_pipe p WHERE p.id IN (SELECT id FROM t)
    """


def network_code(raw, name: str) -> str:
    """A well or pipe code from untrusted input, or 400."""
    if not isinstance(raw, str) or not CODE.match(raw):
        raise BadRequest(f"参数 {name} 必须是检查井或管线编码（1–32 位字母、数字或 _ - . # /）")
    return raw


def find_start(conn: Connection, code: str, user: User) -> Start:
    """The well (preferred) or pipe of that code in the user's areas, or 404."""
    rows = conn.execute(START, {"code": code, "scope": scope_of(user)}).mappings().all()
    if not rows:
        raise NotFound(f"没有编码为 {code} 的检查井或管线，或您无权查看")
    r = min(rows, key=lambda r: r["object"] != "well")
    return Start(r["object"], r["code"], r["id"], r["kind"], r["from_well"], r["to_well"])


def outfall_wells(conn: Connection, scope: list[str] | None) -> list[dict]:
    """Every outfall with the well it serves (outfalls with no well near them are left out)."""
    rows = conn.execute(OUTFALLS, {"snap": OUTFALL_SNAP_M, "scope": scope})
    return [dict(r) for r in rows.mappings()]


def walk(conn: Connection, start: Start, direction: str, user: User) -> list[dict]:
    """The pipes reached from the start, downstream or upstream, each once."""
    sql = text(walk_sql(direction, start.object))
    bind = {"well": start.code, "pipe": start.pipe_id, "scope": scope_of(user)}
    return [dict(r) for r in conn.execute(sql, bind).mappings()]


def reached_wells(pipes: list[dict], start: Start, direction: str) -> set[str]:
    """The wells of a trace: both ends of every pipe, but not the end behind a start pipe."""
    wells = {start.code} if start.object == "well" else set()
    for p in pipes:
        ends = (p["from_well"], p["to_well"])
        if p["id"] == start.pipe_id:
            ends = (p["to_well"],) if direction == "down" else (p["from_well"],)
        wells.update(w for w in ends if w is not None)
    return wells


def components(edges: list[tuple[int, str | None, str | None]], strong: bool) -> dict:
    """The component label of every well of the edges (strongly or weakly connected)."""
    nodes = sorted({w for _, a, b in edges for w in (a, b) if w is not None})
    index = {w: k for k, w in enumerate(nodes)}
    pairs = [(index[a], index[b]) for _, a, b in edges if a is not None and b is not None]
    ends = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    graph = csr_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(len(nodes),) * 2)
    _, labels = connected_components(graph, directed=True,
                                     connection="strong" if strong else "weak")  # fmt: skip
    return {w: int(labels[k]) for w, k in index.items()}


def loops(edges: list[tuple[int, str | None, str | None]]) -> list[list[int]]:
    """Pipes on loops: the pipe ids of each strongly connected component with a cycle."""
    label = components(edges, strong=True)
    rings = defaultdict(list)
    for pid, a, b in edges:
        if a is not None and b is not None and label[a] == label[b]:
            rings[label[a]].append(pid)
    return sorted(sorted(r) for r in rings.values())


def distances(pipes: list[dict], start: Start, direction: str) -> dict:
    """Shortest along-network metres from the start to each well and to the far end of each pipe."""
    near_end, far_end = (
        ("from_well", "to_well") if direction == "down" else ("to_well", "from_well")
    )
    out = defaultdict(list)
    for p in pipes:
        out[p[near_end] if p["id"] != start.pipe_id else ("start",)].append(p)
    dist: dict = {("start",) if start.object == "pipe" else start.code: 0.0}
    pipe_dist: dict[int, float] = {}
    heap = [(0.0, next(iter(dist)))]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, float("inf")):
            continue
        for p in out.get(node, []):
            reach = d + p["length_m"]
            pipe_dist[p["id"]] = min(pipe_dist.get(p["id"], float("inf")), reach)
            end = p[far_end]
            if end is not None and reach < dist.get(end, float("inf")):
                dist[end] = reach
                heapq.heappush(heap, (reach, end))
    return {"wells": dist, "pipes": pipe_dist}


WELLS = text(
    f"""
    SELECT w.code, w.kind, w.pipe_kind, w.depth_m, w.invert_level_m, ST_AsGeoJSON(w.geom, 7) AS g,
           ST_X(w.geom) AS lon, ST_Y(w.geom) AS lat,
           {visible("w.geom")} AS shown,
           EXISTS (SELECT 1 FROM drain_pipe p WHERE p.from_well = w.code) AS has_outlet,
           EXISTS (SELECT 1 FROM drain_pipe p WHERE p.to_well = w.code) AS has_inlet
    FROM drain_well w WHERE w.code = ANY(:codes) ORDER BY w.code
    """
)


@dataclass
class Trace:
    """The pipes and wells of a trace, with loops, distances and the outfalls met."""

    start: Start
    direction: str
    pipes: list[dict]
    wells: list[dict]
    loops: list[list[int]]
    dist: dict
    outfalls: list[dict]


def trace(conn: Connection, start: Start, direction: str, user: User) -> Trace:
    """Walk the network from the start and gather what it met."""
    pipes = walk(conn, start, direction, user)
    codes = reached_wells(pipes, start, direction)
    wells = [dict(r) for r in conn.execute(WELLS, {"codes": sorted(codes),
                                                   "scope": scope_of(user)}).mappings()]  # fmt: skip
    rings = loops([(p["id"], p["from_well"], p["to_well"]) for p in pipes])
    met = [o for o in outfall_wells(conn, scope_of(user)) if o["well"] in codes]
    return Trace(start, direction, pipes, wells, rings, distances(pipes, start, direction), met)


def trace_features(t: Trace) -> list[dict]:
    """The visible pipes, wells and outfalls of a trace as GeoJSON features."""
    on_loop = {pid for ring in t.loops for pid in ring}
    feats = [feature(p["g"], {
        "object": "pipe", "code": p["code"], "kind": p["kind"], "diameter_mm": p["diameter_mm"],
        "material": p["material"], "build_year": p["build_year"], "from_well": p["from_well"],
        "to_well": p["to_well"], "length_m": round(p["length_m"], 1),
        "distance_m": round(t.dist["pipes"].get(p["id"], 0.0), 1), "on_loop": p["id"] in on_loop,
        "start": p["id"] == t.start.pipe_id}) for p in sorted(t.pipes, key=lambda p: p["code"])
        if p["shown"]]  # fmt: skip
    served = {o["well"]: o["code"] for o in t.outfalls}
    feats += [feature(w["g"], {
        "object": "well", "code": w["code"], "kind": w["kind"], "pipe_kind": w["pipe_kind"],
        "depth_m": w["depth_m"], "invert_level_m": w["invert_level_m"],
        "distance_m": round(t.dist["wells"].get(w["code"], 0.0), 1),
        "outfall": served.get(w["code"]), "start": w["code"] == t.start.code,
        "end": not (w["has_outlet"] if t.direction == "down" else w["has_inlet"])})
        for w in t.wells if w["shown"]]  # fmt: skip
    feats += [feature(o["g"], {"object": "outfall", "code": o["code"], "name": o["name"],
                               "kind": o["kind"], "well": o["well"]})
              for o in t.outfalls if o["shown"]]  # fmt: skip
    return feats


def trace_summary(t: Trace) -> dict:
    """Counts, lengths, ends, outfalls and loops of a trace (hidden = outside the user's areas)."""
    by_id = {p["id"]: p for p in t.pipes}
    far = "has_outlet" if t.direction == "down" else "has_inlet"
    ends = [w["code"] for w in t.wells if not w[far]]
    dangling = [p["code"] for p in t.pipes
                if p["to_well" if t.direction == "down" else "from_well"] is None]  # fmt: skip
    served = {o["well"] for o in t.outfalls}
    summary = {
        "direction": t.direction, "start_object": t.start.object, "start_code": t.start.code,
        "pipes": sum(p["shown"] for p in t.pipes), "wells": sum(w["shown"] for w in t.wells),
        "length_m": round(sum(p["length_m"] for p in t.pipes if p["shown"]), 1),
        "max_distance_m": round(max(t.dist["pipes"].values(), default=0.0), 1),
        "hidden_pipes": sum(not p["shown"] for p in t.pipes),
        "hidden_wells": sum(not w["shown"] for w in t.wells),
        "outfalls": [o["code"] if o["shown"] else None for o in t.outfalls],
        "loops": [sorted(by_id[i]["code"] for i in ring) for ring in t.loops],
        "end_wells": ends, "dangling_pipes": sorted(dangling),
    }  # fmt: skip
    if t.direction == "down":
        summary["reached_outfall"] = bool(served)
        summary["ends_without_outfall"] = [w for w in ends if w not in served] + sorted(dangling)
    return summary


def drain_trace(conn: Connection, params: dict, user: User) -> dict:
    """The analysis: the pipes and wells downstream or upstream of a well or pipe, as GeoJSON."""
    start = find_start(conn, network_code(params["from"], "from"), user)
    t = trace(conn, start, params["direction"], user)
    return {"type": "FeatureCollection", "features": trace_features(t),
            "summary": trace_summary(t)}  # fmt: skip


# --- the upstream catchment -----------------------------------------------------------------


def metric(lon, lat, srid: int) -> np.ndarray:
    """Lon/lat arrays as an (n, 2) array of metres in the metric CRS `srid`."""
    x, y = cov.transformer(catalog.SRID, srid).transform(np.asarray(lon, dtype=float),
                                                         np.asarray(lat, dtype=float))  # fmt: skip
    return np.column_stack([np.atleast_1d(x), np.atleast_1d(y)]).reshape(-1, 2)


ENVELOPE = "ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4490)"
KIND_WELLS = text(
    f"SELECT code, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM drain_well "
    f"WHERE pipe_kind = :kind AND geom && {ENVELOPE}"
)
CATCHMENT_OBJECTS = {  # table: (label, columns)
    "land_parcel": ("地块", "x.code, x.name, x.land_use, x.population"),
    "unit_grid": ("单元网格", "x.code, NULL AS name, NULL AS land_use, NULL::int AS population"),
}


def catchment_sql(table: str, geometry: bool) -> str:
    """SQL of the parcels or grids with a point on their surface in the envelope and the scope."""
    _, columns = CATCHMENT_OBJECTS[table]
    return f"""
        SELECT {columns}, x.area_m2, ST_X(x.p) AS lon, ST_Y(x.p) AS lat,
               {"ST_AsGeoJSON(x.geom, 7)" if geometry else "NULL"} AS g
        FROM (SELECT x.*, ST_PointOnSurface(x.geom) AS p FROM {table} x
              WHERE x.geom && {ENVELOPE}) x
        WHERE x.p && {ENVELOPE}
          AND (CAST(:scope AS text[]) IS NULL OR {in_areas("x.geom", "scope", polygonal=True)})
        ORDER BY x.code
    """


def envelope(lon: np.ndarray, lat: np.ndarray, metres: float) -> dict:
    """The lon/lat box of the points grown by at least `metres` on every side."""
    mid = float(np.mean(lat))
    dlat = metres * 1.01 / M_PER_DEG_LAT
    dlon = metres * 1.01 / (M_PER_DEG_LON * cos(radians(min(abs(mid) + 0.5, 89.0))))
    return {"minx": float(lon.min()) - dlon, "miny": float(lat.min()) - dlat,
            "maxx": float(lon.max()) + dlon, "maxy": float(lat.max()) + dlat}  # fmt: skip


def drained_objects(conn: Connection, t: Trace, user: User, geometry: bool) -> list[dict]:
    """Parcels and grids whose nearest well of the start's kind (within CATCHMENT_MAX_M) is one
    of the trace's wells."""
    wells = {w["code"] for w in t.wells}
    lon = np.array([w["lon"] for w in t.wells])
    lat = np.array([w["lat"] for w in t.wells])
    srid = metric_epsg(float(lon.mean()), float(lat.mean()))
    around = conn.execute(KIND_WELLS, {**envelope(lon, lat, 2 * CATCHMENT_MAX_M),
                                       "kind": t.start.kind}).all()  # fmt: skip
    if not around:
        return []
    tree = cKDTree(metric([r.lon for r in around], [r.lat for r in around], srid))
    box = envelope(lon, lat, CATCHMENT_MAX_M)
    out = []
    for table, (label, _) in CATCHMENT_OBJECTS.items():
        rows = conn.execute(text(catchment_sql(table, geometry)),
                            {**box, "scope": scope_of(user)}).mappings().all()  # fmt: skip
        if not rows:
            continue
        dist, idx = tree.query(metric([r["lon"] for r in rows], [r["lat"] for r in rows], srid))
        for r, d, i in zip(rows, dist, idx, strict=True):
            if d <= CATCHMENT_MAX_M and around[i].code in wells:
                out.append({"object": label, "code": r["code"], "name": r["name"],
                            "land_use": r["land_use"], "population": r["population"],
                            "area_m2": round(r["area_m2"], 1), "well": around[i].code,
                            "distance_m": round(float(d), 1), "g": r["g"]})  # fmt: skip
    return out


def drain_catchment(conn: Connection, params: dict, user: User) -> dict:
    """The analysis: the parcels and unit grids whose wells drain through a well or pipe."""
    start = find_start(conn, network_code(params["at"], "at"), user)
    t = trace(conn, start, "up", user)
    geojson = params["format"] == "geojson"
    rows = drained_objects(conn, t, user, geojson) if t.wells else []
    parcels = [r for r in rows if r["object"] == CATCHMENT_OBJECTS["land_parcel"][0]]
    grids = [r for r in rows if r["object"] == CATCHMENT_OBJECTS["unit_grid"][0]]
    summary = {"at_object": start.object, "at_code": start.code, "kind": start.kind,
               "upstream_pipes": sum(p["shown"] for p in t.pipes),
               "upstream_wells": sum(w["shown"] for w in t.wells),
               "upstream_length_m": round(sum(p["length_m"] for p in t.pipes if p["shown"]), 1),
               "hidden_pipes": sum(not p["shown"] for p in t.pipes), "parcels": len(parcels),
               "parcel_area_m2": round(sum(r["area_m2"] for r in parcels), 1),
               "population": sum(r["population"] or 0 for r in parcels), "grids": len(grids),
               "grid_area_m2": round(sum(r["area_m2"] for r in grids), 1),
               "loops": len(t.loops)}  # fmt: skip
    if geojson:
        return {"type": "FeatureCollection", "summary": summary,
                "features": [feature(r["g"], {k: v for k, v in r.items() if k != "g"})
                             for r in rows]}  # fmt: skip
    return {**summary, "rows": [{k: v for k, v in r.items() if k != "g"} for r in rows]}


# --- data quality ---------------------------------------------------------------------------

DRAINED = """
    WITH RECURSIVE t(id, next_well) AS (
        SELECT p.id, p.from_well FROM drain_pipe p WHERE p.to_well = ANY(:outfall_wells)
      UNION
        SELECT p.id, p.from_well FROM t JOIN drain_pipe p ON p.to_well = t.next_well
    )
    SELECT id FROM t
"""
INVERTS = (
    "coalesce(p.start_invert_m, fw.invert_level_m) AS start_invert, "
    "coalesce(p.end_invert_m, tw.invert_level_m) AS end_invert"
)
NETWORK = text(
    f"""
    SELECT p.id, p.code, p.kind, p.diameter_mm, p.from_well, p.to_well, {INVERTS},
           ST_X(ST_LineInterpolatePoint(p.geom, 0.5)) AS lon,
           ST_Y(ST_LineInterpolatePoint(p.geom, 0.5)) AS lat,
           {visible("p.geom")} AND (CAST(:area AS text[]) IS NULL OR {in_areas("p.geom", "area")})
               AS shown
    FROM drain_pipe p LEFT JOIN drain_well fw ON fw.code = p.from_well
         LEFT JOIN drain_well tw ON tw.code = p.to_well
    """
)


PIPE_GEOJSON = text("SELECT code, ST_AsGeoJSON(geom, 7) FROM drain_pipe WHERE code = ANY(:codes)")


def pieces_without_outfall(pipes, outfall_wells: set[str]) -> int:
    """Connected pieces of the network (flow direction ignored) holding no outfall well; a pipe
    missing a well is a piece of its own unless its other well joins it to one."""
    edges = [(p.id, p.from_well or f"#{p.id}<", p.to_well or f"#{p.id}>") for p in pipes]
    label = components(edges, strong=False)
    return len(set(label.values()) - {label[w] for w in outfall_wells if w in label})


def quality_issues(conn: Connection, user: User, area: str | None) -> tuple[list[dict], dict]:
    """Every issue of the network (rows of the pipes in the user's areas) and counts by check."""
    outfalls = {o["well"] for o in outfall_wells(conn, None)}
    drained = set(conn.execute(text(DRAINED), {"outfall_wells": sorted(outfalls)}).scalars())
    pipes = conn.execute(NETWORK, {"scope": scope_of(user), "area": [area] if area else None}).all()
    by_from = defaultdict(list)
    for p in pipes:
        by_from[p.from_well].append(p)
    on_loop = {pid for ring in loops([(p.id, p.from_well, p.to_well) for p in pipes])
               for pid in ring}  # fmt: skip
    issues = []
    for p in pipes:
        found = []
        if p.id not in drained:
            found.append(("no_outfall", "下游未到达任何排口", None))
        if None not in (p.start_invert, p.end_invert) and p.end_invert > p.start_invert:
            rise = p.end_invert - p.start_invert
            found.append(("reverse_slope", f"终点管底高出起点 {rise:.2f} m", round(rise, 3)))
        smaller = [d for d in by_from.get(p.to_well, []) if d.diameter_mm < p.diameter_mm]
        if p.to_well is not None and smaller:
            d = min(smaller, key=lambda d: (d.diameter_mm, d.code))
            found.append(("diameter_decrease", f"{p.diameter_mm} mm → 下游 {d.code} "
                          f"{d.diameter_mm} mm", p.diameter_mm - d.diameter_mm))  # fmt: skip
        if p.id in on_loop:
            found.append(("loop", "位于环路上（流向首尾相接）", None))
        issues += [{"check": c, "check_label": CHECKS[c], "code": p.code, "kind": p.kind,
                    "diameter_mm": p.diameter_mm, "from_well": p.from_well,
                    "to_well": p.to_well, "detail": detail, "value": value,
                    "lon": round(p.lon, 7), "lat": round(p.lat, 7)}
                   for c, detail, value in found if p.shown]  # fmt: skip
    counts = {"pipes_checked": sum(p.shown for p in pipes),
              "pieces_without_outfall": pieces_without_outfall(pipes, outfalls),
              "outfalls_matched": len(outfalls)}  # fmt: skip
    return issues, counts


def area_allowed(user: User, area: str | None) -> None:
    """403 unless the user may analyse the area."""
    if area is not None and not cov.allowed(user, area):
        raise Forbidden("该区域不在您的管辖范围内")


def drain_quality(conn: Connection, params: dict, user: User) -> dict:
    """The analysis: pipes without an outfall, reverse slopes, smaller pipes downstream, loops."""
    area_allowed(user, params["area"])
    issues, counts = quality_issues(conn, user, params["area"])
    for c in CHECKS:
        counts[c] = sum(i["check"] == c for i in issues)
    if params["check"] != "all":
        issues = [i for i in issues if i["check"] == params["check"]]
    shown = issues[:MAX_QUALITY_ROWS]
    if params["format"] == "geojson":
        lines = dict(
            conn.execute(PIPE_GEOJSON, {"codes": sorted({i["code"] for i in shown})}).all()
        )
        return {"type": "FeatureCollection", "summary": {**counts, "issues": len(issues),
                                                         "truncated": len(issues) > len(shown)},
                "features": [feature(lines[i["code"]], i) for i in shown]}  # fmt: skip
    return {**counts, "issues": len(issues), "truncated": len(issues) > len(shown), "rows": shown}


# --- pipe risk ------------------------------------------------------------------------------

RISK_PIPES = f"""
    SELECT p.id, p.code, p.kind, p.diameter_mm, p.material, p.build_year, {INVERTS},
           ST_Length(p.geom::geography) AS length_m, ST_X(fw.geom) AS from_lon,
           ST_Y(fw.geom) AS from_lat, ST_X(tw.geom) AS to_lon, ST_Y(tw.geom) AS to_lat,
           ST_X(ST_LineInterpolatePoint(p.geom, 0.5)) AS lon,
           ST_Y(ST_LineInterpolatePoint(p.geom, 0.5)) AS lat, {{geometry}} AS g
    FROM drain_pipe p LEFT JOIN drain_well fw ON fw.code = p.from_well
         LEFT JOIN drain_well tw ON tw.code = p.to_well
    WHERE {visible("p.geom")} AND (CAST(:area AS text[]) IS NULL OR {in_areas("p.geom", "area")})
"""
NEAR_WATERLOGGING = text(
    f"SELECT p.id, count(*) AS n FROM waterlogging_point w "
    f"JOIN drain_pipe p ON {near('p.geom', 'w.geom', ':near')} GROUP BY p.id"
)
NEAR_ALARMS = text(
    f"""
    SELECT p.id, sum(s.n) AS n
    FROM (SELECT s.id, s.geom, count(*) AS n FROM sensor s JOIN alarm a ON a.sensor_id = s.id
          WHERE a.raised_at >= :since AND a.raised_at < :until GROUP BY s.id, s.geom) s
    JOIN drain_pipe p ON {near("p.geom", "s.geom", ":near")} GROUP BY p.id
    """
)
DRAIN_CASES = text(
    f"""
    SELECT ST_AsBinary(ST_Collect(c.geom)) FROM case_record c
    WHERE (c.event_class_code = ANY(:events) OR c.component_class_code = ANY(:components))
      AND c.reported_at >= :since AND c.reported_at < :until AND c.geom && {ENVELOPE}
    """
)
AREAS_AT = text(
    "SELECT code, name, ST_AsBinary(geom) AS wkb FROM admin_area WHERE level = :level "
    "AND (CAST(:under AS text) IS NULL OR code LIKE :under || '%') ORDER BY code"
)


def counts_near(conn: Connection, sql, bind: dict) -> dict[int, int]:
    """Per pipe id, the count a NEAR_* query gives (pipes with none are absent)."""
    return {r.id: int(r.n) for r in conn.execute(sql, bind)}


def well_cases(conn: Connection, pipes: list[dict], since: datetime, until: datetime) -> list[int]:
    """Per pipe, the drainage cases of the window within WELL_CASE_M of either of its wells
    (a case near both wells counts once)."""
    ends = [(k, e) for k, p in enumerate(pipes) for e in ("from", "to")
            if p[f"{e}_lon"] is not None]  # fmt: skip
    if not ends:
        return [0] * len(pipes)
    lon = np.array([pipes[k][f"{e}_lon"] for k, e in ends])
    lat = np.array([pipes[k][f"{e}_lat"] for k, e in ends])
    events = [c for c in DRAIN_CASE_CLASSES if c in catalog.EVENT_MINOR]
    collected = conn.execute(DRAIN_CASES, {
        **envelope(lon, lat, WELL_CASE_M), "since": since, "until": until, "events": events,
        "components": [c for c in DRAIN_CASE_CLASSES if c not in events]}).scalar()  # fmt: skip
    if collected is None:
        return [0] * len(pipes)
    xy = shapely.get_coordinates(shapely.from_wkb(bytes(collected)))
    srid = metric_epsg(float(lon.mean()), float(lat.mean()))
    cases = cKDTree(metric(xy[:, 0], xy[:, 1], srid))
    near_pairs = cKDTree(metric(lon, lat, srid)).sparse_distance_matrix(
        cases, WELL_CASE_M, output_type="ndarray")  # fmt: skip
    pipe_of_end = np.array([k for k, _ in ends], dtype=np.int64)
    pairs = np.unique(pipe_of_end[near_pairs["i"]] * len(xy) + near_pairs["j"])
    return np.bincount(pairs // len(xy), minlength=len(pipes)).tolist()


def area_names(conn: Connection, pipes: list[dict], level: str, under: str | None) -> list:
    """Per pipe, the (code, name) of the area of `level` holding its midpoint, or (None, None)."""
    areas = conn.execute(AREAS_AT, {"level": level, "under": under}).all()
    out = [(None, None)] * len(pipes)
    if not areas or not pipes:
        return out
    polygons = shapely.from_wkb([bytes(a.wkb) for a in areas])
    shapely.prepare(polygons)
    tree = shapely.STRtree(polygons)
    points = shapely.points([p["lon"] for p in pipes], [p["lat"] for p in pipes])
    for k, a in zip(*tree.query(points, predicate="intersects"), strict=True):
        if out[k][0] is None or areas[a].code < out[k][0]:
            out[k] = (areas[a].code, areas[a].name)
    return out


def measures(row: dict, year: int) -> dict:
    """The measured value of each factor for a pipe (None where the pipe lacks the data)."""
    slope = None
    if None not in (row["start_invert"], row["end_invert"]) and row["length_m"] > 0:
        slope = (row["start_invert"] - row["end_invert"]) / row["length_m"]
    reverse = None if slope is None else float(row["end_invert"] > row["start_invert"])
    material = (row["material"] or "").strip().upper()
    return {"age": None if row["build_year"] is None else max(0, year - row["build_year"]),
            "material": MATERIAL_RISK.get(material, MATERIAL_RISK.get(row["material"] or "")),
            "diameter": row["diameter_mm"], "slope": slope, "reverse_slope": reverse,
            "waterlogging": row["waterlogging"], "alarms": row["alarms"], "cases": row["cases"]}  # fmt: skip


def factor_score(f: Factor, value) -> float:
    """A factor's score in [0, 1]: linear from `zero` to `full`, `unknown` without data."""
    if value is None:
        return f.unknown
    return min(1.0, max(0.0, (float(value) - f.zero) / (f.full - f.zero)))


def risk_points(values: list[dict]) -> np.ndarray:
    """Points of every factor (columns in RISK_FACTORS order) for many pipes at once:
    100 × weight × factor_score."""
    out = np.empty((len(values), len(RISK_FACTORS)))
    for j, f in enumerate(RISK_FACTORS):
        v = np.array([np.nan if m[f.key] is None else m[f.key] for m in values], dtype=float)
        score = np.clip((v - f.zero) / (f.full - f.zero), 0.0, 1.0)
        out[:, j] = 100.0 * f.weight * np.where(np.isnan(v), f.unknown, score)
    return out


def shown_value(key: str, value, row: dict) -> str:
    """A factor's measured value as Chinese text for the reasons."""
    if value is None:
        return "未知"
    if key == "slope":
        return f"{value * 100:.2f}%"
    if key in ("material", "reverse_slope"):
        return row["material"] if key == "material" else "终点高于起点"
    unit = {"age": "年", "diameter": "mm", "waterlogging": "处", "alarms": "次", "cases": "件"}
    return f"{value} {unit[key]}"


def risk_level(score: float) -> str:
    """高 / 中 / 低 by the RISK_LEVELS floors."""
    return next((name for floor, name in RISK_LEVELS if score >= floor), catalog.RISK_LEVELS[0])


def risk_row(row: dict, values: dict, points: np.ndarray) -> dict:
    """A ranked pipe: score, level, reasons, points per factor, measured values."""
    score = float(points.sum())
    named = {f.key: float(p) for f, p in zip(RISK_FACTORS, points, strict=True)}
    reasons = sorted((f for f in RISK_FACTORS if named[f.key] > 0),
                     key=lambda f: (-named[f.key], f.key))  # fmt: skip
    return {"code": row["code"], "kind": row["kind"], "score": round(score, 2),
            "level": risk_level(score),
            "reasons": "；".join(f"{f.label} {shown_value(f.key, values[f.key], row)}"
                                f"（+{named[f.key]:.1f}）" for f in reasons),
            "diameter_mm": row["diameter_mm"], "material": row["material"],
            "build_year": row["build_year"], "age_years": values["age"],
            "slope_pct": None if values["slope"] is None else round(values["slope"] * 100, 3),
            "waterlogging_count": int(row["waterlogging"]), "alarm_count": int(row["alarms"]),
            "case_count": int(row["cases"]), "length_m": round(row["length_m"], 1),
            **{f"{k}_points": round(v, 2) for k, v in named.items()},
            "area_code": row["area_code"], "area_name": row["area_name"],
            "lon": round(row["lon"], 7), "lat": round(row["lat"], 7)}  # fmt: skip


def summary_level(user: User, area: str | None) -> str:
    """The admin level of the per-area summary: below the area, else districts (streets when
    the user is limited to some areas)."""
    if area is None:
        return "street" if user.scope else "district"
    return {6: "street", 9: "community", 12: "community"}[len(area)]


def by_area(rows: list[dict]) -> list[dict]:
    """Per area: pipes, length, mean and highest score, pipes per level (rows hold area_code,
    area_name, length_m, score and level)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["area_code"], r["area_name"])].append(r)
    out = []
    for (code, name), rs in sorted(groups.items(), key=lambda kv: kv[0][0] or "~"):
        levels = {lv: sum(r["level"] == lv for r in rs) for lv in reversed(catalog.RISK_LEVELS)}
        out.append({"code": code, "name": name or "（区域外）", "pipes": len(rs),
                    "length_km": round(sum(r["length_m"] for r in rs) / 1000, 3),
                    "mean_score": round(sum(r["score"] for r in rs) / len(rs), 2),
                    "max_score": max(r["score"] for r in rs),
                    **{f"level_{lv}": n for lv, n in levels.items()}})  # fmt: skip
    return out


def window_bounds(to: date, days: int) -> tuple[datetime, datetime]:
    """[since, until): the `days` city-clock days ending with `to`."""
    tz = ZoneInfo(catalog.CITY_TIMEZONE)
    until = datetime.combine(to + timedelta(days=1), time.min, tz)
    return until - timedelta(days=days), until


def pipe_risk(conn: Connection, params: dict, user: User) -> dict:
    """The analysis: every pipe of the area scored, the top ones ranked with reasons, by area."""
    area = params["area"]
    area_allowed(user, area)
    to = date.fromisoformat(params["to"]) if params["to"] else (
        latest_case_day(conn, user) or city_today())  # fmt: skip
    since, until = window_bounds(to, params["days"])
    geojson = params["format"] == "geojson"
    sql = RISK_PIPES.replace("{geometry}", "ST_AsGeoJSON(p.geom, 7)" if geojson else "NULL")
    pipes = [dict(r) for r in conn.execute(text(sql), {
        "scope": scope_of(user), "area": [area] if area else None}).mappings()]  # fmt: skip
    window = {"near": NEAR_M, "since": since, "until": until}
    logged = counts_near(conn, NEAR_WATERLOGGING, window)
    alarmed = counts_near(conn, NEAR_ALARMS, window)
    cases = well_cases(conn, pipes, since, until)
    areas = area_names(conn, pipes, summary_level(user, area), area)
    values = []
    for p, n_cases, (code, name) in zip(pipes, cases, areas, strict=True):
        p.update(
            waterlogging=logged.get(p["id"], 0),
            alarms=alarmed.get(p["id"], 0),
            cases=n_cases,
            area_code=code,
            area_name=name,
        )
        values.append(measures(p, to.year))
    points = risk_points(values)
    totals = points.sum(axis=1)
    for p, total in zip(pipes, totals, strict=True):
        p.update(score=round(float(total), 2), level=risk_level(float(total)))
    order = sorted(range(len(pipes)), key=lambda k: (-pipes[k]["score"], pipes[k]["code"]))
    top = [{"rank": n + 1, **risk_row(pipes[k], values[k], points[k])}
           for n, k in enumerate(order[: params["top"]])]  # fmt: skip
    figures = {"to": to.isoformat(), "days": params["days"], "year": to.year,
               "pipes": len(pipes), "top": len(top),
               **{f"level_{lv}": sum(p["level"] == lv for p in pipes)
                  for lv in reversed(catalog.RISK_LEVELS)}}  # fmt: skip
    if geojson:
        return {"type": "FeatureCollection", "summary": figures,
                "features": [feature(pipes[k]["g"], r) for k, r in zip(order, top, strict=False)]}  # fmt: skip
    return {**figures, "rows": top, "areas": by_area(pipes), "factors": factor_table()}


def factor_table() -> list[dict]:
    """The risk table as rows (for clients and the export's 因子 sheet)."""
    return [{"key": f.key, "label": f.label, "weight": f.weight, "zero": f.zero, "full": f.full,
             "unknown": f.unknown, "rule": f.rule} for f in RISK_FACTORS]  # fmt: skip


# --- registration ---------------------------------------------------------------------------

FORMAT = Param("format", "格式", "choice", "json", choices=("json", "geojson"))
NETWORK_TABLES = ("drain_pipe", "drain_well", "drain_outfall", "admin_area")

DRAIN_TRACE = register(Analysis(
    id="drain-trace", title="排水管网追踪",
    description="从检查井或管线向下游追踪至排口，或向上游追踪所有汇入的管线与检查井；"
                "返回管线、检查井、排口（GeoJSON）及长度、数量、环路与未到达排口的末端。",
    output="layer",
    params=(Param("from", "检查井或管线编码", "text", required=True),
            Param("direction", "方向", "choice", "down", choices=("down", "up"))),
    tables=NETWORK_TABLES, run=drain_trace,
))  # fmt: skip
DRAIN_CATCHMENT = register(Analysis(
    id="drain-catchment", title="上游汇水范围",
    description="某检查井（或管线）堵塞时受影响的范围：其上游检查井所服务的地块与单元网格"
                f"（各地块、网格排入其 {CATCHMENT_MAX_M:g} m 内最近的同类检查井）。",
    output="table",
    params=(Param("at", "检查井或管线编码", "text", required=True), FORMAT),
    tables=(*NETWORK_TABLES, "land_parcel", "unit_grid"), run=drain_catchment, cached=True,
))  # fmt: skip
DRAIN_QUALITY = register(Analysis(
    id="drain-quality", title="管网数据质量检查",
    description="未连通排口的管线、倒坡（终点管底高于起点）、下游管径变小、环路；可导出，"
                "format=geojson 返回问题管线图层。",
    output="table",
    params=(Param("check", "检查项", "choice", "all", choices=("all", *CHECKS)),
            Param("area", "区域", "area"), FORMAT),
    tables=NETWORK_TABLES, run=drain_quality, cached=True,
))  # fmt: skip
PIPE_RISK = register(Analysis(
    id="pipe-risk", title="管线隐患排查",
    description="按管龄、材质、管径、坡度、倒坡、周边内涝点、告警与案件计算每条管线的风险分"
                "（0–100），排名列出原因，并按区域汇总；format=geojson 返回按风险着色的管线图层。",
    output="table",
    params=(Param("area", "区域", "area"),
            Param("top", "排名条数", "int", 100, low=1, high=100000),
            Param("to", "评估日期（默认最近一件案件的日期）", "date"),
            Param("days", "告警与案件的统计天数", "int", 365, low=1, high=3650), FORMAT),
    tables=("drain_pipe", "drain_well", "waterlogging_point", "sensor", "alarm", "case_record",
            "admin_area"),
    run=pipe_risk, cached=True,
))  # fmt: skip
