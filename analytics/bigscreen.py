"""指挥中心大屏: the figures of the command-centre big screen, cheap enough for ten screens.

The screen shows parts (KPI cards, charts, the hotspot cells, the live feed). Each part is
computed from a few aggregate queries and kept per database, data version of its tables, scope
and a short time bucket (figures such as "overdue now" move with the clock), so ten screens on
one server cost one computation per change, and an unchanged part keeps its hash: the page then
touches only what changed. Views (which KPIs, charts and layers each thematic view shows) are
configuration (config/bigscreen.toml), read and checked by `load_views`.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, text

from analytics import case_kpis as kpis
from analytics import coverage as cov
from analytics.contract import Memo
from analytics.coverage_rules import PARK_RULES
from analytics.hotspots import HOTSPOTS, hotspots
from analytics.park_coverage import COVERAGE_TABLES, base
from analytics.parking import city_zone
from auth.accounts import User, audit
from errors import BadRequest, Forbidden
from geodata import catalog
from geodata.areas import in_areas
from geodata.versions import version_key
from layers.registry import LAYERS

KPI_IDS = ("cases_new", "cases_closed", "on_time_rate", "overdue", "alarms_active",
           "camera_online", "parking_occupancy", "park_coverage")  # fmt: skip
CHART_IDS = ("cases_by_class", "cases_trend", "district_ranking", "alarms_by_kind",
             "parking_by_hour")  # fmt: skip
DAY_MODES = ("today", "latest")  # the screen's "now": the clock, or the newest case (demo replay)
PIN_ROLES = ("admin", "operator")  # 系统管理员, 指挥中心值班员
TREND_DAYS = 30
RANKING_DAYS = 30
HOTSPOT_DAYS = 7
FEED_ITEMS = 20
TIME_BUCKET_S = 60  # clock-dependent figures are recomputed at most once a minute without writes
# Gi* over the city takes seconds: the hotspot cells follow new cases every 15 minutes, not on
# every write (a week's pattern does not turn on one case).
HOTSPOT_TTL_S = 900
PARTS = Memo(64)
SCOPE = "CAST(:scope AS text[]) IS NULL OR "


@dataclass(frozen=True)
class View:
    """One thematic view of the screen (专题): its layers, KPI cards, charts and hotspots."""

    id: str
    title: str
    layers: tuple[str, ...]
    kpis: tuple[str, ...]
    charts: tuple[str, ...]
    hotspots: bool = False

    def json(self) -> dict:
        """The view as JSON for the page."""
        return {"id": self.id, "title": self.title, "layers": list(self.layers),
                "kpis": list(self.kpis), "charts": list(self.charts),
                "hotspots": self.hotspots}  # fmt: skip


def checked_names(view_id: str, field: str, names, known) -> tuple[str, ...]:
    """A view's list of names, each of them known (a config error names the view and field)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"大屏专题 {view_id}: {field} 必须是字符串列表")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"大屏专题 {view_id}: {field} 中没有 {unknown[0]}（可用：{', '.join(known)}）"
        )
    return tuple(names)


def parse_views(config: dict, layer_ids) -> tuple[View, ...]:
    """The views of a parsed config (an error names what is wrong)."""
    raw = config.get("view")
    if not isinstance(raw, list) or not raw:
        raise ValueError("大屏配置至少需要一个 [[view]]")
    views = []
    for entry in raw:
        vid = entry.get("id")
        if not isinstance(vid, str) or not vid.isidentifier() or len(vid) > 40:
            raise ValueError(f"大屏专题 id 必须是简短的标识符，不是 {vid!r}")
        if not isinstance(entry.get("title"), str) or not entry["title"]:
            raise ValueError(f"大屏专题 {vid}: 缺少 title")
        views.append(View(
            vid, entry["title"],
            checked_names(vid, "layers", entry.get("layers", []), tuple(layer_ids)),
            checked_names(vid, "kpis", entry.get("kpis", []), KPI_IDS),
            checked_names(vid, "charts", entry.get("charts", []), CHART_IDS),
            bool(entry.get("hotspots", False))))  # fmt: skip
    if len({v.id for v in views}) != len(views):
        raise ValueError("大屏专题 id 重复")
    return tuple(views)


