"""停车分析: utilisation, turnover, peak hour and full hours per lot and area; shortage (demand
against supply) per cell, ranked; pressure heat at a moment; the nearest lots with free spaces.
Definitions and the storage choice: docs/PARKING.md.

Measures and shortage read the daily rollup `parking_daily` (one row per lot and city-clock day
with 24 per-hour slots, summed from the hourly rollup `parking_hourly`; migration 0008, both kept
by triggers on every write of a reading): a reading holds until the lot's next one, for at most
HOLD_S seconds, so a gap in readings is unobserved time, never an empty lot. Lots of unknown
capacity are counted in `lots` and excluded from every rate. The user's areas are applied in SQL
(`geodata.areas.in_areas`).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics import network
from analytics.cells import CELL_SQL, CELLS, EXTENT, IN_EXTENT, check_cells
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
LOT_ENTRY_M = 80.0  # a lot (or the clicked point) reaches the road network within this
WALK_LIMIT_M = 10_000.0
SOURCES = ("entries", "estimated", "mixed")
FULL_TOLERANCE = 1e-9  # a share computed as exactly 90 % must not miss "≥ 90 %" by rounding

LOTS = f"""
    SELECT l.id, l.code, l.name, l.capacity, l.lot_type, l.fee, l.fee_per_hour, l.geom
    FROM parking_lot l
    WHERE (CAST(:scope AS text[]) IS NULL OR {in_areas("l.geom", "scope")})
      AND (CAST(:focus AS text[]) IS NULL OR {in_areas("l.geom", "focus")})
      AND (CAST(:wkb AS bytea) IS NULL
           OR ST_Intersects(l.geom, ST_Transform(ST_GeomFromWKB(:wkb, :srid), {SRID})))
"""


def hour_slots(expr: str) -> str:
    """SQL: an array of 24 aggregates, `expr` formatted with the 1-based hour-of-day slot {i}."""
    return "ARRAY[" + ", ".join(expr.format(i=i) for i in range(1, 25)) + "]"


# The daily rollup (one row per lot and city-clock day, with 24 per-hour slots) read once for the
# window's days; two groupings: per lot its totals and peak hour (the hour of day of highest mean
# occupancy over its observed time, earliest on a tie; g = 0), and per weekday and hour of day the
# occupied and capacity × observed seconds of the lots of known capacity (g = 1), so only ~2,200
# rows leave the database.
MEASURES = text(f"""
    WITH d AS MATERIALIZED (
      SELECT d.*, lots.capacity FROM parking_daily d JOIN ({LOTS}) lots ON lots.id = d.lot_id
      WHERE d.day >= :first AND d.day <= :last),
    per_lot AS (
      SELECT lot_id, sum(observed_s) AS observed_s, sum(occupied_s) AS occupied_s,
             sum(full_s) AS full_s, max(max_occupied) AS peak, sum(arrivals)::bigint AS arrivals,
             sum(readings)::bigint AS readings, sum(counted)::bigint AS counted,
             {hour_slots("sum(occupied_by_hour[{i}])")} AS occ,
             {hour_slots("sum(observed_by_hour[{i}])")} AS obs
      FROM d GROUP BY lot_id),
    per_weekday AS (
      SELECT extract(isodow FROM day)::int AS dow,
             {hour_slots("sum(occupied_by_hour[{i}]) FILTER (WHERE capacity IS NOT NULL)")} AS occ,
             {hour_slots("sum(observed_by_hour[{i}] * capacity)")} AS space
      FROM d GROUP BY 1)
    SELECT 0 AS g, p.lot_id,
           (SELECT u.i - 1 FROM unnest(p.occ, p.obs) WITH ORDINALITY u(occ, obs, i)
            WHERE u.obs > 0 ORDER BY u.occ / u.obs DESC, u.i LIMIT 1)::int AS peak_hour,
           NULL::int AS dow, NULL::int AS hod, p.observed_s, p.occupied_s, p.full_s, p.peak,
           p.arrivals, p.readings, p.counted, NULL::float AS known_occupied_s,
           NULL::float AS space_s
    FROM per_lot p
    UNION ALL
    SELECT 1, NULL, NULL, w.dow, (u.i - 1)::int, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           u.occ, u.space
    FROM per_weekday w, unnest(w.occ, w.space) WITH ORDINALITY u(occ, space, i)
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
# The hour of the newest reading (the rollup's newest hour may be only the tail of a reading's
# hold, past midnight: the default window would then end on a day without readings).
LATEST_HOUR = text("SELECT max(hour) FROM parking_hourly WHERE readings > 0")
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


