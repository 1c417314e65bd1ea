"""Alarms (预警): the live list, sensor states, ingest of alarm batches and closing an alarm.

Rules (docs/ALARMS.md):

- an alarm is active until it is closed (state 已解除), the rule of the `active_alarm` view;
- lists are newest first, filtered by sensor kind, level and bbox, and scoped in SQL to the
  user's areas (`geodata.areas.in_areas` on the sensor's position);
- an ingested row is `{sensor_code, raised_at, level, message?}`; the natural key is
  (sensor, raised_at): a row whose sensor already has an alarm at that instant is counted as
  existing and changes nothing, so a re-sent batch adds no alarms; concurrent batches are
  serialised by a transaction-level advisory lock, so the key check cannot race;
- rejected rows get a Chinese reason; all-or-nothing by default, `partial` writes the good rows;
- closing sets state 已解除 and cleared_at (never before raised_at) and writes the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from auth import accounts
from auth.access import find_layer
from auth.accounts import User
from errors import BadRequest, Forbidden, NotFound
from geodata import catalog
from geodata.areas import in_areas
from params import parse_bbox, parse_choice, parse_id, parse_int, text_value
from services.batches import parse_instant

ALARM_ROLES = ("admin", "operator")  # 系统管理员, 指挥中心值班员 (or their API tokens)
CLEARED = catalog.ALARM_STATES[-1]  # 已解除
FIELDS = ("sensor_code", "raised_at", "level", "message")
REQUIRED = FIELDS[:3]
MAX_BATCH = 20_000
MAX_MESSAGE = 500
MAX_LIST = 1000
CLOCK_SKEW = timedelta(minutes=5)
INGEST_LOCK = 7_240_014  # pg_advisory_xact_lock key of alarm ingest (issue #14)

SENSORS = text("SELECT code, id, kind FROM sensor WHERE code = ANY(:codes)")
WRITE = text(
    "INSERT INTO alarm (sensor_id, raised_at, level, message) "
    "SELECT u.s, u.t, u.l, u.m FROM unnest(CAST(:sensors AS bigint[]), "
    "CAST(:ats AS timestamptz[]), CAST(:levels AS text[]), CAST(:messages AS text[])) AS u(s, t, l, m) "
    "WHERE NOT EXISTS (SELECT 1 FROM alarm a WHERE a.sensor_id = u.s AND a.raised_at = u.t) "
    "RETURNING id"
)
ALARM_COLUMNS = """a.id, a.raised_at, a.level, a.message, a.state, a.cleared_at,
    s.code AS sensor_code, s.kind AS sensor_kind, s.name AS sensor_name, s.linked_layer,
    s.linked_id, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat"""


# --- reading: the alarm list, one alarm, sensor states ---------------------------------------


def parse_codes(raw, name: str, code_list) -> list[str] | None:
    """A comma-separated choice of values from a code list (None when absent), or 400."""
    if raw in (None, ""):
        return None
    values = [v.strip() for v in text_value(raw, name).split(",") if v.strip()]
    for v in values:
        parse_choice(v, name, code_list)
    return values or None


def parse_active(raw) -> bool:
    """`active`: true (default, only alarms not yet closed) or false (all alarms)."""
    if raw in (None, ""):
        return True
    return parse_choice(raw, "active", ("true", "false")) == "true"


def where_clauses(args: Mapping, user: User, params: dict, *, alarms: bool) -> list[str]:
    """SQL conditions (values bound into params) of the kind, level, bbox and scope filters."""
    parts = []
    kinds = parse_codes(args.get("kind"), "kind", catalog.SENSOR_KINDS)
    if kinds:
        parts.append("s.kind = ANY(CAST(:kinds AS text[]))")
        params["kinds"] = kinds
    if alarms:
        levels = parse_codes(args.get("level"), "level", catalog.ALARM_LEVELS)
        if levels:
            parts.append("a.level = ANY(CAST(:levels AS text[]))")
            params["levels"] = levels
        if parse_active(args.get("active")):
            parts.append("a.state <> :cleared")
            params["cleared"] = CLEARED
    if args.get("bbox") not in (None, ""):
        params["x0"], params["y0"], params["x1"], params["y1"] = parse_bbox(args["bbox"])
        parts.append(f"s.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, {catalog.SRID})")
    if user.scope:
        parts.append(in_areas("s.geom", "scope"))
        params["scope"] = list(user.scope)
    return parts


def alarm_json(row) -> dict:
    """One alarm row as JSON (times ISO 8601 on the city clock)."""
    zone = ZoneInfo(catalog.CITY_TIMEZONE)
    out = dict(row._mapping)
    for key in ("raised_at", "cleared_at"):
        out[key] = out[key].astimezone(zone).isoformat() if out[key] else None
    out["active"] = out["state"] != CLEARED
    return out


def list_alarms(conn: Connection, user: User, args: Mapping) -> dict:
    """GET /api/alarms: alarms newest first, filtered by kind, level, bbox and activity, scoped."""
    find_layer("alarm", user)
    limit = parse_int(args.get("limit") or "200", "limit", 1, MAX_LIST)
    params: dict = {"limit": limit}
    where = " AND ".join(where_clauses(args, user, params, alarms=True)) or "true"
    base = f"FROM alarm a JOIN sensor s ON s.id = a.sensor_id WHERE {where}"
    rows = conn.execute(text(f"SELECT {ALARM_COLUMNS} {base} "
                             f"ORDER BY a.raised_at DESC, a.id DESC LIMIT :limit"), params).all()  # fmt: skip
    counts = dict(
        conn.execute(text(f"SELECT a.level, count(*) {base} GROUP BY a.level"), params).all()
    )
    by_level = {lv: counts.get(lv, 0) for lv in catalog.ALARM_LEVELS}
    return {"total": sum(by_level.values()), "by_level": by_level, "limit": limit,
            "alarms": [alarm_json(r) for r in rows]}  # fmt: skip


def get_alarm(conn: Connection, user: User, alarm_id) -> dict:
    """One alarm with its sensor, within the user's areas, or 404."""
    find_layer("alarm", user)
    params: dict = {"id": parse_id(alarm_id)}
    scope = ""
    if user.scope:
        scope, params["scope"] = f" AND {in_areas('s.geom', 'scope')}", list(user.scope)
    row = conn.execute(text(f"SELECT {ALARM_COLUMNS} FROM alarm a JOIN sensor s ON s.id = a.sensor_id "
                            f"WHERE a.id = :id{scope}"), params).first()  # fmt: skip
    if row is None:
        raise NotFound(f"没有告警 {params['id']}（或不在您的管辖范围内）")
    return alarm_json(row)