def load_views(path: Path, layer_ids) -> tuple[View, ...]:
    """The configured views, read from a TOML file and checked against the known ids."""
    with open(path, "rb") as f:
        return parse_views(tomllib.load(f), layer_ids)


@cache
def configured_views(path: Path) -> tuple[View, ...]:
    """The views of a config file, checked against the layer registry (read once per process)."""
    return load_views(path, [x.id for x in LAYERS])


# --- the screen's clock -----------------------------------------------------------------------


def screen_now(conn: Connection, user: User, mode: str) -> datetime:
    """The screen's "now": the city clock, or (mode latest, for demo data) the newest case."""
    now = datetime.now(city_zone())
    if mode != "latest":
        return now
    newest = conn.execute(text(
        f"SELECT max(c.reported_at) FROM case_record c WHERE {SCOPE}{in_areas('c.geom', 'scope')}"),
        {"scope": scope_of(user)}).scalar()  # fmt: skip
    return min(now, newest.astimezone(city_zone())) if newest else now


def midnight(moment: datetime) -> datetime:
    """The start of the moment's day on the city clock."""
    return datetime.combine(moment.astimezone(city_zone()).date(), time(), city_zone())


def scope_of(user: User) -> list[str] | None:
    """The user's areas as a bound list (None: everything)."""
    return list(user.scope) if user.scope else None


def change(value, previous, basis: str) -> dict:
    """A KPI's value with its previous value and what it is compared with."""
    delta = None if value is None or previous is None else round(value - previous, 2)
    return {"value": value, "previous": previous, "delta": delta, "basis": basis}


def pct(part, whole) -> float | None:
    """part ÷ whole in % to 0.1 (None without a whole)."""
    return round(100.0 * float(part) / float(whole), 1) if whole else None


# --- parts ------------------------------------------------------------------------------------

CASE_COUNTS = text(f"""
    SELECT count(*) FILTER (WHERE c.reported_at >= :d0 AND c.reported_at < :now) AS new_now,
           count(*) FILTER (WHERE c.reported_at >= :d1 AND c.reported_at < :prev) AS new_prev,
           count(*) FILTER (WHERE c.closed_at >= :d0 AND c.closed_at < :now) AS closed_now,
           count(*) FILTER (WHERE c.closed_at >= :d1 AND c.closed_at < :prev) AS closed_prev,
           count(*) FILTER (WHERE c.registered_at < :now AND c.status <> :voided
                            AND NOT coalesce(c.closed_at < :now, false) AND c.deadline < :now)
             AS overdue_now,
           count(*) FILTER (WHERE c.registered_at < :prev AND c.status <> :voided
                            AND NOT coalesce(c.closed_at < :prev, false) AND c.deadline < :prev)
             AS overdue_prev
    FROM case_record c
    WHERE (c.reported_at >= :d1 OR c.closed_at >= :d1 OR c.closed_at IS NULL)
      AND ({SCOPE}{in_areas("c.geom", "scope")})
""")
CASES_BY_CLASS = text(f"""
    SELECT c.kind, left(coalesce(c.event_class_code, c.component_class_code), 2) AS major,
           count(*) FILTER (WHERE c.reported_at >= :d0) AS today, count(*) AS week
    FROM case_record c
    WHERE c.reported_at >= :w0 AND c.reported_at < :now AND ({SCOPE}{in_areas("c.geom", "scope")})
    GROUP BY 1, 2 ORDER BY 4 DESC
""")
CASES_TREND = text(f"""
    WITH days AS (SELECT generate_series(CAST(:first AS date), CAST(:last AS date), '1 day')::date
                  AS day),
    scoped AS (SELECT c.reported_at, c.closed_at FROM case_record c
               WHERE (c.reported_at >= :t0 OR c.closed_at >= :t0)
                 AND ({SCOPE}{in_areas("c.geom", "scope")})),
    new AS (SELECT (reported_at AT TIME ZONE :tz)::date AS day, count(*) AS n FROM scoped
            WHERE reported_at >= :t0 AND reported_at < :now GROUP BY 1),
    closed AS (SELECT (closed_at AT TIME ZONE :tz)::date AS day, count(*) AS n FROM scoped
               WHERE closed_at >= :t0 AND closed_at < :now GROUP BY 1)
    SELECT days.day, coalesce(new.n, 0) AS new, coalesce(closed.n, 0) AS closed
    FROM days LEFT JOIN new USING (day) LEFT JOIN closed USING (day) ORDER BY days.day
""")


