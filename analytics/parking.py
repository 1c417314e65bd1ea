"""停车分析: utilisation, turnover, peak hour and full hours per lot and area; pressure heat at a
moment; the nearest lots with free spaces. Definitions and the storage choice: docs/PARKING.md.

Measures read the hourly rollup `parking_hourly` (migration 0008, kept by triggers on every write
of a reading): a reading holds until the lot's next one, for at most HOLD_S seconds, so a gap in
readings is unobserved time, never an empty lot. Lots of unknown capacity are counted in `lots`
and excluded from every rate. The user's areas are applied in SQL (`geodata.areas.in_areas`).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics import network
from analytics.contract import Analysis, Param, register
from auth.access import find_layer
from auth.accounts import User
from errors import BadRequest, Forbidden
from geodata import catalog
from geodata.areas import in_areas
from geodata.catalog import SRID, WEB_MERCATOR_SRID
from geodata.crs import metric_epsg
from params import parse_int, parse_lonlat, text_value

HOLD_S = 3600  # a reading stands for at most an hour (frozen in migration 0008)
FULL_SHARE = 0.9  # "full": occupied ≥ 90 % of capacity (frozen in migration 0008)
DEFAULT_DAYS = 7
MAX_DAYS = 92
GRID = 64  # heat: at most GRID × GRID cells, so ≤ 4,096 points
NEAREST_MAX = 20
NEAREST_CANDIDATES = 5  # straight-line candidates per lot asked for, re-ranked by walking
WALK_LIMIT_M = 10_000.0
SOURCES = ("entries", "estimated", "mixed")

LOTS = f"""
    SELECT l.id, l.code, l.name, l.capacity, l.lot_type, l.fee, l.fee_per_hour, l.geom
    FROM parking_lot l
    WHERE (CAST(:scope AS text[]) IS NULL OR {in_areas("l.geom", "scope")})
      AND (CAST(:focus AS text[]) IS NULL OR {in_areas("l.geom", "focus")})
      AND (CAST(:wkb AS bytea) IS NULL
           OR ST_Intersects(l.geom, ST_Transform(ST_GeomFromWKB(:wkb, :srid), {SRID})))
"""
# One scan of the rollup, two groupings: per lot and local hour of day (g = 0), and per local
# weekday and hour over the lots of known capacity (g = 1); then per lot its totals and peak hour
# (the hour of day of highest mean occupancy, earliest on a tie), so only ~2,200 rows leave the
# database. Local hours by arithmetic on a fixed UTC offset (:offset_s; the city clock,
# Asia/Shanghai, has no daylight saving).
MEASURES = text(f"""
    WITH a AS MATERIALIZED (
      SELECT GROUPING(h.lot_id) AS g, h.lot_id, x.lh % 24 AS hod, ((x.lh / 24 + 3) % 7) + 1 AS dow,
             sum(h.observed_s) AS observed_s, sum(h.occupied_s) AS occupied_s,
             sum(h.full_s) AS full_s, max(h.max_occupied) AS peak, sum(h.arrivals) AS arrivals,
             sum(h.readings) AS readings, sum(h.counted) AS counted,
             sum(h.occupied_s) FILTER (WHERE lots.capacity IS NOT NULL) AS known_occupied_s,
             sum(h.observed_s * lots.capacity) AS space_s
      FROM parking_hourly h
      JOIN ({LOTS}) lots ON lots.id = h.lot_id
      CROSS JOIN LATERAL (
        SELECT (date_part('epoch', h.hour)::bigint + :offset_s) / 3600 AS lh) x
      WHERE h.hour >= :start AND h.hour < :stop
      GROUP BY GROUPING SETS ((h.lot_id, x.lh % 24), (((x.lh / 24 + 3) % 7) + 1, x.lh % 24))),
    peak AS (
      SELECT DISTINCT ON (lot_id) lot_id, hod FROM a WHERE g = 0 AND observed_s > 0
      ORDER BY lot_id, occupied_s / observed_s DESC, hod)
    SELECT 0 AS g, t.lot_id, p.hod AS peak_hour, NULL::bigint AS dow, NULL::bigint AS hod,
           t.observed_s, t.occupied_s, t.full_s, t.peak, t.arrivals, t.readings, t.counted,
           NULL::float AS known_occupied_s, NULL::float AS space_s
    FROM (SELECT lot_id, sum(observed_s) AS observed_s, sum(occupied_s) AS occupied_s,
                 sum(full_s) AS full_s, max(peak) AS peak, sum(arrivals)::bigint AS arrivals,
                 sum(readings)::bigint AS readings, sum(counted)::bigint AS counted
          FROM a WHERE g = 0 GROUP BY lot_id) t LEFT JOIN peak p ON p.lot_id = t.lot_id
    UNION ALL
    SELECT 1, NULL, NULL, dow, hod, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           known_occupied_s, space_s FROM a WHERE g = 1
