"""Occupancy readings arriving in batches (停车占用读数接入): validate every row, then write at once.

One function, `ingest_readings(conn, rows, partial=…)`, serves both `POST /api/parking/readings`
and `python -m loaders parking-readings`. The rules (docs/PARKING.md, "Ingest"):

- a row is `{lot_code, at, occupied}` and optionally `entries` (vehicles in since the lot's
  previous reading, for lots that count them); `at` is ISO 8601 with a time of day; a time without
  a zone is read on the city clock (catalog.CITY_TIMEZONE, Asia/Shanghai);
- rejected with a Chinese reason: unknown lot, bad or future time (beyond CLOCK_SKEW), occupied
  or entries not a non-negative integer, occupied above a known capacity, the same lot and time
  twice in the batch (the later row);
- all-or-nothing by default (nothing written when any row is rejected); `partial=True` writes the
  good rows and reports the others;
- idempotent: a reading for a lot and time already stored replaces its value when it differs
  (a correction; entries sent replace, entries left out keep the stored count) and changes
  nothing when it is the same, so a re-sent batch adds no rows.

The write is one INSERT … SELECT FROM unnest(…) ON CONFLICT statement. Its statement triggers do
the rest: migration 0002's bumps the data version of parking_occupancy (cached figures refresh),
the rollup triggers (0008, incremental since 0011) recompute the touched hours of parking_hourly
and patch the touched hour slots of parking_daily (docs/PARKING.md, "Storage").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from auth.accounts import User
from errors import BadRequest, Forbidden
from services.batches import parse_instant

INGEST_ROLES = ("admin", "operator")  # 系统管理员, 指挥中心值班员
MAX_BATCH = 20_000
CLOCK_SKEW = timedelta(minutes=5)
FIELDS = ("lot_code", "at", "occupied")
OPTIONAL = ("entries",)
DIGITS = re.compile(r"^\s*\d{1,10}\s*$")

# FOR KEY SHARE: a lot cannot be deleted between validation and the write (no FK error).
LOTS = text("SELECT code, id, capacity FROM parking_lot WHERE code = ANY(:codes) FOR KEY SHARE")
WRITE = text(
    "INSERT INTO parking_occupancy AS p (lot_id, observed_at, occupied, entries) "
    "SELECT * FROM unnest(CAST(:lots AS bigint[]), CAST(:ats AS timestamptz[]), "
    "CAST(:occupied AS integer[]), CAST(:entries AS integer[])) "
    "ON CONFLICT (lot_id, observed_at) DO UPDATE "
    "SET occupied = EXCLUDED.occupied, entries = coalesce(EXCLUDED.entries, p.entries) "
    "WHERE (p.occupied, p.entries) IS DISTINCT FROM "
    "(EXCLUDED.occupied, coalesce(EXCLUDED.entries, p.entries)) "
    "RETURNING (p.xmax = 0) AS inserted"
)


@dataclass(frozen=True)
class Lot:
    """What validation needs of a parking lot."""

    id: int
    capacity: int | None


@dataclass
class Batch:
    """The rows that passed validation and the rejected ones with their reasons."""

    lots: list[int] = field(default_factory=list)
    ats: list[datetime] = field(default_factory=list)
    values: list[int] = field(default_factory=list)
    entries: list[int | None] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def reject(self, index: int, lot_code, reason: str) -> None:
        """Record a rejected row (lot_code as sent, cut for the report)."""
        code = lot_code[:40] if isinstance(lot_code, str) else None
        self.rejected.append({"index": index, "lot_code": code, "reason": reason})


def count_of(value, label: str, name: str) -> int:
    """A non-negative integer from JSON (int, integral float) or CSV text. ValueError otherwise."""
    number = value
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(value, str) and DIGITS.match(value):
        number = int(value)
    if isinstance(value, bool) or not isinstance(number, int) or number < 0 or number > 2**31 - 1:
        raise ValueError(f"{label}必须是非负整数（{name}={str(value)[:20]}）")
    return number


def lots_of(conn: Connection, rows: list) -> dict[str, Lot]:
    """The lots named in the batch, by code, in one query."""
    codes = {
        r.get("lot_code")
        for r in rows
        if isinstance(r, dict) and isinstance(r.get("lot_code"), str)
    }
    codes = sorted(c for c in codes if "\x00" not in c)  # PostgreSQL text cannot hold NUL
    found = conn.execute(LOTS, {"codes": codes}).all()
    return {code: Lot(lot_id, capacity) for code, lot_id, capacity in found}


def check_row(row, lot: Lot | None, latest: datetime) -> tuple[datetime, int, int | None]:
    """One row's time, occupied and entries, or ValueError with the reason it is rejected."""
    if not isinstance(row, dict):
        raise ValueError("读数必须是对象 {lot_code, at, occupied}")
    missing = [f for f in FIELDS if row.get(f) in (None, "")]
    if missing:
        raise ValueError(f"缺少字段：{', '.join(missing)}")
    if not isinstance(row["lot_code"], str):
        raise ValueError("停车场编码（lot_code）必须是文本")
    if lot is None:
        raise ValueError(f"没有这个停车场（lot_code={row['lot_code'][:40]}）")
    at = parse_instant(row["at"], "at", "时间")
    if at > latest:
        raise ValueError(
            f"时间在未来（at={row['at'][:40]}，允许误差 {CLOCK_SKEW.seconds // 60} 分钟）"
        )
    occupied = count_of(row["occupied"], "占用车位数", "occupied")
    if lot.capacity is not None and occupied > lot.capacity:
        raise ValueError(f"占用车位数 {occupied} 超过车位数 {lot.capacity}")
    entries = row.get("entries")
    entries = None if entries in (None, "") else count_of(entries, "进场车辆数", "entries")
    return at, occupied, entries