def case_figures(conn: Connection, user: User, now: datetime) -> dict:
    """Today's new and closed cases and the overdue ones, each against yesterday at this time."""
    d0 = midnight(now)
    prev = now - timedelta(days=1)
    r = conn.execute(CASE_COUNTS, {"d0": d0, "d1": d0 - timedelta(days=1), "now": now,
                                   "prev": prev, "voided": kpis.VOIDED,
                                   "scope": scope_of(user)}).mappings().one()  # fmt: skip
    basis = "较昨日同时"
    return {"cases_new": change(r["new_now"], r["new_prev"], basis),
            "cases_closed": change(r["closed_now"], r["closed_prev"], basis),
            "overdue": change(r["overdue_now"], r["overdue_prev"], basis)}  # fmt: skip


def kpi_rows(conn: Connection, user: User, last: date, days: int, by: str = "district") -> dict:
    """按期结案率 etc. per district (or street) over the `days` up to `last` (the case KPIs)."""
    params = kpis.CASE_KPIS.parse({"by": by, "from": (last - timedelta(days=days - 1))
                                   .isoformat(), "to": last.isoformat()})  # fmt: skip
    return kpis.case_kpis(conn, params, user)


def on_time(conn: Connection, user: User, now: datetime) -> dict:
    """按期结案率 of the last 7 days against the 7 days before."""
    today = now.astimezone(city_zone()).date()
    this = kpi_rows(conn, user, today, 7)["totals"]["on_time_closure_rate"]
    last = kpi_rows(conn, user, today - timedelta(days=7), 7)["totals"]["on_time_closure_rate"]
    return {"on_time_rate": change(this, last, "较上周")}


def district_ranking(conn: Connection, user: User, now: datetime) -> dict:
    """Districts ranked by 按期结案率 over the last 30 days, best first (streets when the screen
    sees a single district)."""
    today = now.astimezone(city_zone()).date()
    rows, by = kpi_rows(conn, user, today, RANKING_DAYS)["rows"], "district"
    if sum(r["on_time_closure_rate"] is not None for r in rows) < 2:
        rows, by = kpi_rows(conn, user, today, RANKING_DAYS, "street")["rows"], "street"
    ranked = [r for r in rows if r["on_time_closure_rate"] is not None]
    ranked.sort(key=lambda r: (-r["on_time_closure_rate"], r["code"]))
    return {"district_ranking": {"by": by, "rows": [
        {"code": r["code"], "name": r["name"], "rate": r["on_time_closure_rate"],
         "due": r["due_to_close"]} for r in ranked]}}  # fmt: skip


def class_name(kind: str, major: str | None) -> str:
    """The Chinese name of an event or component major class."""
    names = catalog.COMPONENT_MAJOR if kind == "部件" else catalog.EVENT_MAJOR
    return f"{kind}·{names.get(major or '', '其他')}"


def cases_by_class(conn: Connection, user: User, now: datetime) -> list[dict]:
    """Cases by major class, today and over the last 7 days (most first)."""
    d0 = midnight(now)
    rows = conn.execute(CASES_BY_CLASS, {"d0": d0, "w0": d0 - timedelta(days=6), "now": now,
                                         "scope": scope_of(user)}).mappings()  # fmt: skip
    return [{"name": class_name(r["kind"], r["major"]), "today": r["today"], "week": r["week"]}
            for r in rows]  # fmt: skip


