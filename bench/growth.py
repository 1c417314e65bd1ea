"""Growth: how tile p95 and analysis times grow with the data — the same tile-list procedure
(bench/sample.py, same seed and size) and the same analyses at the `small`, `city` and `large`
demos (databases onemap_small, onemap_city, onemap_large; built when missing).

    .venv/bin/python -m bench.growth [--scales small,city,large]

Per scale: the floor (the tile statement alone over one psycopg connection) and our /tiles cold
(production server, cache off, as a leader) per zoom band, and each analysis through
`run_analysis` without the result cache (one warm-up run, then the median of `--repeat`).
Writes a table into docs/PERFORMANCE.md (growth markers) and a plotly chart to docs/growth.html.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sqlalchemy import text

from analytics.case_filters import latest_case_day
from analytics.contract import run_analysis
from auth.accounts import User
from auth.roles import ROLES
from bench.common import Server, drop_user, token_session, write_section
from bench.coverage import TARGETS_S as COVERAGE_TARGETS_S
from bench.coverage import district_with_most_housing, what_if_park
from bench.env import SCALE_DATABASES, demo_database, machine, plain
from bench.parking import TARGETS_S as PARKING_TARGETS_S
from bench.sample import BANDS, band_of, busiest_district, tile_list
from bench.tiles import bench_users, fetch, floor_times, percentile, sequential, stored_paths
from geodata.db import make_engine
from settings import PROJECT_ROOT

CHART = PROJECT_ROOT / "docs" / "growth.html"
LEADER = User(0, "bench", ROLES["leader"], ())
BAND_NAMES = [f"z{low}–{high}" for low, high in BANDS]
# The earlier issues' targets that apply to a row as measured here (#11 what-if, #13 heat),
# as the suites of those issues hold them.
TARGETS_S = {"park-coverage-what-if": COVERAGE_TARGETS_S["what-if"],
             "parking-heat": PARKING_TARGETS_S["heat"]}  # fmt: skip


def analyses(conn) -> list[tuple[str, str, dict]]:
    """(label, analysis id, params) of the analyses measured at every scale."""
    end = latest_case_day(conn, LEADER)
    year = {"from": (end - timedelta(days=364)).isoformat(), "to": end.isoformat()}
    weeks = {"from": (end - timedelta(days=52 * 7 - 1)).isoformat(), "to": end.isoformat()}
    week = {"from": (end - timedelta(days=6)).isoformat(), "to": end.isoformat()}
    district = busiest_district(conn)
    box = conn.execute(text("SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
                            "(SELECT ST_Extent(geom) AS b FROM case_record) x")).one()  # fmt: skip
    bbox = ",".join(f"{v:.6f}" for v in box)
    housing = district_with_most_housing(conn)
    park = what_if_park(conn, housing)
    moment = conn.execute(text("SELECT max(observed_at) FROM parking_occupancy")).scalar()
    return [("Gi* hotspots, a year, whole city", "hotspots", {**year, "cells": "unit_grid"}),
            ("emerging hotspots, 52 weeks, busiest district", "emerging",
             {**weeks, "cells": "unit_grid", "area": district}),
            ("heat, a year, whole city", "heat", {**year, "bbox": bbox}),
            ("case KPIs by district, a year", "case-kpis", {**year, "by": "district"}),
            ("park coverage, whole city", "park-coverage", {}),
            ("park coverage what-if, district with most housing", "park-coverage-what-if",
             {"area": housing, "geometry": park}),
            ("park siting k=3, district with most housing", "park-siting", {"area": housing, "k": 3}),
            ("pipe risk, whole city", "pipe-risk", {}),
            ("parking heat, the last reading's moment", "parking-heat",
             {"at": moment.isoformat()}),
            ("parking utilisation, a week", "parking", week)]  # fmt: skip


def time_analyses(url: str, repeat: int) -> list[dict]:
    """Seconds of every analysis (median of `repeat` after a warm-up), errors reported."""
    engine = make_engine(url, statement_timeout_ms=600_000)
    out = []
    with engine.connect() as conn:
        for label, aid, params in analyses(conn):
            try:
                run_analysis(conn, LEADER, aid, params)
                times = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    run_analysis(conn, LEADER, aid, params)
                    times.append(time.perf_counter() - began)
                out.append(
                    {"analysis": label, "id": aid, "seconds": round(statistics.median(times), 3)}
                )
            except Exception as exc:  # reported in the table, the other analyses still run
                conn.rollback()
                out.append({"analysis": label, "id": aid, "seconds": None, "error": str(exc)[:300]})
    engine.dispose()
    return out


def time_tiles(url: str, seed: int, per_zoom: int) -> dict:
    """Floor and cold p50/p95 per zoom band on this scale's list."""
    engine = make_engine(url, statement_timeout_ms=300_000)
    with engine.connect() as conn:
        tiles = tile_list(conn, seed, per_zoom)
        sizes = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                 for t in ("component", "case_record", "unit_grid")}  # fmt: skip
    stored = stored_paths(engine, tiles, ())
    floor_times(url, tiles, stored)  # warms PostgreSQL's buffers
    floor = floor_times(url, tiles, stored)
    users = bench_users(engine, busiest_district_of(engine))
    try:
        with (
            Server(plain(url), ONEMAP_TILE_CACHE_MB="0") as srv,
            token_session(users["leader"][1]) as s,
        ):
            s.headers["Accept-Encoding"] = "gzip"
            fetch(s, srv.base + tiles[-1].path)
            cold = [r["ms"] for r in sequential(s, [srv.base + t.path for t in tiles])]
    finally:
        for name, _ in users.values():
            drop_user(engine, name)
        engine.dispose()
    bands = {}
    for band in BAND_NAMES:
        idx = [i for i, t in enumerate(tiles) if band_of(t.z) == band]
        bands[band] = {"tiles": len(idx),
                       "floor_p50": round(percentile([floor[i] for i in idx], 50), 2),
                       "floor_p95": round(percentile([floor[i] for i in idx], 95), 2),
                       "cold_p50": round(percentile([cold[i] for i in idx], 50), 2),
                       "cold_p95": round(percentile([cold[i] for i in idx], 95), 2),
                       "max_objects": max(tiles[i].objects for i in idx)}  # fmt: skip
    return {"sizes": sizes, "tiles": len(tiles), "bands": bands}


