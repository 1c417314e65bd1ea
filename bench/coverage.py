"""Coverage benchmark on the `city` demo: one district's park coverage (both modes), a what-if,
siting, and the whole city, each computed without the result cache and timed; each row says which
of the process's caches (per-area memo, road graphs) were warm.

    .venv/bin/python -m loaders bootstrap          # the city demo in the configured database
    .venv/bin/python -m bench.coverage             # or DATABASE_URL=… for another database

Targets (issue #11): one district under 2 s, what-if under 1 s, the whole city in network mode
under 30 s. Prints a markdown table and writes it into docs/PERFORMANCE.md between the
coverage markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime

from sqlalchemy import text

from analytics.contract import run_analysis
from analytics.coverage import transformer
from analytics.network import GRAPHS
from analytics.park_coverage import BASES
from auth.accounts import User
from auth.roles import ROLES
from bench.tiles import machine
from geodata.db import make_engine
from settings import PROJECT_ROOT, Settings

START, END = "<!-- bench:coverage:start -->", "<!-- bench:coverage:end -->"
PLANNER = User(0, "bench", ROLES["planner"], ())
TARGETS_S = {"district": 2.0, "what-if": 1.0, "city-network": 30.0}


def forget(caches: str | None) -> None:
    """Empty the per-area memo ("memo"), or every process-level cache as after a start ("all")."""
    if caches in ("memo", "all"):
        BASES.items.clear()
    if caches == "all":
        GRAPHS.items.clear()
        transformer.cache_clear()


def timed(
    conn, analysis_id: str, params: dict, repeat: int, *, cold: str | None = "memo"
) -> tuple[float, dict]:
    """Median seconds over `repeat` runs (`cold` caches emptied before each), last answer."""
    times, body = [], {}
    for _ in range(repeat):
        forget(cold)
        began = time.perf_counter()
        body = run_analysis(conn, PLANNER, analysis_id, params)
        times.append(time.perf_counter() - began)
    return statistics.median(times), body


def district_with_most_housing(conn) -> str:
    """The demo district with the most residential land (the busiest case)."""
    return conn.execute(text(
        "SELECT a.code FROM admin_area a JOIN land_parcel p ON p.land_use LIKE 'R%' "
        "AND ST_Intersects(p.geom, a.geom) WHERE a.level = 'district' "
        "GROUP BY a.code ORDER BY sum(p.area_m2) DESC LIMIT 1")).scalar()  # fmt: skip


def what_if_park(conn, district: str) -> dict:
    """A 6,000 m² square park in the middle of the district's uncovered housing (GeoJSON)."""
    return conn.execute(text(
        "SELECT ST_AsGeoJSON(ST_Transform(ST_Expand(ST_Centroid(p.geom)::geography::geometry, 0.0004), "
        "4326))::json FROM land_parcel p JOIN admin_area a ON a.code = :d "
        "WHERE p.land_use LIKE 'R%' AND ST_Intersects(p.geom, a.geom) ORDER BY p.id LIMIT 1"),
        {"d": district}).scalar()  # fmt: skip