def cases_trend(conn: Connection, user: User, now: datetime) -> list[dict]:
    """New and closed cases per day over the last 30 days (today so far included)."""
    last = now.astimezone(city_zone()).date()
    first = last - timedelta(days=TREND_DAYS - 1)
    rows = conn.execute(CASES_TREND, {"first": first, "last": last, "now": now,
                                      "t0": datetime.combine(first, time(), city_zone()),
                                      "tz": catalog.CITY_TIMEZONE,
                                      "scope": scope_of(user)}).mappings()  # fmt: skip
    return [{"day": r["day"].isoformat(), "new": r["new"], "closed": r["closed"]} for r in rows]


ACTIVE_AT = (
    "a.raised_at <= :{t} AND NOT (a.state = :cleared AND coalesce(a.cleared_at <= :{t}, true))"
)
ALARM_COUNTS = text(f"""
    SELECT count(*) FILTER (WHERE {ACTIVE_AT.format(t="now")}) AS active_now,
           count(*) FILTER (WHERE {ACTIVE_AT.format(t="prev")}) AS active_prev
    FROM alarm a JOIN sensor s ON s.id = a.sensor_id
    WHERE (a.state <> :cleared OR a.cleared_at > :prev) AND ({SCOPE}{in_areas("s.geom", "scope")})
""")
ALARMS_BY_KIND = text(f"""
    SELECT s.kind, a.level, count(*) AS n FROM alarm a JOIN sensor s ON s.id = a.sensor_id
    WHERE a.raised_at > :w0 AND a.raised_at <= :now AND ({SCOPE}{in_areas("s.geom", "scope")})
    GROUP BY 1, 2
""")


def alarm_figures(conn: Connection, user: User, now: datetime) -> dict:
    """Active alarms now against yesterday at this time, and the week's alarms by kind and level."""
    values = {"now": now, "prev": now - timedelta(days=1), "cleared": catalog.ALARM_STATES[-1],
              "scope": scope_of(user)}  # fmt: skip
    r = conn.execute(ALARM_COUNTS, values).mappings().one()
    week = conn.execute(ALARMS_BY_KIND, {**values, "w0": now - timedelta(days=7)}).mappings()
    by_kind = [{"kind": w["kind"], "level": w["level"], "n": w["n"]} for w in week]
    return {"alarms_active": change(r["active_now"], r["active_prev"], "较昨日同时"),
            "alarms_by_kind": sorted(by_kind, key=lambda w: (w["kind"], w["level"]))}  # fmt: skip


CAMERAS = text(f"""
    SELECT count(*) FILTER (WHERE c.online) AS online, count(*) AS cameras FROM camera c
    WHERE {SCOPE}{in_areas("c.geom", "scope")}
""")
RECORD = text("INSERT INTO kpi_daily (day, kpi, value) VALUES (:day, :kpi, :value) "
              "ON CONFLICT (day, kpi) DO NOTHING")  # fmt: skip
EARLIER = text("SELECT day, value FROM kpi_daily WHERE kpi = :kpi AND day < :day "
               "ORDER BY day DESC LIMIT 1")  # fmt: skip


def recorded_change(conn: Connection, user: User, kpi: str, value, now: datetime) -> dict:
    """A figure without a history of its own: recorded once a day (whole-city screens only) and
    compared with the latest earlier record."""
    day = now.astimezone(city_zone()).date()
    if user.scope:  # the daily record is the city's; a scoped screen shows no change
        return change(value, None, "无往日记录")
    conn.execute(RECORD, {"day": day, "kpi": kpi, "value": value})
    earlier = conn.execute(EARLIER, {"kpi": kpi, "day": day}).mappings().first()
    if earlier is None:
        return change(value, None, "无往日记录")
    return change(value, earlier["value"], f"较 {earlier['day']:%m-%d}")


def camera_figures(conn: Connection, user: User, now: datetime) -> dict:
    """The camera online rate (在线率) against the latest earlier daily record."""
    r = conn.execute(CAMERAS, {"scope": scope_of(user)}).mappings().one()
    rate = pct(r["online"], r["cameras"])
    return {"camera_online": recorded_change(conn, user, "camera_online", rate, now),
            "cameras": {"online": r["online"], "total": r["cameras"]}}  # fmt: skip