def validate(conn: Connection, rows: list, now: datetime) -> Batch:
    """Check every row against the lots and the clock; the later of two same readings is rejected."""
    lots, latest, batch = lots_of(conn, rows), now + CLOCK_SKEW, Batch()
    seen: dict[tuple[int, datetime], int] = {}
    for index, row in enumerate(rows):
        code = row.get("lot_code") if isinstance(row, dict) else None
        try:
            at, occupied, entries = check_row(
                row, lots.get(code) if isinstance(code, str) else None, latest
            )
        except ValueError as exc:
            batch.reject(index, code, str(exc))
            continue
        key = (lots[code].id, at.astimezone(UTC))
        if key in seen:
            batch.reject(index, code, f"批次内重复：与第 {seen[key] + 1} 条读数同一停车场同一时间")
            continue
        seen[key] = index
        batch.lots.append(key[0])
        batch.ats.append(key[1])
        batch.values.append(occupied)
        batch.entries.append(entries)
    return batch


def check_batch(rows) -> list:
    """The batch must be a non-empty list of at most MAX_BATCH readings."""
    if not isinstance(rows, list):
        raise BadRequest("读数必须是 JSON 数组，每条为 {lot_code, at, occupied}")
    if not rows:
        raise BadRequest("没有读数")
    if len(rows) > MAX_BATCH:
        raise BadRequest(f"一次最多提交 {MAX_BATCH} 条读数（本次 {len(rows)} 条），请分批提交")
    return rows


def write(conn: Connection, batch: Batch) -> tuple[int, int]:
    """Upsert the accepted readings in one statement; (inserted, updated)."""
    flags = conn.execute(WRITE, {"lots": batch.lots, "ats": batch.ats, "occupied": batch.values,
                                 "entries": batch.entries}).scalars().all()  # fmt: skip
    inserted = sum(flags)
    return inserted, len(flags) - inserted


def ingest_readings(conn: Connection, rows, *, partial: bool = False,
                    now: datetime | None = None) -> dict:  # fmt: skip
    """Validate a batch and write it (all or nothing unless partial); the report of what happened."""
    rows = check_batch(rows)
    batch = validate(conn, rows, now or datetime.now(UTC))
    valid = len(batch.lots)
    commit = valid > 0 and (partial or not batch.rejected)
    inserted, updated = write(conn, batch) if commit else (0, 0)
    return {"received": len(rows), "valid": valid, "written": commit,
            "inserted": inserted, "updated": updated,
            "unchanged": valid - inserted - updated if commit else 0,
            "rejected": batch.rejected, "partial": partial}  # fmt: skip


def check_ingest(user: User) -> None:
    """Only admins and the command centre's operators (or their API tokens) send readings."""
    if user.role.name not in INGEST_ROLES:
        raise Forbidden("只有系统管理员和指挥中心值班员可以提交停车读数")
