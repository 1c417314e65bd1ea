"""Parking benchmark: 2,000 lots × 14 days of 15-minute readings (2.69 million rows) in a scratch
database (dropped afterwards). Times the ingest (one INSERT per day, the rollup triggers included),
the pressure heat at several moments, a week's per-lot utilisation for the whole city, a week's
shortage per 500 m hexagon, the nearest lots and the ingest of 10,000 readings through the ingest
service. Targets (issue #13): heat for any moment under 200 ms, a week's utilisation under 1 s,
the ingest under 2 s.

    .venv/bin/python -m bench.parking

Every run bypasses the result cache (`run_analysis` without a cache). Prints a markdown table and
writes it into docs/PERFORMANCE.md between the parking markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import datetime, timedelta

import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from analytics.contract import run_analysis
from analytics.parking import nearest
from auth.accounts import User
from auth.roles import ROLES
from bench.common import write_section
from bench.tiles import machine
from geodata.db import make_engine, migrate
from services.parking_ingest import ingest_readings
from settings import Settings

OPERATOR = User(0, "bench", ROLES["operator"], ())
LOTS, DAYS, PER_DAY = 2000, 14, 96
TARGETS_S = {"heat": 0.2, "week": 1.0, "ingest": 2.0}
LOT_SQL = """
    INSERT INTO parking_lot (code, name, capacity, lot_type, fee_per_hour, geom)
    SELECT 'B' || i, '基准停车场' || i, 20 + (i * 37) % 480, '路外', 2,
           ST_SetSRID(ST_MakePoint(116.90 + (i % 50) * 0.005, 36.60 + (i / 50) * 0.004), 4490)
    FROM generate_series(0, :n - 1) i
"""
DAY_SQL = """
    INSERT INTO parking_occupancy (lot_id, observed_at, occupied)
    SELECT l.id, t, least(l.capacity, greatest(0, round(l.capacity * (0.45 + 0.4 *
           sin(extract(epoch FROM t) / 86400 * 2 * pi() + l.id) + 0.1 * random()))))::int
    FROM parking_lot l,
         generate_series(CAST(:day AS timestamptz), CAST(:day AS timestamptz) + interval '1 day'
                         - interval '15 minutes', interval '15 minutes') t
"""
START = "2026-03-02T00:00:00+08:00"
# The bench database has no admin areas: the shortage's extent is a drawn polygon around the lots.
LOTS_BOX = shapely.to_geojson(shapely.box(116.89, 36.59, 117.16, 36.77))


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median seconds of `repeat` runs, and the last answer."""
    times, out = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), out


def build(engine) -> list[float]:
    """The lots and 14 days of readings; seconds of each day's INSERT (triggers included)."""
    with engine.begin() as conn:
        conn.execute(text(LOT_SQL), {"n": LOTS})
    seconds = []
    for d in range(DAYS):
        with engine.begin() as conn:
            day = conn.execute(text("SELECT CAST(:s AS timestamptz) + make_interval(days => :d)"),
                               {"s": START, "d": d}).scalar()  # fmt: skip
            # A day is 192,000 readings in one statement: with the cores shared it can pass the
            # sessions' 30 s statement timeout (make_engine), which is for requests, not this.
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            began = time.perf_counter()
            conn.execute(text(DAY_SQL), {"day": day})
            seconds.append(time.perf_counter() - began)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE parking_occupancy; ANALYZE parking_hourly; ANALYZE parking_daily; "
                          "ANALYZE parking_lot"))  # fmt: skip
    return seconds


INGEST_BATCH = 10_000


