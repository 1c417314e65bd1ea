"""Tile benchmark: a fixed seeded tile list, z10–z17, against the real gunicorn server.

    DATABASE_URL=postgresql://…/onemap_large .venv/bin/python -m bench.tiles

Creates one throw-away user (role leader) with an API token, sent as `Authorization: Bearer …`
on every request, and deletes it at the end. Starts `python app.py` (gunicorn) itself on a free
127.0.0.1 port, three times: cold (ONEMAP_TILE_CACHE_MB=0, so every request is rendered by
PostGIS), cached (one worker, so the second request of a tile hits the same in-process cache)
and throughput (8 client threads, bounded by time and count, cache off and warm cache). The bare
tile SQL (the same statement the server runs: stored counts or the live ST_AsMVT query) is timed
directly from Python for the ratio.
Prints a markdown table and writes it into docs/PERFORMANCE.md between the bench markers.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import random
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

from bench.common import Server, bench_user, drop_user, token_session
from bench.queries import grid_centres, table_sizes
from geodata.db import make_engine
from layers.aggregates import aggregate_zooms, is_current, render_aggregate_tile
from layers.registry import REGISTRY
from layers.sql import data_version, render_tile
from settings import PROJECT_ROOT, Settings

ZOOMS = range(10, 18)
BENCH_LAYERS = (
    "component_01", "component_02", "component_04", "component_06", "case", "unit_grid", "road",
    "geocode", "parking", "green_space", "sanitation", "drain_pipe", "community",
)  # fmt: skip
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
OUT = PROJECT_ROOT / "docs" / "PERFORMANCE.md"


@dataclass(frozen=True)
class TileAddr:
    """One tile request of the fixed list."""

    layer: str
    z: int
    x: int
    y: int

    @property
    def path(self) -> str:
        """The URL path of the tile."""
        return f"/tiles/{self.layer}/{self.z}/{self.x}/{self.y}.pbf"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """XYZ tile containing a lon/lat point."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def tile_list(centres: list[tuple[float, float]], seed: int, per_zoom: int) -> list[TileAddr]:
    """`per_zoom` tiles per layer and zoom around seeded unit-grid points (the city extent)."""
    rng = random.Random(seed)
    tiles = []
    for z in ZOOMS:
        for layer in BENCH_LAYERS:
            if REGISTRY[layer].min_zoom <= z <= REGISTRY[layer].max_zoom:
                tiles += [TileAddr(layer, z, *tile_of(*rng.choice(centres), z))
                          for _ in range(per_zoom)]  # fmt: skip
    return tiles


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (ms lists are small)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def warm_up(base: str, session: requests.Session, n: int = 40) -> None:
    """Open the database pools of every worker (an empty tile far from the city)."""
    for _ in range(n):
        session.get(base + "/tiles/road/10/0/0.pbf", timeout=60)


def timed_get(session: requests.Session, url: str) -> float:
    """Milliseconds for one GET (body read); raises on an unexpected status."""
    began = time.perf_counter()
    resp = session.get(url, timeout=60)
    elapsed = (time.perf_counter() - began) * 1000
    if resp.status_code not in (200, 204):
        raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:200]}")
    return elapsed


def bare_times(engine, tiles: list[TileAddr]) -> tuple[list[float], list[str]]:
    """Milliseconds of the tile SQL the server would run, executed directly, and its path."""
    times, paths = [], []
    with engine.connect() as conn:
        versions = {}
        for t in tiles:
            layer = REGISTRY[t.layer]
            if t.layer not in versions:
                versions[t.layer] = is_current(conn, layer, data_version(conn, layer))
            stored = t.z in aggregate_zooms(layer) and versions[t.layer]
            render = render_aggregate_tile if stored else render_tile
            args = (conn, layer, t.z, t.x, t.y) if stored else (conn, layer, t.z, t.x, t.y, [])
            began = time.perf_counter()
            render(*args)
            times.append((time.perf_counter() - began) * 1000)
            paths.append("stored" if stored else "live")
            conn.rollback()
    return times, paths