# 停车缺口: each lot of LOTS joins the cell of the extent that contains its point (the smallest
# cell id on a shared edge). Per cell and hour (from the daily rollup's per-hour slots), over its
# lots of known capacity observed in that hour: the hour's utilisation (Σ occupied space-s ÷
# Σ capacity × observed s) and its demand (Σ per lot of its mean occupied spaces over the observed
# part of the hour). Then per cell: hours observed, hours at ≥ :full, the peak utilisation, and the
# peak demand with its day and hour (the earliest on a tie).
SHORTAGE = f"""
    WITH {EXTENT},
    cells AS MATERIALIZED (SELECT c.cell_id, c.native FROM ({{cells}}) c, a WHERE {IN_EXTENT}),
    lots AS MATERIALIZED ({LOTS}),
    member AS MATERIALIZED (
      SELECT DISTINCT ON (l.id) l.id, l.capacity, cells.cell_id,
             ST_X(ST_Centroid(cells.native)) AS lon, ST_Y(ST_Centroid(cells.native)) AS lat
      FROM cells JOIN parking_lot l ON l.geom && cells.native AND ST_Intersects(cells.native, l.geom)
      WHERE l.id IN (SELECT id FROM lots)
      ORDER BY l.id, cells.cell_id),
    per_day AS (
      SELECT m.cell_id, d.day,
             {hour_slots("sum(d.occupied_by_hour[{i}])")} AS occ,
             {hour_slots("sum(d.observed_by_hour[{i}] * m.capacity)")} AS space,
             {hour_slots("sum(d.occupied_by_hour[{i}] / nullif(d.observed_by_hour[{i}], 0))")}
               AS demand
      FROM member m JOIN parking_daily d ON d.lot_id = m.id
      WHERE m.capacity IS NOT NULL AND d.day >= :first AND d.day <= :last
      GROUP BY m.cell_id, d.day),
    hourly AS (
      SELECT p.cell_id, p.day, (u.i - 1)::int AS hod, u.occ / u.space AS ratio, u.demand
      FROM per_day p, unnest(p.occ, p.space, p.demand) WITH ORDINALITY u(occ, space, demand, i)
      WHERE u.space > 0),
    per_cell AS (
      SELECT cell_id, count(*) AS hours_observed,
             count(*) FILTER (WHERE ratio >= :full) AS hours_short, max(ratio) AS ratio,
             max(demand) AS demand,
             (array_agg(day ORDER BY demand DESC, day, hod))[1] AS peak_day,
             (array_agg(hod ORDER BY demand DESC, day, hod))[1] AS peak_hod
      FROM hourly GROUP BY cell_id)
    SELECT k.cell_id, k.lon, k.lat, k.lots, k.unknown, k.supply, p.hours_observed,
           p.hours_short, p.ratio, p.demand, p.peak_day, p.peak_hod
    FROM (SELECT cell_id, min(lon) AS lon, min(lat) AS lat, count(*) AS lots,
                 count(*) FILTER (WHERE capacity IS NULL) AS unknown,
                 coalesce(sum(capacity), 0) AS supply FROM member GROUP BY cell_id) k
    LEFT JOIN per_cell p ON p.cell_id = k.cell_id
"""


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
    """The city-clock day of the newest reading (today when there is no reading)."""
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
    bound = {**place(conn, user, params), "start": t0, "stop": t1, "first": start, "last": stop}
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


def shortage_extent(conn: Connection, user: User, params: dict) -> tuple[cov.Area, dict]:
    """The cells' extent (drawn polygon, admin area or the user's areas) and LOTS' bound values."""
    code, polygon = params.get("area"), params.get("polygon")
    if code and polygon is not None:
        raise BadRequest("area 与 polygon 只能给出一个")
    if polygon is not None:
        area = cov.drawn_area(conn, user, polygon)
    else:
        area = cov.load_area(conn, user, code)
    bound = {"scope": list(user.scope) if user.scope else None,
             "focus": [code] if code else None, **area.sql_params}  # fmt: skip
    return area, bound