def ingest_rows(engine) -> tuple[list[dict], datetime]:
    """The batch of INGEST_BATCH new readings (five 15-minute steps after the data for 2,000 lots)
    and the `now` to validate it at; made once, outside the timing (its max(observed_at) is a
    scan of the whole table, no part of an ingest)."""
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(observed_at) FROM parking_occupancy")).scalar()
        codes = list(conn.execute(text("SELECT code FROM parking_lot ORDER BY id")).scalars())
    steps = -(-INGEST_BATCH // len(codes))
    rows = [{"lot_code": c, "at": (last + timedelta(minutes=15 * (k + 1))).isoformat(),
             "occupied": (i + k) % 7} for k in range(steps) for i, c in enumerate(codes)]  # fmt: skip
    return rows[:INGEST_BATCH], last + timedelta(days=1)


def ingest_batch(engine, rows: list[dict], now: datetime) -> dict:
    """The batch through the ingest service, in a transaction that is rolled back."""
    with engine.connect() as conn, conn.begin() as tx:
        report = ingest_readings(conn, rows, now=now)
        tx.rollback()
    return report


def measure(engine, repeat: int) -> list[tuple[str, float, str]]:
    """(what, median seconds, note) of each timed request."""
    out = []
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM parking_occupancy")).scalar()
        hourly = conn.execute(text("SELECT count(*) FROM parking_hourly")).scalar()
        daily = conn.execute(text("SELECT count(*) FROM parking_daily")).scalar()
        for at in ("2026-03-02T08:00:00+08:00", "2026-03-05T12:07:00+08:00",
                   "2026-03-09T18:30:00+08:00", "2026-03-15T23:59:00+08:00"):  # fmt: skip
            s, body = timed(lambda at=at: run_analysis(conn, OPERATOR, "parking-heat", {"at": at}),
                            repeat)  # fmt: skip
            res = body["result"]
            out.append((f"heat at {at[:16]}", s, f"{len(res['points'])} points, "
                        f"{res['lots_with_reading']} lots"))  # fmt: skip
        week = {"from": "2026-03-09", "to": "2026-03-15"}
        s, body = timed(lambda: run_analysis(conn, OPERATOR, "parking", week), repeat)
        out.append(("a week's per-lot utilisation, whole city", s,
                    f"{len(body['result']['rows'])} lots, utilisation "
                    f"{body['result']['totals']['utilisation']}"))  # fmt: skip
        whole = {"from": "2026-03-02", "to": "2026-03-15"}
        s, body = timed(lambda: run_analysis(conn, OPERATOR, "parking", whole), repeat)
        out.append(("14 days' per-lot utilisation, whole city", s, ""))
        short = {**week, "cells": "hex", "size": "500", "polygon": LOTS_BOX, "top": "20"}
        s, body = timed(lambda: run_analysis(conn, OPERATOR, "parking-shortage", short), repeat)
        t = body["result"]["totals"]
        out.append(("a week's shortage per 500 m hexagon, whole city", s,
                    f"{t['cells']} cells with lots, {t['cells_short']} short"))  # fmt: skip
        s, body = timed(lambda: nearest(conn, OPERATOR, {"lon": "117.0", "lat": "36.64", "n": "5"}),
                        repeat)  # fmt: skip
        out.append(("nearest 5 lots (no roads: straight line)", s, body["method"]))
    batch, now = ingest_rows(engine)
    load = os.getloadavg()[0]
    s, report = timed(lambda: ingest_batch(engine, batch, now), repeat)
    load = max(load, os.getloadavg()[0])
    met = "met" if s < TARGETS_S["ingest"] else "**not met**"
    out.append((f"ingest of {INGEST_BATCH:,} new readings (validated, written, rollups kept; "
                "rolled back after each run)", s,
                f"{report['inserted']:,} inserted; target < {TARGETS_S['ingest']:.0f} s {met}; "
                f"1-minute load average up to {load:.1f} while it ran"))  # fmt: skip
    out.insert(0, ("rows", float(rows), f"{hourly:,} hourly and {daily:,} daily rollup rows"))
    return out


def table(results: list, ingest: list[float]) -> str:
    """The markdown table."""
    lines = [f"Measured {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {machine()} (the cores "
             f"shared with other work: see the load average of the ingest row). {LOTS:,} lots × "
             f"{DAYS} days × {PER_DAY} readings; median of the runs, no result cache.", "",
             "| what | time | note |", "|---|---:|---|"]  # fmt: skip
    first, *timings = results
    lines.append(f"| readings | {int(first[1]):,} | {first[2]} |")
    lines.append(f"| ingest of one day ({LOTS * PER_DAY:,} readings, rollup triggers included) | "
                 f"{statistics.median(ingest):.2f} s (median of {len(ingest)}) | |")  # fmt: skip
    for what, s, note in timings:
        lines.append(f"| {what} | {s * 1000:.0f} ms | {note} |")
    lines.append("")
    lines.append(f"Targets: heat < {TARGETS_S['heat'] * 1000:.0f} ms, "
                 f"a week's utilisation < {TARGETS_S['week']:.0f} s, "
                 f"ingest of {INGEST_BATCH:,} readings < {TARGETS_S['ingest']:.0f} s.")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    """Build the scratch database, run, print, record, drop."""
    p = argparse.ArgumentParser(prog="python -m bench.parking", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    base = make_url(Settings().sqlalchemy_url())
    name = f"onemap_bench_parking_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        engine = make_engine(base.set(database=name).render_as_string(hide_password=False))
        migrate(engine)
        ingest = build(engine)
        markdown = table(measure(engine, args.repeat), ingest)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(markdown)
    if not args.no_write:
        write_section("parking", "Parking (`python -m bench.parking`)", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