""")
LOT_LIST = text(f"""
    WITH lots AS MATERIALIZED ({LOTS})
    SELECT lots.id, lots.code, lots.name, lots.capacity, lots.lot_type, r.occupied, r.observed_at
    FROM lots LEFT JOIN LATERAL (
      SELECT o.occupied, o.observed_at FROM parking_occupancy o
      WHERE o.lot_id = lots.id AND o.observed_at < :stop
      ORDER BY o.observed_at DESC LIMIT 1) r ON true
    ORDER BY lots.code
""")
LATEST_HOUR = text("SELECT max(hour) FROM parking_hourly")
HEAT = text(f"""
    WITH lots AS MATERIALIZED ({LOTS}),
    now AS (
      SELECT lots.capacity, lots.geom, r.occupied
      FROM lots JOIN LATERAL (
        SELECT o.occupied FROM parking_occupancy o
        WHERE o.lot_id = lots.id AND o.observed_at <= :at
          AND o.observed_at > CAST(:at AS timestamptz) - make_interval(secs => :hold)
        ORDER BY o.observed_at DESC LIMIT 1) r ON true
      WHERE lots.capacity IS NOT NULL),
    m AS (SELECT capacity, occupied, geom, ST_Transform(geom, {WEB_MERCATOR_SRID}) AS p FROM now),
    e AS (SELECT min(ST_X(p)) AS x0, min(ST_Y(p)) AS y0,
                 greatest(max(ST_X(p)) - min(ST_X(p)), max(ST_Y(p)) - min(ST_Y(p)), 1) / {GRID}
                 * (1 + 1e-9) AS cell FROM m)
    SELECT avg(ST_Y(m.geom)) AS lat, avg(ST_X(m.geom)) AS lon, sum(m.occupied) AS occupied,
           sum(m.capacity) AS capacity, count(*) AS n, min(e.cell) AS cell
    FROM m, e
    GROUP BY floor((ST_X(m.p) - e.x0) / e.cell), floor((ST_Y(m.p) - e.y0) / e.cell)
""")
HEAT_COUNTS = text(f"""
    WITH lots AS MATERIALIZED ({LOTS})
    SELECT count(*) AS lots, count(*) FILTER (WHERE capacity IS NULL) AS unknown FROM lots
""")
CANDIDATES = text(f"""
    WITH lots AS ({LOTS})
    SELECT lots.id, lots.code, lots.name, lots.capacity, lots.lot_type, lots.fee,
           lots.fee_per_hour, ST_X(lots.geom) AS lon, ST_Y(lots.geom) AS lat,
           ST_Distance(lots.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), {SRID})::geography)
             AS straight_m, r.occupied, r.observed_at
    FROM lots JOIN LATERAL (
      SELECT o.occupied, o.observed_at FROM parking_occupancy o
      WHERE o.lot_id = lots.id AND (CAST(:at AS timestamptz) IS NULL OR o.observed_at <= :at)
      ORDER BY o.observed_at DESC LIMIT 1) r ON true
    WHERE lots.capacity IS NOT NULL AND r.occupied < lots.capacity
    ORDER BY lots.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), {SRID}) LIMIT :k
""")


def city_zone() -> ZoneInfo:
    """The city's clock."""
    return ZoneInfo(catalog.CITY_TIMEZONE)


def parse_moment(raw, name: str) -> datetime:
    """An ISO date-time (without offset: the city's clock) between 1900 and 2100, or 400."""
    raw = text_value(raw, name, 40)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        moment = None
    if moment is None or not 1900 <= moment.year <= 2100:
        raise BadRequest(f"参数 {name} 必须是 ISO 时间，如 2026-10-20T08:00:00+08:00")
    return moment if moment.tzinfo else moment.replace(tzinfo=city_zone())


def latest_day(conn: Connection) -> date:
    """The city-clock day of the newest rolled-up hour (today when there is no reading)."""
    hour = conn.execute(LATEST_HOUR).scalar()
    return (hour or datetime.now(city_zone())).astimezone(city_zone()).date()