def run(repeat: int) -> list[tuple[str, float, float | None, str]]:
    """(case, seconds, target, note) for each measured case."""
    engine = make_engine(Settings().sqlalchemy_url())
    rows = []
    with engine.connect() as conn:
        parcels = conn.execute(
            text("SELECT count(*) FROM land_parcel WHERE land_use LIKE 'R%'")
        ).scalar()
        if not parcels:
            sys.exit("没有居住用地：请先加载演示城市（python -m loaders bootstrap）")
        d = district_with_most_housing(conn)
        secs, body = timed(conn, "park-coverage", {"area": d}, repeat, cold="all")
        rows.append(("district, first run after start", secs, TARGETS_S["district"],
                     "the same, every cache cold: road graph, per-area memo, transformers"))  # fmt: skip
        secs, body = timed(conn, "park-coverage", {"area": d}, repeat)
        r = body["result"]
        rows.append(("district", secs, TARGETS_S["district"],
                     f"{d}: {r['coverage_pct']}% straight, {r['side_by_side']['network']['coverage_pct']}% "
                     f"on foot; {len(r['parks'])} parks, both modes; a running server: road graph "
                     f"warm (built by any run since the last road edit), per-area memo cold"))  # fmt: skip
        rows.insert(0, rows.pop())  # the running server's figure first
        secs, _ = timed(conn, "park-coverage", {"area": d, "mode": "network"}, repeat, cold=None)
        rows.append(("district, again", secs, None, "another mode of the same area: memo warm"))
        park = what_if_park(conn, d)
        secs, body = timed(conn, "park-coverage-what-if", {"area": d, "geometry": park}, repeat,
                           cold=None)  # fmt: skip
        rows.append(("what-if", secs, TARGETS_S["what-if"],
                     f"after the area's run (the panel's case): memo warm; gain {body['result']['gain_pct']} pp"))  # fmt: skip
        secs, _ = timed(conn, "park-coverage-what-if", {"area": d, "geometry": park}, 1)
        rows.append(("what-if, cold", secs, None,
                     "a what-if as the area's first run: memo cold, road graph warm"))  # fmt: skip
        secs, body = timed(conn, "park-siting", {"area": d, "k": 3}, repeat, cold=None)
        rows.append(
            ("siting k=3", secs, None, f"{body['result']['candidates']} candidate sites, memo warm")
        )
        secs, body = timed(conn, "park-coverage", {"mode": "network"}, 1, cold="all")
        rows.append(("city-network", secs, TARGETS_S["city-network"],
                     f"whole city, {parcels:,} residential parcels, both modes; every cache cold"))  # fmt: skip
        secs, body = timed(
            conn, "service-coverage", {"kind": "toilet", "area": d}, repeat, cold="all"
        )
        rows.append(("toilets", secs, None,
                     f"{body['result']['facilities']} toilets, both modes; every cache cold"))  # fmt: skip
    engine.dispose()
    return rows


def table(rows, load: tuple[float, float]) -> str:
    """The results as a markdown table (`load`: the 1-minute load average before and after)."""
    lines = [f"Measured {datetime.now():%Y-%m-%d %H:%M} on {machine()} (1-minute load average "
             f"{load[0]:.1f} before, {load[1]:.1f} after: the CPUs are shared); median of the runs; "
             "no result cache. Process caches: the per-area memo (area, housing, parks and their "
             "cover, per data version) and the road graphs (per window and road-data version); "
             "each note says which were warm.", "",
             "| case | seconds | target | met | note |", "| --- | ---: | ---: | --- | --- |"]  # fmt: skip
    for case, secs, target, note in rows:
        met = "—" if target is None else ("yes" if secs < target else "**no**")
        lines.append(
            f"| {case} | {secs:.2f} | {'' if target is None else f'< {target:g}'} | {met} | {note} |"
        )
    return "\n".join(lines)


def write(markdown: str) -> None:
    """Replace the coverage section of docs/PERFORMANCE.md (appended the first time)."""
    path = PROJECT_ROOT / "docs" / "PERFORMANCE.md"
    doc = path.read_text(encoding="utf-8")
    block = f"{START}\n{markdown}\n{END}"
    if START in doc:
        doc = doc[: doc.index(START)] + block + doc[doc.index(END) + len(END) :]
    else:
        doc += f"\n## Coverage analyses (`python -m bench.coverage`)\n\n{block}\n"
    path.write_text(doc, encoding="utf-8")


def main() -> int:
    """Run, print, and record the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.coverage", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    before = os.getloadavg()[0]
    rows = run(args.repeat)
    markdown = table(rows, (before, os.getloadavg()[0]))
    print(markdown)
    if not args.no_write:
        write(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
