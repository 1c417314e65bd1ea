"""Case-analytics benchmark on the `large` demo: Gi* hotspots for a year, the heat map for several
windows and views, emerging hotspots over 52 weeks, recurring problems, KPIs and duplicates.

    DATABASE_URL=postgresql://…/onemap_large .venv/bin/python -m loaders demo --scale large
    DATABASE_URL=postgresql://…/onemap_large .venv/bin/python -m bench.cases

Every run bypasses the result cache (the analysis function is called through `run_analysis`
without a cache); the cell sets (cells and contiguity weights) are a process cache keyed by the cell
tables' data version (`analytics.cells.SETS`), and the table says when they were warm. Targets (issue #12): Gi* for a year
under 3 s, the heat map for any window under 1 s, emerging over 52 weeks under 10 s. Prints a
markdown table and writes it into docs/PERFORMANCE.md between the cases markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date, timedelta

from sqlalchemy import text

from analytics.case_filters import latest_case_day
from analytics.cells import SETS
from analytics.contract import run_analysis
from auth.accounts import User
from auth.roles import ROLES
from bench.common import targets_table, write_section
from bench.tiles import machine
from geodata.db import make_engine
from settings import Settings

OPERATOR = User(0, "bench", ROLES["operator"], ())
TARGETS_S = {"hotspots": 3.0, "heat": 1.0, "emerging": 10.0}


def timed(conn, analysis_id: str, params: dict, repeat: int,
          cold: bool = False) -> tuple[float, dict]:  # fmt: skip
    """Median seconds of `repeat` uncached runs (`cold`: each without the cell sets), and the last
    answer."""
    times, body = [], {}
    for _ in range(repeat):
        if cold:
            SETS.items.clear()
        began = time.perf_counter()
        body = run_analysis(conn, OPERATOR, analysis_id, params)
        times.append(time.perf_counter() - began)
    return statistics.median(times), body["result"]


def views(conn) -> list[tuple[str, str]]:
    """Heat-map views: the whole demo city, one district, one street (bbox text, label)."""
    out = []
    for label, sql in (
        ("city", "SELECT ST_Extent(geom) FROM case_record"),
        ("district", "SELECT ST_Extent(geom) FROM admin_area WHERE level = 'district' AND code = "
                     "(SELECT left(grid_code, 6) FROM case_record WHERE grid_code IS NOT NULL LIMIT 1)"),
        ("street", "SELECT ST_Extent(geom) FROM admin_area WHERE level = 'street' AND code = "
                   "(SELECT left(grid_code, 9) FROM case_record WHERE grid_code IS NOT NULL LIMIT 1)"),
    ):  # fmt: skip
        box = conn.execute(text(f"SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM ({sql}) x(b)")).one()  # fmt: skip
        out.append((",".join(f"{v:.6f}" for v in box), label))
    return out


def run(repeat: int) -> list[tuple[str, float, float | None, str]]:
    """Every case of the benchmark: (case, seconds, target, note)."""
    # the requests' 30 s statement timeout is for the web tier: the whole-city Gi* first run
    # measured for information can pass it when other work shares the cores
    engine = make_engine(Settings().sqlalchemy_url(), statement_timeout_ms=300_000)
    rows = []
    with engine.connect() as conn:
        end = latest_case_day(conn, OPERATOR)
        year = {"from": (end - timedelta(days=364)).isoformat(), "to": end.isoformat()}
        cases = conn.execute(text("SELECT count(*) FROM case_record")).scalar()
        grids = conn.execute(text("SELECT count(*) FROM unit_grid")).scalar()
        district = conn.execute(text("SELECT left(code, 6) FROM unit_grid GROUP BY 1 "
                                     "ORDER BY count(*) DESC LIMIT 1")).scalar()  # fmt: skip
        # the target's case: a district of at least 10,000 unit grids (the smallest such one)
        target_area = conn.execute(text(
            "SELECT left(code, 6) FROM unit_grid GROUP BY 1 HAVING count(*) >= 10000 "
            "ORDER BY count(*) LIMIT 1")).scalar() or district  # fmt: skip
        for label, area, target in (("a district", target_area, TARGETS_S["hotspots"]),
                                    ("the whole city", None, None)):  # fmt: skip
            params = {**year, "cells": "unit_grid", **({"area": area} if area else {})}
            secs, result = timed(conn, "hotspots", params, 1 if area is None else repeat, cold=True)
            rows.append((f"hotspots, a year, {label}, first run", secs, target,
                         "cells listed, weights built (unit grids: read from "
                         "unit_grid_neighbour), as on the first run after a start or a change to "
                         "the grids; each run without the cell sets"))  # fmt: skip
            secs, result = timed(conn, "hotspots", params, repeat)
            hot = sum(
                f["properties"]["hotspot_class"].startswith("hot") for f in result["features"]
            )
            rows.append((f"hotspots, a year, {label}, cells warm", secs, target,
                         f"{len(result['features']):,} unit grids of {area or 'all districts'} "
                         f"(of {grids:,}), {cases:,} cases in the database; {hot:,} hot cells"))  # fmt: skip
        secs, result = timed(conn, "hotspots", {**year, "cells": "hex", "size": "250",
                                                "area": district}, repeat)  # fmt: skip
        rows.append(("hotspots, a year, 250 m hexagons", secs, None,
                     f"{len(result['features']):,} hexagons over {district}"))  # fmt: skip
        worst = (0.0, "")
        for bbox, label in views(conn):
            for days in (7, 30, 365, 3650):
                window = {
                    "from": (end - timedelta(days=days - 1)).isoformat(),
                    "to": end.isoformat(),
                }
                secs, result = timed(conn, "heat", {**window, "bbox": bbox}, repeat)
                if secs >= worst[0]:
                    worst = (secs, f"{label} view, {days} days: {len(result['points']):,} points "
                                   f"for {result['total']:,} cases")  # fmt: skip
        rows.append(("heat, slowest of 3 views × 4 windows", worst[0], TARGETS_S["heat"], worst[1]))
        weeks = {"from": (end - timedelta(days=52 * 7 - 1)).isoformat(), "to": end.isoformat()}
        SETS.items.clear()
        secs, result = timed(conn, "emerging", {**weeks, "cells": "unit_grid", "area": target_area},
                             1)  # fmt: skip
        rows.append(("emerging, 52 weeks, first run", secs, TARGETS_S["emerging"],
                     f"{result['cells']:,} unit grids of {target_area} × 52 weeks; cells listed, "
                     f"weights read; {len(result['features']):,} cells with a pattern"))  # fmt: skip
        secs, result = timed(conn, "emerging", {**weeks, "cells": "unit_grid", "area": target_area},
                             repeat)  # fmt: skip
        rows.append(("emerging, 52 weeks, weights warm", secs, TARGETS_S["emerging"],
                     "the same, contiguity weights from the process cache"))  # fmt: skip
        secs, result = timed(conn, "recurring", {"to": end.isoformat(), "area": district}, repeat)
        rows.append(("recurring, 12 weeks", secs, None,
                     f"{district}: {len(result['rows'])} places recurring in ≥ 4 of 12 weeks"))  # fmt: skip
        for by in ("district", "community", "department"):
            secs, result = timed(conn, "case-kpis", {**year, "by": by}, repeat)
            rows.append((f"KPIs by {by}, a year", secs, None, f"{len(result['rows'])} rows"))
        code = conn.execute(text("SELECT code FROM case_record WHERE status NOT IN ('已结案', "
                                 "'已作废') ORDER BY reported_at DESC LIMIT 1")).scalar()  # fmt: skip
        secs, result = timed(conn, "duplicates", {"case": code}, repeat)
        rows.append(("duplicates of one case", secs, None, f"{len(result['rows'])} candidates"))
    engine.dispose()
    return rows


def table(rows) -> str:
    """The results as a markdown table."""
    load = os.getloadavg()[0]
    return targets_table(
        f"Measured {date.today():%Y-%m-%d} on {machine()} (1-minute load average "
        f"{load:.1f} at the end: other work shared the 2 cores); median of the "
        "runs; no result cache.",
        rows,
    )


def main() -> int:
    """Run, print, and record the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.cases", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    markdown = table(run(args.repeat))
    print(markdown)
    if not args.no_write:
        write_section("cases", "Case analytics (`python -m bench.cases`, large demo)", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