def window(conn: Connection, params: dict) -> tuple[date, date]:
    """The [from, to] days (to included); default the DEFAULT_DAYS up to the newest reading."""
    start, stop = params.get("from"), params.get("to")
    stop = date.fromisoformat(stop) if stop else latest_day(conn)
    start = date.fromisoformat(start) if start else stop - timedelta(days=DEFAULT_DAYS - 1)
    if start > stop:
        raise BadRequest("from 不能晚于 to")
    if (stop - start).days >= MAX_DAYS:
        raise BadRequest(f"停车分析的时间窗口最长 {MAX_DAYS} 天")
    return start, stop


def instants(start: date, stop: date) -> tuple[datetime, datetime]:
    """The days as [start, stop) instants (midnight of the city's clock)."""
    tz = city_zone()
    return (datetime.combine(start, time(), tz),
            datetime.combine(stop + timedelta(days=1), time(), tz))  # fmt: skip


def place(conn: Connection, user: User, params: dict) -> dict:
    """The bound values of LOTS: the user's areas, the admin area or the drawn polygon."""
    code, polygon = params.get("area"), params.get("polygon")
    if code and polygon is not None:
        raise BadRequest("area 与 polygon 只能给出一个")
    if code and not cov.allowed(user, code):
        raise Forbidden("该区域不在您的管辖范围内")
    bound = {"scope": list(user.scope) if user.scope else None,
             "focus": [code] if code else None, "wkb": None, "srid": SRID}  # fmt: skip
    if polygon is not None:
        area = cov.drawn_area(conn, user, polygon)
        bound.update(area.sql_params)
    return bound


def ratio(part: float, whole: float, digits: int = 4) -> float | None:
    """part ÷ whole rounded, or None without a denominator."""
    return round(part / whole, digits) if whole > 0 else None


def turnover_source(readings: int, counted: int) -> str | None:
    """entries (every reading counted arrivals), estimated (none did), mixed; None: no reading."""
    if readings == 0:
        return None
    return "entries" if counted == readings else "estimated" if counted == 0 else "mixed"


def peak_of(by_hour: dict[int, float]) -> int | None:
    """The hour of day with the highest mean occupancy (earliest on a tie)."""
    return min(by_hour, key=lambda h: (-by_hour[h], h)) if by_hour else None


def lot_row(lot, sums: dict | None, hours: float) -> dict:
    """One lot's measures over the window."""
    s = sums or {"observed_s": 0.0, "occupied_s": 0.0, "full_s": 0.0, "peak": None,
                 "arrivals": 0, "readings": 0, "counted": 0, "peak_hour": None}  # fmt: skip
    cap = lot.capacity or 0
    known = lot.capacity is not None
    return {
        "lot_id": lot.id, "code": lot.code, "name": lot.name, "lot_type": lot.lot_type,
        "capacity": lot.capacity,
        "utilisation": ratio(s["occupied_s"], cap * s["observed_s"]) if known else None,
        "turnover": ratio(s["arrivals"], cap, 3) if known and s["readings"] else None,
        "vehicles": int(s["arrivals"]) if s["readings"] else None,
        "turnover_source": turnover_source(s["readings"], s["counted"]),
        "peak_hour": s["peak_hour"],
        "peak_occupied": s["peak"],
        "hours_full": round(s["full_s"] / 3600, 2) if known else None,
        "observed_hours": round(s["observed_s"] / 3600, 2),
        "coverage": ratio(s["observed_s"], hours * 3600),
        "occupied_now": lot.occupied,
        "occupancy_now": ratio(lot.occupied, cap) if known and lot.occupied is not None else None,
        "observed_at": lot.observed_at.isoformat() if lot.observed_at else None,
    }  # fmt: skip


def profile_matrix(rows) -> list[list[float | None]]:
    """Utilisation by weekday (rows, Monday first) and hour of day (columns), None when unseen."""
    grid: list[list[float | None]] = [[None] * 24 for _ in range(7)]
    for r in rows:
        grid[r.dow - 1][r.hod] = ratio(r.known_occupied_s or 0, r.space_s or 0)
    return grid