def sensor_states(conn: Connection, user: User, args: Mapping) -> dict:
    """GET /api/sensors: each sensor's live state (告警 with its highest active level, or 正常)."""
    find_layer("sensor", user)
    limit = parse_int(args.get("limit") or "5000", "limit", 1, 20_000)
    params: dict = {"limit": limit, "cleared": CLEARED, "levels": list(catalog.ALARM_LEVELS)}
    where = " AND ".join(where_clauses(args, user, params, alarms=False)) or "true"
    rows = conn.execute(text(f"""
        SELECT s.id, s.code, s.kind, s.name, s.linked_layer, s.linked_id,
               ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, act.n AS active_alarms, act.top AS level,
               act.latest
        FROM sensor s LEFT JOIN LATERAL (
            SELECT count(*) AS n, max(a.raised_at) AS latest,
                   (CAST(:levels AS text[]))[max(array_position(CAST(:levels AS text[]), a.level))] AS top
            FROM alarm a WHERE a.sensor_id = s.id AND a.state <> :cleared) act ON true
        WHERE {where} ORDER BY act.n > 0 DESC, act.latest DESC NULLS LAST, s.code LIMIT :limit"""),
        params).mappings().all()  # fmt: skip
    zone = ZoneInfo(catalog.CITY_TIMEZONE)
    sensors = [{**r, "state": "告警" if r["active_alarms"] else "正常",
                "latest": r["latest"].astimezone(zone).isoformat() if r["latest"] else None}
               for r in rows]  # fmt: skip
    return {"count": len(sensors), "alarming": sum(1 for s in sensors if s["active_alarms"]),
            "sensors": sensors}  # fmt: skip


# --- ingest: a batch of alarms, validated per row ----------------------------------------------


@dataclass
class Batch:
    """The rows that passed validation and the rejected ones with their reasons."""

    sensors: list[int] = field(default_factory=list)
    ats: list[datetime] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def reject(self, index: int, sensor_code, reason: str) -> None:
        """Record a rejected row (sensor_code as sent, cut for the report)."""
        code = sensor_code[:40] if isinstance(sensor_code, str) else None
        self.rejected.append({"index": index, "sensor_code": code, "reason": reason})


def check_row(row, sensor: tuple[int, str] | None, latest: datetime) -> tuple[datetime, str, str]:
    """One row's time, level and message, or ValueError with the reason it is rejected."""
    if not isinstance(row, dict):
        raise ValueError("告警必须是对象 {sensor_code, raised_at, level, message}")
    missing = [f for f in REQUIRED if row.get(f) in (None, "")]
    if missing:
        raise ValueError(f"缺少字段：{', '.join(missing)}")
    if not isinstance(row["sensor_code"], str):
        raise ValueError("设备编码（sensor_code）必须是文本")
    if sensor is None:
        raise ValueError(f"没有这个物联感知设备（sensor_code={row['sensor_code'][:40]}）")
    at = parse_instant(row["raised_at"], "raised_at", "告警时间")
    if at > latest:
        minutes = CLOCK_SKEW.seconds // 60
        raise ValueError(
            f"告警时间在未来（raised_at={row['raised_at'][:40]}，允许误差 {minutes} 分钟）"
        )
    if row["level"] not in catalog.ALARM_LEVELS:
        raise ValueError(
            f"告警级别只能是 {'、'.join(catalog.ALARM_LEVELS)}（level={str(row['level'])[:20]}）"
        )
    message = row.get("message")
    if message in (None, ""):
        message = f"{sensor[1]}告警"
    if not isinstance(message, str) or len(message) > MAX_MESSAGE or "\x00" in message:
        raise ValueError(f"告警内容（message）必须是不超过 {MAX_MESSAGE} 字的文本")
    return at, row["level"], message.strip()


