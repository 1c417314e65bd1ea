"""Video linkage benchmark on the large demo: the cameras that see a point (issue #14).

    DATABASE_URL=…/onemap_large .venv/bin/python -m bench.alarms

Two point sets: points placed inside a camera's view (half its range along its direction, so
each is seen by at least one camera) and the centres of unit grids (most seen by none). Each point
is timed through `analytics.cameras.seeing` (the query and the sector test) and through
`cameras_seeing` as the API runs it (parameters, role, audit entry), the latter inside a
transaction that is rolled back, so the benchmark writes nothing. Target: under 50 ms a point.
Prints a markdown table and writes it into docs/PERFORMANCE.md between the alarms markers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime

from sqlalchemy import text

from analytics.cameras import cameras_seeing, seeing
from auth.accounts import User
from auth.roles import ROLES
from bench.common import write_section
from bench.tiles import machine
from geodata.db import make_engine
from settings import Settings

OPERATOR = User(0, "bench", ROLES["operator"], ())
TARGET_MS = 50.0
IN_VIEW = text(
    "SELECT ST_X(p), ST_Y(p) FROM (SELECT id, ST_Project(geom::geography, range_m / 2, "
    "radians(coalesce(direction_deg, 0)))::geometry p FROM camera WHERE range_m > 0 "
    "ORDER BY id) c WHERE c.id % :step = 0 LIMIT :n"
)
GRID_CENTRES = text(
    "SELECT ST_X(p), ST_Y(p) FROM (SELECT id, ST_PointOnSurface(geom) p FROM unit_grid "
    "ORDER BY id) g WHERE g.id % :step = 0 LIMIT :n"
)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(call, points) -> tuple[list[float], list[int]]:
    """Milliseconds per point and the number of cameras found for each."""
    times, found = [], []
    for lon, lat in points:
        began = time.perf_counter()
        n = call(lon, lat)
        times.append(1000 * (time.perf_counter() - began))
        found.append(n)
    return times, found


def row(case: str, times: list[float], found: list[int]) -> str:
    """One markdown table row."""
    seen = sum(1 for n in found if n)
    return (f"| {case} | {len(times)} | {seen} | {statistics.median(times):.1f} | "
            f"{percentile(times, 0.95):.1f} | {max(times):.1f} | "
            f"{'✓' if percentile(times, 0.95) < TARGET_MS else '✗'} |")  # fmt: skip


def run(n: int) -> str:
    """Measure both point sets both ways; the markdown section."""
    engine = make_engine(Settings().sqlalchemy_url())
    lines = []
    with engine.connect() as conn:
        cams = conn.execute(text("SELECT count(*) FROM camera")).scalar()
        grids = conn.execute(text("SELECT count(*) FROM unit_grid")).scalar()
        cases = conn.execute(text("SELECT count(*) FROM case_record")).scalar()
        sets = {
            "in a camera's view": conn.execute(IN_VIEW, {"step": max(1, cams // n), "n": n}).all(),
            "unit grid centres": conn.execute(GRID_CENTRES, {"step": max(1, grids // n), "n": n}).all(),
        }  # fmt: skip
        seeing(conn, *sets["unit grid centres"][0])  # warm the connection and the plan cache
        for name, points in sets.items():
            lines.append(
                row(f"query, {name}", *timed(lambda x, y: len(seeing(conn, x, y)), points))
            )
        conn.rollback()  # end the read transaction begun above
        for name, points in sets.items():
            with conn.begin() as tx:  # the audit entries are rolled back: nothing is written
                api = lambda x, y: cameras_seeing(conn, OPERATOR, x, y, ip="bench")["count"]  # noqa: E731
                lines.append(row(f"API function, {name}", *timed(api, points)))
                tx.rollback()
    engine.dispose()
    header = (
        f"Measured {datetime.now():%Y-%m-%d %H:%M} on {machine()}: {cases:,} cases, {cams:,} "
        f"cameras, {grids:,} unit grids. Target: under {TARGET_MS:.0f} ms a point (p95).\n\n"
        "| case | points | seen by ≥1 camera | median ms | p95 ms | max ms | target |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | :---: |"
    )
    return header + "\n" + "\n".join(lines)


def main() -> None:
    """Run, print and write the section."""
    parser = argparse.ArgumentParser(description="Cameras-seeing benchmark")
    parser.add_argument("--points", type=int, default=300, help="points per set")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    markdown = run(args.points)
    print(markdown)
    if not args.no_write:
        write_section(
            "alarms", "Alarms and cameras (`python -m bench.alarms`, large demo)", markdown
        )


if __name__ == "__main__":
    main()