def load(base: str, token: str, tiles: list[TileAddr], clients: int, seconds: float,
         limit: int) -> dict:  # fmt: skip
    """Requests per second with `clients` threads cycling through the list (bounded)."""
    source, lock = itertools.cycle(tiles), threading.Lock()
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds

    def client() -> None:
        with token_session(token) as session:
            while time.monotonic() < deadline:
                with lock:
                    if len(latencies) + errors[0] >= limit:
                        return
                    t = next(source)
                try:
                    ms = timed_get(session, base + t.path)
                except (RuntimeError, requests.RequestException):
                    with lock:
                        errors[0] += 1
                    continue
                with lock:
                    latencies.append(ms)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - began
    return {"requests": len(latencies), "errors": errors[0], "seconds": elapsed,
            "rps": len(latencies) / elapsed, "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95)}  # fmt: skip


def machine() -> str:
    """nproc, RAM and CPU model of this machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))  # fmt: skip
    return f"{os.cpu_count()} CPUs ({cpu}), {mem / 1024**2:.1f} GiB RAM, Python {platform.python_version()}"


def zoom_rows(tiles, cold, bare, paths, cached) -> list[str]:
    """One markdown row per zoom plus the total."""
    groups = defaultdict(list)
    for i, t in enumerate(tiles):
        groups[t.z].append(i)
    groups["all"] = list(range(len(tiles)))
    rows = []
    for z, idx in groups.items():
        c = [cold[i] for i in idx]
        b = [bare[i] for i in idx]
        h = [cached[i] for i in idx]
        stored = sum(paths[i] == "stored" for i in idx)
        rows.append(f"| {z} | {len(idx)} | {stored} | {percentile(c, 50):.1f} | "
                    f"{percentile(c, 95):.1f} | {max(c):.1f} | {percentile(b, 50):.1f} | "
                    f"{percentile(c, 50) / percentile(b, 50):.2f} | {percentile(h, 50):.2f} | "
                    f"{percentile(h, 95):.2f} |")  # fmt: skip
    return rows


def report(args, tiles, cold, bare, paths, cached, loads, sizes) -> str:
    """The markdown block written to docs/PERFORMANCE.md."""
    head = ["| z | tiles | from stored counts | cold p50 ms | cold p95 ms | cold max ms | "
            "bare SQL p50 ms | cold p50 / bare p50 | cached p50 ms | cached p95 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    load_rows = ["| run | clients | requests | errors | seconds | req/s | p50 ms | p95 ms |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, r in loads.items():
        load_rows.append(f"| {name} | {args.clients} | {r['requests']} | {r['errors']} | "
                         f"{r['seconds']:.1f} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} |")  # fmt: skip
    size_line = ", ".join(f"{t} {n:,}" for t, n in sizes.items())
    return "\n".join([
        f"Measured {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {machine()}.",
        "",
        f"Command: `DATABASE_URL=postgresql://…/{args.database} .venv/bin/python -m bench.tiles "
        f"--seed {args.seed} --per-zoom {args.per_zoom} --clients {args.clients} "
        f"--seconds {args.seconds:g}`",
        "",
        f"Data: {size_line}.",
        "",
        f"Tiles: {len(tiles)} requests ({args.per_zoom} per layer and zoom, seed {args.seed}) over "
        f"{', '.join(BENCH_LAYERS)}, z{ZOOMS[0]}–z{ZOOMS[-1]} (a layer only from its min zoom).",
        "",
        *head, *zoom_rows(tiles, cold, bare, paths, cached), "",
        "Throughput (2 gunicorn workers × 4 threads, tiles cycled from the same list):", "",
        *load_rows,
    ])  # fmt: skip


def write_report(block: str) -> None:
    """Replace the bench block of docs/PERFORMANCE.md (or create the file with it)."""
    text = OUT.read_text("utf-8") if OUT.exists() else f"# Performance\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    OUT.write_text(f"{before}{START}\n{block}\n{END}{after}", "utf-8")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.tiles", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-zoom", type=int, default=6, help="tiles per layer and zoom")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0, help="time bound per throughput run")
    p.add_argument("--max-requests", type=int, default=20_000, help="count bound per run")
    p.add_argument("--no-write", action="store_true", help="print only")
    return p.parse_args()


def measure(args, plain_url: str, engine, tiles: list[TileAddr], token: str) -> tuple:
    """Cold, throughput, bare SQL and cached passes against three server runs."""
    with Server(plain_url, ONEMAP_TILE_CACHE_MB="0") as srv, token_session(token) as s:
        warm_up(srv.base, s)
        print("cold pass…", flush=True)
        cold = [timed_get(s, srv.base + t.path) for t in tiles]
        print("throughput, cache off…", flush=True)
        loads = {"cache off (every tile rendered)": load(srv.base, token, tiles, args.clients,
                                                         args.seconds, args.max_requests)}  # fmt: skip
    print("bare SQL pass…", flush=True)
    bare, paths = bare_times(engine, tiles)
    with Server(plain_url, ONEMAP_WORKERS="1") as srv, token_session(token) as s:
        warm_up(srv.base, s, 5)
        print("cached pass…", flush=True)
        cached = []
        for t in tiles:
            timed_get(s, srv.base + t.path)
            cached.append(timed_get(s, srv.base + t.path))
    with Server(plain_url) as srv, token_session(token) as s:
        warm_up(srv.base, s)
        for t in tiles + tiles:  # both workers see every tile
            timed_get(s, srv.base + t.path)
        print("throughput, warm cache…", flush=True)
        loads["warm cache"] = load(srv.base, token, tiles, args.clients, args.seconds,
                                   args.max_requests)  # fmt: skip
    return cold, bare, paths, cached, loads


def main() -> int:
    """Run the benchmark and print (and write) the report."""
    args = parse_args()
    url = Settings().sqlalchemy_url()
    engine = make_engine(url, statement_timeout_ms=120_000)
    args.database = engine.url.database
    plain_url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    with engine.connect() as conn:
        tiles = tile_list(grid_centres(conn), args.seed, args.per_zoom)
        sizes = table_sizes(conn)
    print(f"{len(tiles)} tiles; warming PostgreSQL with the bare queries…", flush=True)
    bare_times(engine, tiles)
    user = bench_user(engine, with_token=True)
    try:
        cold, bare, paths, cached, loads = measure(args, plain_url, engine, tiles, user.token)
    finally:
        drop_user(engine, user.name)
        engine.dispose()
    block = report(args, tiles, cold, bare, paths, cached, loads, sizes)
    print(block)
    if not args.no_write:
        write_report(block)
        print(f"\nwritten to {OUT.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