def sensors_of(conn: Connection, rows: list) -> dict[str, tuple[int, str]]:
    """The sensors named in the batch, code → (id, kind), in one query."""
    codes = {r.get("sensor_code") for r in rows if isinstance(r, dict)}
    codes = sorted(c for c in codes if isinstance(c, str) and "\x00" not in c)
    return {code: (sid, kind) for code, sid, kind in conn.execute(SENSORS, {"codes": codes})}


def validate(conn: Connection, rows: list, now: datetime) -> Batch:
    """Check every row against the sensors and the clock; the later of two same alarms is rejected."""
    sensors, latest, batch = sensors_of(conn, rows), now + CLOCK_SKEW, Batch()
    seen: dict[tuple[int, datetime], int] = {}
    for index, row in enumerate(rows):
        code = row.get("sensor_code") if isinstance(row, dict) else None
        sensor = sensors.get(code) if isinstance(code, str) else None
        try:
            at, level, message = check_row(row, sensor, latest)
        except ValueError as exc:
            batch.reject(index, code, str(exc))
            continue
        key = (sensor[0], at.astimezone(UTC))
        if key in seen:
            batch.reject(index, code, f"批次内重复：与第 {seen[key]} 条同一设备同一时间")
            continue
        seen[key] = index
        batch.sensors.append(key[0])
        batch.ats.append(key[1])
        batch.levels.append(level)
        batch.messages.append(message)
    return batch


def check_batch(rows) -> list:
    """The batch must be a non-empty list of at most MAX_BATCH alarms."""
    if not isinstance(rows, list):
        raise BadRequest("告警必须是 JSON 数组，每条为 {sensor_code, raised_at, level, message}")
    if not rows:
        raise BadRequest("没有告警")
    if len(rows) > MAX_BATCH:
        raise BadRequest(f"一次最多提交 {MAX_BATCH} 条告警（本次 {len(rows)} 条），请分批提交")
    return rows


def ingest_alarms(conn: Connection, rows, *, partial: bool = False,
                  now: datetime | None = None) -> dict:  # fmt: skip
    """Validate a batch and write the new alarms (all or nothing unless partial); the report."""
    rows = check_batch(rows)
    batch = validate(conn, rows, now or datetime.now(UTC))
    valid = len(batch.sensors)
    commit = valid > 0 and (partial or not batch.rejected)
    ids: list[int] = []
    if commit:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": INGEST_LOCK})
        ids = conn.execute(WRITE, {"sensors": batch.sensors, "ats": batch.ats,
                                   "levels": batch.levels, "messages": batch.messages}).scalars().all()  # fmt: skip
    return {"received": len(rows), "valid": valid, "written": commit, "inserted": len(ids),
            "existing": valid - len(ids) if commit else 0, "ids": sorted(ids),
            "rejected": batch.rejected, "partial": partial}  # fmt: skip


def check_alarm_role(user: User, what: str) -> None:
    """Only admins and the command centre's operators (or their API tokens) send or close alarms."""
    if user.role.name not in ALARM_ROLES:
        raise Forbidden(f"只有系统管理员和指挥中心值班员可以{what}")


# --- closing an alarm ---------------------------------------------------------------------------


def close_alarm(conn: Connection, user: User, alarm_id, note=None, *, ip: str) -> dict:
    """Close an active alarm (state 已解除, cleared_at now) and audit who did it; idempotent."""
    check_alarm_role(user, "解除告警")
    if note not in (None, ""):
        note = text_value(note, "note", 200)
    alarm = get_alarm(conn, user, alarm_id)  # 404 outside the user's areas
    if not alarm["active"]:
        return {"changed": False, "alarm": alarm}
    done = conn.execute(text("UPDATE alarm SET state = :cleared, cleared_at = greatest(now(), raised_at) "
                             "WHERE id = :id AND state <> :cleared"),
                        {"id": alarm["id"], "cleared": CLEARED}).rowcount  # fmt: skip
    if not done:  # closed by someone else in the meantime
        return {"changed": False, "alarm": get_alarm(conn, user, alarm["id"])}
    accounts.audit(conn, user.username, "alarm_close", f"alarm/{alarm['id']}",
                   {"sensor": alarm["sensor_code"], "level": alarm["level"],
                    "raised_at": alarm["raised_at"], "note": note or None}, ip=ip)  # fmt: skip
    return {"changed": True, "alarm": get_alarm(conn, user, alarm["id"])}
