"""Loading benchmark: 1,000,000 components from a GeoPackage and from a CSV into the `component`
table of a scratch database (migrated, Shandong boundaries loaded; dropped at the end), by

* ours: `python -m loaders import component FILE` (read, map, validate every row, write, and
  rebuild the component layers' stored tile counts in the same transaction);
* geopandas: `geopandas.read_file` / `pandas.read_csv` + `GeoDataFrame.to_postgis(if_exists="append")`;
* GDAL: `ogr2ogr -append` (Debian gdal-bin; skipped when `ogr2ogr` is missing).

Every method starts from an empty table (TRUNCATE) with the same indexes, constraints and
triggers, and the rows are counted afterwards. Rows/s = rows ÷ wall seconds of the whole
command (file read included).

    .venv/bin/python -m bench.loading [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import write_section
from bench.env import create_database, database_url, drop_database, machine, tool_version
from settings import PROJECT_ROOT

TARGET_NOTE = "at least as fast as to_postgis (issue #16)"
DISTRICT = "370102"  # 历下区: the components' codes and places


def inside(area, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """n seeded random points inside a polygon (rejection sampling in its bounds)."""
    x0, y0, x1, y1 = area.bounds
    xs, ys = [], []
    while sum(len(x) for x in xs) < n:
        x, y = rng.uniform(x0, x1, 2 * n), rng.uniform(y0, y1, 2 * n)
        keep = shapely.contains_xy(area, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def sample_frame(engine, rows: int, seed: int) -> gpd.GeoDataFrame:
    """`rows` valid components inside 370102 over the first 20 component classes (seeded)."""
    with engine.connect() as conn:
        classes = [r[0] for r in conn.execute(text(
            "SELECT code FROM component_class WHERE length(code) = 4 ORDER BY code LIMIT 20"))]  # fmt: skip
        wkb = conn.execute(
            text(f"SELECT ST_AsBinary(geom) FROM admin_area WHERE code = '{DISTRICT}'")
        )
        area = shapely.buffer(shapely.from_wkb(bytes(wkb.scalar())), -0.002)  # off the boundary
    shapely.prepare(area)
    rng = np.random.default_rng(seed)
    i = np.arange(rows)
    cls = np.array(classes)[i % len(classes)]
    serial = i // len(classes) + 1
    codes = np.char.add(
        np.char.add("370102", cls.astype(str)), np.char.zfill(serial.astype(str), 6)
    )
    frame = pd.DataFrame({"code": codes, "class_code": cls, "name": np.char.add("部件", i.astype(str)),
                          "department": "城管局", "owner": "历下区", "maintainer": "养护公司",
                          "status": "完好", "initial_date": "2024-01-01", "data_source": "实测"})  # fmt: skip
    lon, lat = inside(area, rows, rng)
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4490")


def write_files(frame: gpd.GeoDataFrame, folder: Path) -> dict[str, Path]:
    """The same rows as a GeoPackage (layer `components`) and a CSV with lon/lat columns."""
    gpkg, csv = folder / "components.gpkg", folder / "components.csv"
    frame.rename_geometry("geom").to_file(gpkg, layer="components", driver="GPKG", engine="pyogrio")
    plain = pd.DataFrame(frame.drop(columns="geometry"))
    plain["lon"], plain["lat"] = frame.geometry.x.round(7), frame.geometry.y.round(7)
    plain.to_csv(csv, index=False)
    return {"GeoPackage": gpkg, "CSV": csv}


def reset(engine) -> None:
    """An empty component table (and no stored counts of it)."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE component CASCADE"))


def count(engine) -> int:
    """Rows in the component table."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM component")).scalar())


def ours(url: str, path: Path) -> list[str]:
    """The command line of our importer."""
    return [sys.executable, "-m", "loaders", "import", "component", str(path)]


def to_postgis(engine, path: Path) -> None:
    """geopandas: read the file, append it with to_postgis."""
    if path.suffix == ".csv":
        df = pd.read_csv(path, dtype=str)
        frame = gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), crs="EPSG:4490",
                                 geometry=gpd.points_from_xy(df.lon.astype(float), df.lat.astype(float)))  # fmt: skip
        frame = frame.rename_geometry("geom")
    else:
        frame = gpd.read_file(path, engine="pyogrio").rename_geometry("geom")
    frame["initial_date"] = pd.to_datetime(frame["initial_date"]).dt.date
    frame.to_postgis("component", engine, if_exists="append", index=False)


def ogr2ogr(url: str, path: Path) -> list[str]:
    """GDAL's command line appending the file to the same table."""
    u = make_url(url)
    pg = (f"PG:host={u.host} port={u.port} dbname={u.database} user={u.username} "
          f"password={u.password}")  # fmt: skip
    command = ["ogr2ogr", "-f", "PostgreSQL", pg, str(path), "-append", "-nln", "component",
               "--config", "PG_USE_COPY", "YES", "-gt", "100000"]  # fmt: skip
    if path.suffix == ".csv":
        command += ["-oo", "X_POSSIBLE_NAMES=lon", "-oo", "Y_POSSIBLE_NAMES=lat",
                    "-oo", "KEEP_GEOM_COLUMNS=NO", "-a_srs", "EPSG:4490", "-nlt", "POINT"]  # fmt: skip
    return command