PARKING_HOUR = text("SELECT max(hour) FROM parking_hourly WHERE readings > 0 AND hour <= :now")
PARKING_BY_HOUR = text(f"""
    SELECT h.hour, sum(h.occupied_s) AS occupied_s, sum(h.observed_s * l.capacity) AS space_s
    FROM parking_hourly h JOIN parking_lot l ON l.id = h.lot_id
    WHERE l.capacity IS NOT NULL AND h.hour >= :h0 AND h.hour <= :h1 AND h.observed_s > 0
      AND ({SCOPE}{in_areas("l.geom", "scope")})
    GROUP BY h.hour ORDER BY h.hour
""")


def parking_figures(conn: Connection, user: User, now: datetime) -> dict:
    """City-wide occupancy of the newest hour with readings against the same hour a day before,
    and the hourly occupancy of that day and the day before (lots of unknown capacity left out)."""
    hour = conn.execute(PARKING_HOUR, {"now": now}).scalar()
    if hour is None:
        return {"parking_occupancy": change(None, None, "无停车数据"), "parking_by_hour": []}
    local = hour.astimezone(city_zone())
    day0 = midnight(local)
    rows = conn.execute(PARKING_BY_HOUR, {"h0": day0 - timedelta(days=1), "h1": hour,
                                          "scope": scope_of(user)}).mappings().all()  # fmt: skip
    share = {r["hour"].astimezone(city_zone()): pct(r["occupied_s"], r["space_s"]) for r in rows}
    series = [{"hour": h.hour, "day": "今日" if h >= day0 else "昨日", "pct": v}
              for h, v in sorted(share.items())]  # fmt: skip
    figure = change(share.get(local), share.get(local - timedelta(days=1)), "较昨日同时")
    return {"parking_occupancy": {**figure, "as_of": local.isoformat(timespec="minutes")},
            "parking_by_hour": series}  # fmt: skip


def coverage_figures(conn: Connection, user: User, now: datetime) -> dict:
    """公园绿地服务半径覆盖率 of everything the user may see (straight line, the rule table)."""
    b = base(conn, user, None, PARK_RULES)
    rate = cov.figures(b.land, b.covered["euclidean"]).coverage_pct
    return {"park_coverage": recorded_change(conn, user, "park_coverage", rate, now)}


def hotspot_cells(conn: Connection, user: User, now: datetime) -> dict:
    """The hot unit grids (Gi*, FDR-corrected) of the last 7 days, as GeoJSON."""
    last = now.astimezone(city_zone()).date()
    params = HOTSPOTS.parse({"from": (last - timedelta(days=HOTSPOT_DAYS - 1)).isoformat(),
                             "to": last.isoformat(), "cells": "unit_grid"})  # fmt: skip
    found = hotspots(conn, params, user)
    hot = [f for f in found["features"] if f["properties"]["hotspot_class"].startswith("hot")]
    return {"type": "FeatureCollection", "features": hot,
            "summary": {"cells": found["summary"]["cells"], "hot": len(hot)}}  # fmt: skip


FEED_CASES = text(f"""
    SELECT c.id, c.code, c.kind, c.event_class_code, c.component_class_code, c.reported_at,
           c.address, c.status, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
    FROM case_record c
    WHERE c.reported_at <= :now AND ({SCOPE}{in_areas("c.geom", "scope")})
    ORDER BY c.reported_at DESC, c.id DESC LIMIT :n
""")
FEED_ALARMS = text(f"""
    SELECT a.id, a.raised_at, a.level, a.message, a.state, s.kind, s.code AS sensor,
           ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
    FROM alarm a JOIN sensor s ON s.id = a.sensor_id
    WHERE a.raised_at <= :now AND ({SCOPE}{in_areas("s.geom", "scope")})
    ORDER BY a.raised_at DESC, a.id DESC LIMIT :n
""")


def case_title(r) -> str:
    """A case's class name (minor class when known)."""
    code = r["event_class_code"] or r["component_class_code"] or ""
    names = catalog.COMPONENT_MINOR if r["kind"] == "部件" else catalog.EVENT_MINOR
    return names.get(code) or class_name(r["kind"], code[:2] or None)