def totals_of(rows: list[dict], sums: dict[int, dict], profile_rows) -> dict:
    """The area's figures: lots (all), capacity and rates over the lots of known capacity."""
    known = [r for r in rows if r["capacity"] is not None]
    cap = sum(r["capacity"] for r in known)
    occ = sum(sums[r["lot_id"]]["occupied_s"] for r in known if r["lot_id"] in sums)
    space = sum(r["capacity"] * sums[r["lot_id"]]["observed_s"] for r in known
                if r["lot_id"] in sums)  # fmt: skip
    vehicles = sum(r["vehicles"] or 0 for r in known)
    counted_cap = sum(r["capacity"] for r in known if r["vehicles"] is not None)
    by_hour: dict[int, list[float]] = {}
    for p in profile_rows:
        acc = by_hour.setdefault(p.hod, [0.0, 0.0])
        acc[0], acc[1] = acc[0] + (p.known_occupied_s or 0), acc[1] + (p.space_s or 0)
    means = {h: o / s for h, (o, s) in by_hour.items() if s > 0}
    sources = {r["turnover_source"] for r in known if r["turnover_source"]}
    now = [r for r in known if r["occupied_now"] is not None]
    return {
        "lots": len(rows), "lots_unknown_capacity": len(rows) - len(known), "capacity": cap,
        "utilisation": ratio(occ, space), "vehicles": vehicles,
        "turnover": ratio(vehicles, counted_cap, 3),
        "turnover_source": sources.pop() if len(sources) == 1 else ("mixed" if sources else None),
        "peak_hour": peak_of(means),
        "hours_full": round(sum(r["hours_full"] or 0 for r in known), 2),
        "occupied_now": sum(r["occupied_now"] for r in now),
        "occupancy_now": ratio(sum(r["occupied_now"] for r in now),
                               sum(r["capacity"] for r in now)),
    }  # fmt: skip


def measures(conn: Connection, params: dict, user: User) -> dict:
    """Per-lot and area measures over the window, and the weekday × hour utilisation profile."""
    start, stop = window(conn, params)
    t0, t1 = instants(start, stop)
    offset_s = int(t0.utcoffset().total_seconds())
    bound = {**place(conn, user, params), "start": t0, "stop": t1, "offset_s": offset_s}
    grouped = conn.execute(MEASURES, bound).all()
    sums = {r.lot_id: r._asdict() for r in grouped if r.g == 0}
    profile_rows = [r for r in grouped if r.g == 1]
    hours = (t1 - t0).total_seconds() / 3600
    rows = [lot_row(lot, sums.get(lot.id), hours) for lot in conn.execute(LOT_LIST, bound)]
    return {"from": start.isoformat(), "to": stop.isoformat(), "hours": hours,
            "hold_s": HOLD_S, "full_share": FULL_SHARE,
            "totals": totals_of(rows, sums, profile_rows), "rows": rows,
            "profile": profile_matrix(profile_rows)}  # fmt: skip


def heat(conn: Connection, params: dict, user: User) -> dict:
    """Parking pressure at a moment: lots with a reading within HOLD_S before it, capacity-weighted
    on a grid of at most GRID × GRID cells: [lat, lon, occupied ÷ capacity, occupied, capacity]."""
    if params.get("at") is None:
        raise BadRequest("缺少参数 at（ISO 时间）")
    at = parse_moment(params["at"], "at")
    bound = {**place(conn, user, params), "at": at, "hold": HOLD_S}
    rows = conn.execute(HEAT, bound).all()
    counts = conn.execute(HEAT_COUNTS, bound).one()
    points = [[round(r.lat, 6), round(r.lon, 6), round(r.occupied / r.capacity, 4),
               int(r.occupied), int(r.capacity)] for r in rows]  # fmt: skip
    seen = sum(r.n for r in rows)
    return {"at": at.isoformat(), "points": points,
            "cell_m": round(rows[0].cell, 1) if rows else None,
            "max": max((p[2] for p in points), default=0), "lots": counts.lots,
            "lots_with_reading": seen, "lots_unknown_capacity": counts.unknown,
            "occupied": sum(p[3] for p in points), "capacity": sum(p[4] for p in points)}  # fmt: skip


def walking(conn: Connection, origin, lots: np.ndarray, srid: int) -> np.ndarray:
    """Walking distance (m) from the origin to each lot along `road` (inf where not reachable)."""
    out = np.full(len(lots), np.inf)
    everything = shapely.MultiPoint([origin, *lots])
    area = cov.Area(None, "步行范围", None, srid, everything.envelope.buffer(500.0))
    graph = network.road_graph(conn, area, 500.0, keep=False)
    if graph.empty:
        return out
    start = network.find_entries(graph, np.array([origin], dtype=object))
    if not len(start.piece):
        return out
    seed = np.full(graph.nodes, np.inf)
    np.minimum.at(seed, graph.ends[start.piece, 0], start.walk + start.pos)
    np.minimum.at(seed, graph.ends[start.piece, 1],
                  start.walk + graph.length[start.piece] - start.pos)  # fmt: skip
    dist = network.distances(graph, seed, WALK_LIMIT_M)
    ends = network.find_entries(graph, lots)
    for f, k, pos, walk in zip(ends.facility, ends.piece, ends.pos, ends.walk, strict=True):
        via = min(dist[graph.ends[k, 0]] + pos, dist[graph.ends[k, 1]] + graph.length[k] - pos)
        same = start.piece == k  # on the origin's own road piece: walk along it directly
        if same.any():
            via = min(via, float(np.min(np.abs(start.pos[same] - pos) + start.walk[same])))
        out[f] = min(out[f], via + walk)
    return out