def timed_command(command: list[str], env: dict) -> float:
    """Wall seconds of a command (its output kept only when it fails)."""
    began = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode:
        raise RuntimeError(f"{command[0]} failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    return seconds


def measure(url: str, files: dict[str, Path], rows: int) -> list[dict]:
    """Every method on every file: seconds, rows written, rows/s."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    env = {**os.environ, "DATABASE_URL": url}
    methods = [("ours: python -m loaders import", lambda p: timed_command(ours(url, p), env)),
               ("geopandas to_postgis", lambda p: timed_fn(to_postgis, engine, p))]  # fmt: skip
    if shutil.which("ogr2ogr"):
        methods.append(("GDAL ogr2ogr", lambda p: timed_command(ogr2ogr(url, p), env)))
    out = []
    for fmt_name, path in files.items():
        for name, run in methods:
            reset(engine)
            print(f"{name} ← {fmt_name}…", flush=True)
            try:
                secs, error = run(path), None
            except Exception as exc:  # a failing reference is reported, not fatal
                secs, error = None, str(exc)[-600:]
            written = count(engine)
            out.append({"method": name, "format": fmt_name, "rows": rows, "written": written,
                        "seconds": round(secs, 2) if secs else None,
                        "rows_per_s": round(written / secs) if secs and written else None,
                        "error": error})  # fmt: skip
    engine.dispose()
    return out


def timed_fn(fn, *args) -> float:
    """Wall seconds of a call."""
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def report(results: list[dict], rows: int, args, when: datetime | None = None,
           load: float | None = None) -> str:  # fmt: skip
    """The markdown block of the loading section (`when`, `load`: of an earlier run)."""
    when = when or datetime.now().astimezone()
    load = os.getloadavg()[0] if load is None else load
    lines = [f"Measured {when:%Y-%m-%d %H:%M %Z} on {machine()}, 1-minute "
             f"load {load:.1f} at the end; {tool_version(['ogr2ogr', '--version']) or 'ogr2ogr missing: skipped'}.",
             "", f"Command: `.venv/bin/python -m bench.loading --rows {rows} --seed {args.seed}` "
             "(scratch database, dropped after).", "",
             "| file | method | rows written | seconds | rows/s | vs to_postgis |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for fmt_name in dict.fromkeys(r["format"] for r in results):
        ref = next(
            (r for r in results if r["format"] == fmt_name and "to_postgis" in r["method"]), None
        )
        for r in (r for r in results if r["format"] == fmt_name):
            if r["seconds"] is None:
                lines.append(f"| {fmt_name} | {r['method']} | {r['written']:,} | failed | — | — |")
                continue
            vs = (f"{r['rows_per_s'] / ref['rows_per_s']:.2f}×"
                  if ref and ref.get("rows_per_s") and r["rows_per_s"] else "—")  # fmt: skip
            lines.append(f"| {fmt_name} | {r['method']} | {r['written']:,} | {r['seconds']:.1f} | "
                         f"{r['rows_per_s']:,} | {vs} |")  # fmt: skip
    failed = [r for r in results if r["error"]]
    lines += ["", f"Target: {TARGET_NOTE}."]
    for fmt_name in dict.fromkeys(r["format"] for r in results):
        mine = next(
            (r for r in results if r["format"] == fmt_name and r["method"].startswith("ours")), None
        )
        ref = next(
            (r for r in results if r["format"] == fmt_name and "to_postgis" in r["method"]), None
        )
        if mine and ref and mine["rows_per_s"] and ref["rows_per_s"]:
            ratio = mine["rows_per_s"] / ref["rows_per_s"]
            lines.append(f"* {fmt_name}: {'met' if ratio >= 1 else '**not met**'} — ours "
                         f"{mine['rows_per_s']:,} rows/s, to_postgis {ref['rows_per_s']:,} rows/s "
                         f"({ratio:.2f}×).")  # fmt: skip
    lines += [f"* {r['method']} ← {r['format']} failed: `{r['error'][:300]}`" for r in failed]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Build the files and the scratch database, measure, report, drop."""
    p = argparse.ArgumentParser(prog="python -m bench.loading", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    name = f"onemap_bench_load_{secrets.token_hex(3)}"
    create_database(name)
    url = database_url(name)
    folder = Path(tempfile.mkdtemp(prefix="bench-loading-"))
    try:
        env = {**os.environ, "DATABASE_URL": url}
        for command in (["migrate"], ["boundaries"]):
            subprocess.run([sys.executable, "-m", "loaders", *command], cwd=PROJECT_ROOT, env=env,
                           check=True, capture_output=True)  # fmt: skip
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        print(f"writing {args.rows:,} components to GeoPackage and CSV…", flush=True)
        files = write_files(sample_frame(engine, args.rows, args.seed), folder)
        engine.dispose()
        results = measure(url, files, args.rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        drop_database(name)
    block = report(results, args.rows, args)
    print(block)
    if not args.no_write:
        write_section("loading", "Loading 1,000,000 components (`python -m bench.loading`)", block)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": args.rows, "results": results}, ensure_ascii=False, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