def feed(conn: Connection, user: User, now: datetime) -> list[dict]:
    """The newest cases and alarms, newest first (no person details: the kiosk may see it)."""
    values = {"now": now, "n": FEED_ITEMS, "scope": scope_of(user)}
    items = [{"key": f"case-{r['id']}", "kind": "case", "at": r["reported_at"],
              "title": case_title(r), "place": r["address"] or "", "state": r["status"],
              "code": r["code"], "level": None, "lon": r["lon"], "lat": r["lat"]}
             for r in conn.execute(FEED_CASES, values).mappings()]  # fmt: skip
    items += [{"key": f"alarm-{r['id']}", "kind": "alarm", "at": r["raised_at"],
               "title": f"{r['kind']}告警", "place": r["message"], "state": r["state"],
               "code": r["sensor"], "level": r["level"], "lon": r["lon"], "lat": r["lat"]}
              for r in conn.execute(FEED_ALARMS, values).mappings()]  # fmt: skip
    items.sort(key=lambda i: i["at"], reverse=True)
    return [{**i, "at": i["at"].astimezone(city_zone()).isoformat(timespec="seconds")}
            for i in items[:FEED_ITEMS]]  # fmt: skip


@dataclass(frozen=True)
class Part:
    """One part of the screen: what it needs, what it reads and how it is computed."""

    id: str
    kpis: tuple[str, ...]
    charts: tuple[str, ...]
    tables: tuple[str, ...]
    compute: Callable[[Connection, User, datetime], object]
    clocked: bool = True  # moves with the clock (recomputed each TIME_BUCKET_S without writes)
    every_write: bool = True  # False: kept for HOTSPOT_TTL_S whatever is written meanwhile


PART_LIST = (
    Part("cases", ("cases_new", "cases_closed", "overdue"), (), ("case_record",), case_figures),
    Part("on_time", ("on_time_rate",), (), ("case_record", "admin_area"), on_time),
    Part("ranking", (), ("district_ranking",), ("case_record", "admin_area"), district_ranking),
    Part("by_class", (), ("cases_by_class",), ("case_record",), cases_by_class),
    Part("trend", (), ("cases_trend",), ("case_record",), cases_trend),
    Part("alarms", ("alarms_active",), ("alarms_by_kind",), ("alarm", "sensor"), alarm_figures),
    Part("cameras", ("camera_online",), (), ("camera",), camera_figures),
    Part("parking", ("parking_occupancy",), ("parking_by_hour",),
         ("parking_hourly", "parking_lot"), parking_figures),
    Part("coverage", ("park_coverage",), (), COVERAGE_TABLES, coverage_figures, clocked=False),
    Part("hotspots", (), (), ("unit_grid", "admin_area"), hotspot_cells, every_write=False),
    Part("feed", (), (), ("case_record", "alarm"), feed),
)  # fmt: skip
PARTS_BY_ID = {p.id: p for p in PART_LIST}


def needed_parts(views: tuple[View, ...]) -> list[Part]:
    """The parts some view shows (the feed always)."""
    kpi_ids = {k for v in views for k in v.kpis}
    chart_ids = {c for v in views for c in v.charts}
    wanted = [p for p in PART_LIST if set(p.kpis) & kpi_ids or set(p.charts) & chart_ids]
    if any(v.hotspots for v in views):
        wanted.append(PARTS_BY_ID["hotspots"])
    return [*wanted, PARTS_BY_ID["feed"]]


def digest(data) -> str:
    """A short hash of a part's content (unchanged content: unchanged hash)."""
    body = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(body.encode()).hexdigest()[:16]


