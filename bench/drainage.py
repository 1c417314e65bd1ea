"""Drainage benchmark on the `large` demo: traces, the upstream catchment, quality checks, pipe risk.

    DATABASE_URL=postgresql://…/onemap_large .venv/bin/python -m bench.drainage

Every run bypasses the result cache (`run_analysis` without a cache). Targets (issue #14): a
downstream trace under 200 ms, an upstream trace from the outfall of the biggest catchment under
2 s, pipe risk for the whole city under 5 s. Prints a markdown table and writes it into
docs/PERFORMANCE.md between the drainage markers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

from sqlalchemy import text

from analytics.contract import run_analysis
from analytics.drainage import outfall_wells
from auth.accounts import User
from auth.roles import ROLES
from bench.common import targets_table, write_section
from bench.tiles import machine
from geodata.db import make_engine
from settings import Settings

OPERATOR = User(0, "bench", ROLES["operator"], ())
TARGETS_S = {"down": 0.2, "up": 2.0, "risk": 5.0}
LONGEST_DOWN = text(
    """
    WITH RECURSIVE d(well, n) AS (
        SELECT w.code, 0 FROM drain_well w WHERE w.code = ANY(:outfall_wells)
      UNION ALL
        SELECT p.from_well, d.n + 1 FROM d JOIN drain_pipe p ON p.to_well = d.well
        WHERE d.n < 10000
    )
    SELECT well FROM d ORDER BY n DESC, well LIMIT 1
    """
)


def timed(conn, analysis_id: str, params: dict, repeat: int) -> tuple[float, dict]:
    """Median seconds of `repeat` uncached runs (after one warm-up run), and the last answer."""
    run_analysis(conn, OPERATOR, analysis_id, params)
    times, body = [], {}
    for _ in range(repeat):
        began = time.perf_counter()
        body = run_analysis(conn, OPERATOR, analysis_id, params)
        times.append(time.perf_counter() - began)
    return statistics.median(times), body["result"]


def biggest_outfall(conn) -> tuple[str, int]:
    """The outfall well with the most pipes upstream, and that count."""
    best = ("", -1)
    for o in outfall_wells(conn, None):
        n = len(run_analysis(conn, OPERATOR, "drain-trace", {"from": o["well"], "direction": "up"})
                ["result"]["features"])  # fmt: skip
        best = max(best, (o["well"], n), key=lambda b: b[1])
    return best


def run(repeat: int) -> list[tuple[str, float, float | None, str]]:
    """Every case of the benchmark: (case, seconds, target, note)."""
    engine = make_engine(Settings().sqlalchemy_url())
    rows = []
    with engine.connect() as conn:
        pipes = conn.execute(text("SELECT count(*) FROM drain_pipe")).scalar()
        outfalls = [o["well"] for o in outfall_wells(conn, None)]
        far = conn.execute(LONGEST_DOWN, {"outfall_wells": outfalls}).scalar()
        secs, r = timed(conn, "drain-trace", {"from": far, "direction": "down"}, repeat)
        s = r["summary"]
        rows.append(("trace down from the farthest well", secs, TARGETS_S["down"],
                     f"{s['pipes']} pipes, {s['length_m'] / 1000:.1f} km to "
                     f"{', '.join(c or '?' for c in s['outfalls'])}"))  # fmt: skip
        well, _ = biggest_outfall(conn)
        secs, r = timed(conn, "drain-trace", {"from": well, "direction": "up"}, repeat)
        s = r["summary"]
        rows.append(("trace up from the outfall of the biggest catchment", secs, TARGETS_S["up"],
                     f"{s['pipes']:,} of {pipes:,} pipes, {s['wells']:,} wells, "
                     f"{s['length_m'] / 1000:.1f} km"))  # fmt: skip
        secs, r = timed(conn, "drain-catchment", {"at": well}, repeat)
        rows.append(("catchment of that outfall", secs, None,
                     f"{r['parcels']:,} parcels ({r['population']:,} people), "
                     f"{r['grids']:,} unit grids"))  # fmt: skip
        secs, r = timed(conn, "drain-quality", {}, repeat)
        rows.append(("quality checks, whole city", secs, None,
                     f"{r['pipes_checked']:,} pipes, {r['issues']} issues"))  # fmt: skip
        secs, r = timed(conn, "pipe-risk", {}, repeat)
        rows.append(("pipe risk, whole city", secs, TARGETS_S["risk"],
                     f"{r['pipes']:,} pipes scored, window to {r['to']}: "
                     f"高 {r['level_高']}, 中 {r['level_中']}, 低 {r['level_低']}"))  # fmt: skip
        secs, r = timed(conn, "pipe-risk", {"top": "100000", "format": "geojson"}, 1)
        rows.append(("pipe risk, whole city as a GeoJSON layer", secs, None,
                     f"{len(r['features']):,} line features"))  # fmt: skip
    engine.dispose()
    return rows


def table(rows) -> str:
    """The results as a markdown table."""
    return targets_table(
        f"Measured {date.today():%Y-%m-%d} on {machine()}; median of the runs "
        "after a warm-up; no result cache.",
        rows,
        digits=3,
    )


def main() -> int:
    """Run, print, and record the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.drainage", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    markdown = table(run(args.repeat))
    print(markdown)
    if not args.no_write:
        write_section("drainage", "Drainage (`python -m bench.drainage`, large demo)", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