def shortage_row(r) -> dict:
    """One cell's supply, peak demand and hours at ≥ FULL_SHARE (rank filled in later)."""
    seen = r.hours_observed is not None
    peak = datetime.combine(r.peak_day, time(r.peak_hod), city_zone()) if seen else None
    return {
        "rank": None, "cell_id": r.cell_id, "lon": round(r.lon, 6), "lat": round(r.lat, 6),
        "lots": int(r.lots), "lots_unknown_capacity": int(r.unknown), "supply": int(r.supply),
        "demand": round(r.demand, 2) if seen else None,
        "peak_at": peak.isoformat() if seen else None,
        "ratio": round(r.ratio, 4) if seen else None,
        "shortage": round(r.demand - FULL_SHARE * r.supply, 2) if seen else None,
        "hours_short": int(r.hours_short) if seen else 0,
        "hours_observed": int(r.hours_observed) if seen else 0,
        "short_share": ratio(r.hours_short, r.hours_observed) if seen else None,
    }  # fmt: skip


def rank_cells(rows: list[dict]) -> list[dict]:
    """Cells by hours short (most first), then peak ratio (highest; unobserved last), then id."""
    rows.sort(key=lambda r: (-r["hours_short"], -(r["ratio"] if r["ratio"] is not None else -1),
                             r["cell_id"]))  # fmt: skip
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def shortage(conn: Connection, params: dict, user: User) -> dict:
    """Per cell: lots, supply (known spaces), peak demand and hours ≥ 90 % full, ranked; top rows."""
    start, stop = window(conn, params)
    t0, t1 = instants(start, stop)
    area, bound = shortage_extent(conn, user, params)
    cells, size = params["cells"], float(params["size"])
    check_cells(area, cells, size)
    sql = text(SHORTAGE.replace("{cells}", CELL_SQL[cells]))
    found = conn.execute(sql, {**bound, "size": size, "first": start, "last": stop,
                               "full": FULL_SHARE - FULL_TOLERANCE}).all()  # fmt: skip
    counts = conn.execute(HEAT_COUNTS, bound).one()
    rows = rank_cells([shortage_row(r) for r in found])
    in_cells = sum(r["lots"] for r in rows)
    totals = {"cells": len(rows), "cells_short": sum(1 for r in rows if r["hours_short"]),
              "lots": counts.lots, "lots_unknown_capacity": counts.unknown,
              "lots_outside_cells": counts.lots - in_cells,
              "supply": sum(r["supply"] for r in rows),
              "hours_short": sum(r["hours_short"] for r in rows)}  # fmt: skip
    return {"from": start.isoformat(), "to": stop.isoformat(),
            "hours": (t1 - t0).total_seconds() / 3600, "cells_kind": cells,
            "size": size if cells == "hex" else None, "crs": f"EPSG:{area.srid}",
            "full_share": FULL_SHARE, "totals": totals,
            "rows": rows[: params["top"]]}  # fmt: skip


def walking(conn: Connection, origin, lots: np.ndarray, srid: int) -> np.ndarray:
    """Walking distance (m) from the origin to each lot along `road` (inf where not reachable)."""
    out = np.full(len(lots), np.inf)
    everything = shapely.MultiPoint([origin, *lots])
    area = cov.Area(None, "步行范围", None, srid, everything.envelope.buffer(500.0))
    graph = network.road_graph(conn, area, 500.0, keep=False)
    if graph.empty:
        return out
    start = network.find_entries(graph, np.array([origin], dtype=object), LOT_ENTRY_M)
    if not len(start.piece):
        return out
    seed = np.full(graph.nodes, np.inf)
    np.minimum.at(seed, graph.ends[start.piece, 0], start.walk + start.pos)
    np.minimum.at(seed, graph.ends[start.piece, 1],
                  start.walk + graph.length[start.piece] - start.pos)  # fmt: skip
    dist = network.distances(graph, seed, WALK_LIMIT_M)
    ends = network.find_entries(graph, lots, LOT_ENTRY_M)
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