def part_value(conn: Connection, user: User, part: Part, now: datetime) -> dict:
    """A part's content and hash, from the cache when nothing it reads has changed."""
    every = TIME_BUCKET_S if part.every_write else HOTSPOT_TTL_S
    bucket = int(now.timestamp() // every) if part.clocked else None
    key = (part.id, version_key(conn, part.tables), user.scope, user.role.name, bucket,
           midnight(now).date())  # fmt: skip
    found = PARTS.get(key)
    if found is None:
        data = part.compute(conn, user, now)
        found = {"hash": digest(data), "data": data}
        PARTS.put(key, found)
    return found


def snapshot(conn: Connection, user: User, views: tuple[View, ...], mode: str = "today") -> dict:
    """Everything the screen shows, part by part (each with its hash), and when it was taken."""
    now = screen_now(conn, user, mode)
    parts = {p.id: part_value(conn, user, p, now) for p in needed_parts(views)}
    return {"now": now.isoformat(timespec="seconds"), "mode": mode,
            "day": now.astimezone(city_zone()).date().isoformat(), "parts": parts}  # fmt: skip


def kpi_values(snap: dict) -> dict:
    """Every KPI of a snapshot by id (from whichever part computed it)."""
    out = {}
    for part in PART_LIST:
        data = snap["parts"].get(part.id, {}).get("data")
        for kpi in part.kpis:
            if isinstance(data, dict) and kpi in data:
                out[kpi] = data[kpi]
    return out


def chart_values(snap: dict) -> dict:
    """Every chart's rows of a snapshot by id."""
    out = {}
    for part in PART_LIST:
        data = snap["parts"].get(part.id, {}).get("data")
        for chart in part.charts:
            out[chart] = data.get(chart, []) if isinstance(data, dict) else data
    return out


GRID_EXTENT = text(f"""
    SELECT ST_XMin(e) AS w, ST_YMin(e) AS s, ST_XMax(e) AS e, ST_YMax(e) AS n
    FROM (SELECT ST_Extent(g.geom) AS e FROM unit_grid g
          WHERE {SCOPE}{in_areas("g.geom", "scope", polygonal=True)}) x
""")
EXTENTS = Memo(16)


def managed_bounds(conn: Connection, user: User) -> list | None:
    """[[south, west], [north, east]] of the unit grids the user may see (None without grids)."""
    key = (version_key(conn, ("unit_grid",)), user.scope)
    found = EXTENTS.get(key)
    if found is None:
        r = conn.execute(GRID_EXTENT, {"scope": scope_of(user)}).mappings().one()
        found = [[r["s"], r["w"]], [r["n"], r["e"]]] if r["w"] is not None else []
        EXTENTS.put(key, found)
    return found or None


# --- the pinned view (专题固定) ----------------------------------------------------------------

PIN = text("SELECT view_id, pinned_by, pinned_at FROM bigscreen_pin WHERE id = 1")
SET_PIN = text("""
    INSERT INTO bigscreen_pin (id, view_id, pinned_by, pinned_at) VALUES (1, :v, :u, now())
    ON CONFLICT (id) DO UPDATE SET view_id = EXCLUDED.view_id, pinned_by = EXCLUDED.pinned_by,
                                   pinned_at = EXCLUDED.pinned_at
""")


def pinned(conn: Connection, views: tuple[View, ...]) -> dict | None:
    """The pinned view (None: the screen rotates; a pin to a view no longer configured too)."""
    row = conn.execute(PIN).mappings().first()
    if row is None or row["view_id"] not in {v.id for v in views}:
        return None
    return {"view": row["view_id"], "by": row["pinned_by"],
            "at": row["pinned_at"].astimezone(city_zone()).isoformat(timespec="seconds")}  # fmt: skip


def pin_view(conn: Connection, user: User, view_id, views: tuple[View, ...], *, ip: str) -> dict:
    """Pin a view on every big screen (empty view id: rotate again); operators and admins."""
    if user.role.name not in PIN_ROLES:
        raise Forbidden("只有指挥中心值班员或系统管理员可以固定大屏专题")
    if view_id in (None, ""):
        conn.execute(text("DELETE FROM bigscreen_pin"))
        audit(conn, user.username, "bigscreen_unpin", None, ip=ip)
        return {"pinned": None}
    if not isinstance(view_id, str) or view_id not in {v.id for v in views}:
        known = "、".join(f"{v.id}（{v.title}）" for v in views)
        raise BadRequest(f"没有大屏专题 {str(view_id)[:40]}（可用：{known}）")
    conn.execute(SET_PIN, {"v": view_id, "u": user.username})
    audit(conn, user.username, "bigscreen_pin", view_id, ip=ip)
    return {"pinned": pinned(conn, views)}