def busiest_district_of(engine) -> str:
    """busiest_district on a fresh connection."""
    with engine.connect() as conn:
        return busiest_district(conn)


def report(results: dict, args) -> str:
    """The growth table (one column per scale)."""
    scales = list(results)
    last = f"{scales[-1]} / {scales[-2]}" if len(scales) > 1 else None
    head = ("| measure | " + " | ".join(f"{s} ({SCALE_DATABASES[s]})" for s in scales)
            + (f" | {last} |" if last else " |"))  # fmt: skip
    lines = [f"Measured {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {machine()}, 1-minute "
             f"load {os.getloadavg()[0]:.1f} at the end.", "",
             f"Command: `.venv/bin/python -m bench.growth --scales {args.scales} --seed {args.seed} "
             f"--per-zoom {args.per_zoom} --repeat {args.repeat}`. Tile list: the procedure of "
             f"`bench/sample.py` (seed {args.seed}, {args.per_zoom} tiles per layer and zoom) drawn "
             "on each scale's own data, so each scale's densest tiles are in; floor = the tile "
             "statement alone, cold = our /tiles with the cache off (leader)"
             + (f"; the last column is the {last} ratio" if last else "")
             + ". Chart: [docs/growth.html](growth.html).", "",
             head, "| " + " | ".join(["---"] + ["---:"] * (len(scales) + bool(last))) + " |"]  # fmt: skip

    def row(label: str, values: list, fmt: str) -> str:
        """One table row: a value per scale (None: failed) and the ratio of the last two."""
        cells = ["failed" if v is None else format(v, fmt) for v in values]
        if last:
            a, b = values[-2], values[-1]
            cells.append(f"{b / a:.1f}×" if a and b is not None else "—")
        return f"| {label} | " + " | ".join(cells) + " |"

    for table in ("component", "case_record", "unit_grid"):
        lines.append(row(f"rows: {table}", [results[s]["tiles"]["sizes"][table] for s in scales],
                         ","))  # fmt: skip
    for band in BAND_NAMES:
        bands = [results[s]["tiles"]["bands"][band] for s in scales]
        lines.append(row(f"densest tile objects {band}", [b["max_objects"] for b in bands], ","))
        for key, label in (("floor_p95", "floor p95 ms"), ("cold_p95", "cold p95 ms")):
            lines.append(row(f"tiles {band} {label}", [b[key] for b in bands], ".1f"))
    for i, a in enumerate(results[scales[0]]["analyses"]):
        target = TARGETS_S.get(a["id"])
        lines.append(row(f"{a['analysis']} (s{f'; target < {target:g}' if target else ''})",
                         [results[s]["analyses"][i]["seconds"] for s in scales], ".3f"))  # fmt: skip
    return "\n".join(lines)


def chart(results: dict) -> None:
    """Tile p95 per band and analysis seconds against the number of cases, as HTML."""
    scales = list(results)
    cases = [results[s]["tiles"]["sizes"]["case_record"] for s in scales]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("瓦片 p95（冷，毫秒）", "分析耗时（秒）"))
    for band in BAND_NAMES:
        fig.add_trace(go.Scatter(x=cases, y=[results[s]["tiles"]["bands"][band]["cold_p95"] for s in scales],
                                 mode="lines+markers", name=f"tiles {band}", text=scales), 1, 1)  # fmt: skip
    for i, a in enumerate(results[scales[0]]["analyses"]):
        fig.add_trace(go.Scatter(x=cases, y=[results[s]["analyses"][i]["seconds"] for s in scales],
                                 mode="lines+markers", name=a["analysis"], text=scales), 1, 2)  # fmt: skip
    fig.update_xaxes(type="log", title_text="案件数（small / city / large）")
    fig.update_yaxes(type="log")
    fig.update_layout(title="城管一张图：随数据量增长的耗时（make bench SUITE=growth）", height=520)
    fig.write_html(CHART, include_plotlyjs="cdn", full_html=True)


def main(argv=None) -> int:
    """Measure every scale, write the table, the chart and (with --json) the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.split("\n")[0])
    p.add_argument("--scales", default="small,city,large")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-zoom", type=int, default=15)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    results = {}
    for scale in args.scales.split(","):
        url = demo_database(scale)
        print(f"{scale}: tiles…", flush=True)
        tiles = time_tiles(url, args.seed, args.per_zoom)
        print(f"{scale}: analyses…", flush=True)
        results[scale] = {"tiles": tiles, "analyses": time_analyses(url, args.repeat)}
    block = report(results, args)
    print(block)
    if not args.no_write:
        write_section("growth", "Growth: small → city → large (`python -m bench.growth`)", block)
        chart(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