# Each lot's occupancy at each moment, by the heat's rule (its latest reading in the hour before
# the moment, lots of known capacity), in the user's and the chosen area (parking.LOTS).
LOT_STATES = text(f"""
    WITH lots AS MATERIALIZED (
      SELECT * FROM ({LOTS}) l WHERE l.capacity IS NOT NULL
      ORDER BY l.capacity DESC, l.code LIMIT :limit),
    m AS (SELECT at, k FROM unnest(CAST(:moments AS timestamptz[])) WITH ORDINALITY AS u(at, k))
    SELECT lots.code, lots.name, lots.capacity, ST_X(lots.geom) AS lon, ST_Y(lots.geom) AS lat,
           array_agg(r.occupied ORDER BY m.k) AS occupied
    FROM lots CROSS JOIN m LEFT JOIN LATERAL (
      SELECT o.occupied FROM parking_occupancy o
      WHERE o.lot_id = lots.id AND o.observed_at <= m.at
        AND o.observed_at > m.at - make_interval(secs => :hold)
      ORDER BY o.observed_at DESC LIMIT 1) r ON true
    GROUP BY lots.code, lots.name, lots.capacity, lots.geom
    ORDER BY lots.capacity DESC, lots.code
""")


def lots_at(conn: Connection, user: User, moments: list[datetime], area, limit: int) -> dict:
    """Column arrays of the (at most `limit`, largest first) lots of known capacity in the user's
    and the chosen area, and their occupancy at each moment by the heat's rule."""
    bound = {**place(conn, user, {"area": area, "polygon": None}),
             "moments": moments, "hold": HOLD_S, "limit": limit}  # fmt: skip
    rows = conn.execute(LOT_STATES, bound).all()
    return {"code": [r.code for r in rows], "name": [r.name for r in rows],
            "capacity": [r.capacity for r in rows], "lon": [round(r.lon, 6) for r in rows],
            "lat": [round(r.lat, 6) for r in rows], "occupied": [list(r.occupied) for r in rows],
            "truncated": len(rows) >= limit}  # fmt: skip


PARKING = register(Analysis(
    id="parking", title="停车利用率与周转率",
    description="时段内各停车场的利用率（占用车位小时 ÷ 车位 × 观测小时）、周转率（驶入车辆 ÷ 车位，"
                "有驶入计数用计数，否则按占用上升估算）、高峰时段、满位（≥90%）小时数，"
                "及区域合计与星期 × 小时利用率分布。容量未知的停车场计入数量、不计入比率。",
    output="table",
    params=(Param("from", "开始日期", "date"), Param("to", "结束日期", "date"), *AREA_PARAMS),
    tables=("parking_lot", "parking_occupancy", "admin_area"), run=measures, cached=True,
))  # fmt: skip

PARKING_SHORTAGE = register(Analysis(
    id="parking-shortage", title="停车缺口（长期紧张区域）",
    description="按单元网格、社区或六边形网格汇总停车场：供给（已知泊位数之和）、高峰需求"
                "（各小时内各停车场平均占用之和的最大值）、峰值占用率，及占用率 ≥90% 的小时数；"
                "按紧张小时数、再按峰值占用率排序。容量未知的停车场计入数量、不计入供给与需求。",
    output="table",
    params=(Param("from", "开始日期", "date"), Param("to", "结束日期", "date"),
            Param("cells", "网格", "choice", "unit_grid", choices=CELLS),
            Param("size", "六边形边长(m)", "float", 500, low=50, high=5000), *AREA_PARAMS,
            Param("top", "列出条数", "int", 100, low=1, high=5000)),
    tables=("parking_lot", "parking_occupancy", "admin_area", "unit_grid"), run=shortage,
    cached=True,
))  # fmt: skip

PARKING_HEAT = register(Analysis(
    id="parking-heat", title="停车压力热力",
    description="某一时刻各停车场的占用（按车位数加权）聚合为不超过 4,096 个加权点；"
                "每个停车场取该时刻前一小时内的最新读数。",
    output="layer",
    params=(Param("at", "时刻（ISO 时间）", "text", required=True), *AREA_PARAMS),
    tables=("parking_lot", "parking_occupancy", "admin_area"), run=heat, cached=True,
))  # fmt: skip