def nearest(conn: Connection, user: User, args) -> dict:
    """The n nearest lots with free spaces from a point, by walking distance where the road
    network reaches both ends, by straight line otherwise (each lot says which)."""
    find_layer("parking", user)
    lon, lat = parse_lonlat(args.get("lon"), args.get("lat"))
    n = parse_int(args.get("n") or 5, "n", 1, NEAREST_MAX)
    at = parse_moment(args["at"], "at") if args.get("at") else None
    bound = {"scope": list(user.scope) if user.scope else None, "focus": None, "wkb": None,
             "srid": SRID, "lon": lon, "lat": lat, "at": at,
             "k": n * NEAREST_CANDIDATES}  # fmt: skip
    rows = conn.execute(CANDIDATES, bound).all()
    srid = metric_epsg(lon, lat)
    to_metric = cov.transformer(SRID, srid)
    origin = shapely.Point(to_metric.transform(lon, lat))
    points = np.array(
        [shapely.Point(to_metric.transform(r.lon, r.lat)) for r in rows], dtype=object
    )
    walk = walking(conn, origin, points, srid) if len(rows) else np.array([])
    lots = []
    for r, w in zip(rows, walk, strict=True):
        by_road = bool(np.isfinite(w))
        lots.append({
            "lot_id": r.id, "code": r.code, "name": r.name, "lot_type": r.lot_type,
            "capacity": r.capacity, "occupied": r.occupied, "free": r.capacity - r.occupied,
            "fee": r.fee, "fee_per_hour": r.fee_per_hour, "lon": r.lon, "lat": r.lat,
            "distance_m": round(float(w if by_road else r.straight_m), 1),
            "straight_m": round(float(r.straight_m), 1),
            "method": "network" if by_road else "straight",
            "observed_at": r.observed_at.isoformat(),
        })  # fmt: skip
    lots.sort(key=lambda x: (x["distance_m"], x["code"]))
    methods = {x["method"] for x in lots[:n]}
    method = methods.pop() if len(methods) == 1 else ("mixed" if methods else None)
    notes = {"network": "按道路网步行距离", "straight": "无道路网，按直线距离",
             "mixed": "部分停车场不在道路网上，按直线距离（见各项 method）", None: "附近没有空闲停车场"}  # fmt: skip
    return {"lon": lon, "lat": lat, "at": at.isoformat() if at else None, "method": method,
            "note": notes[method], "lots": lots[:n]}  # fmt: skip


AREA_PARAMS = (Param("area", "区域", "area"),
               Param("polygon", "绘制范围（GeoJSON 多边形）", "geometry"))  # fmt: skip

PARKING = register(Analysis(
    id="parking", title="停车利用率与周转率",
    description="时段内各停车场的利用率（占用车位小时 ÷ 车位 × 观测小时）、周转率（驶入车辆 ÷ 车位，"
                "有驶入计数用计数，否则按占用上升估算）、高峰时段、满位（≥90%）小时数，"
                "及区域合计与星期 × 小时利用率分布。容量未知的停车场计入数量、不计入比率。",
    output="table",
    params=(Param("from", "开始日期", "date"), Param("to", "结束日期", "date"), *AREA_PARAMS),
    tables=("parking_lot", "parking_occupancy", "admin_area"), run=measures, cached=True,
))  # fmt: skip

PARKING_HEAT = register(Analysis(
    id="parking-heat", title="停车压力热力",
    description="某一时刻各停车场的占用（按车位数加权）聚合为不超过 4,096 个加权点；"
                "每个停车场取该时刻前一小时内的最新读数。",
    output="layer",
    params=(Param("at", "时刻（ISO 时间）", "text", required=True), *AREA_PARAMS),
    tables=("parking_lot", "parking_occupancy", "admin_area"), run=heat, cached=True,
))  # fmt: skip
