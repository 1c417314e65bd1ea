"""Boston 311 hotspots: the real 2015 export through the importer and the Gi* analysis, as a map.

    .venv/bin/python -m scripts.boston_hotspots                 # scratch database onemap_boston
    DATABASE_URL=postgresql://…/other .venv/bin/python -m scripts.boston_hotspots

Into a database of its own (default `onemap_boston` on the configured server, created when missing
and left for inspection; never the main database) it migrates, imports
data/boston311/boston311_2015_city_services.csv.gz through loaders/mappings/boston311.yaml, sets
aside the cases stacked on a geocoder's placeholder point, and runs the `hotspots` analysis through
`analytics.contract.run_analysis` as an admin: hexagons of `--size` metres over the bbox of the
imported cases, the whole year. It writes docs/img/boston311_hotspots.svg (hexagons by hotspot
class, bilingual legend, north arrow, scale bar, neighbourhood names placed at the median of their
own cases), docs/data/boston311_hotspots.geojson when under 2 MB, and prints the figures quoted in
docs/CASE_ANALYTICS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from html import escape

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from libpysal.weights import Queen
from pyproj import CRS, Transformer
from shapely.geometry import shape
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from analytics.contract import run_analysis
from analytics.hotspots import CLASS_LABELS
from auth.accounts import User
from auth.roles import ROLES
from geodata.catalog import CITY_TIMEZONE
from geodata.db import make_engine, migrate
from settings import LOCAL_URL_FILE, PROJECT_ROOT, Settings

BOSTON = PROJECT_ROOT / "data" / "boston311" / "boston311_2015_city_services.csv.gz"
MAPPING = PROJECT_ROOT / "loaders" / "mappings" / "boston311.yaml"
REPORT = PROJECT_ROOT / "var" / "boston311_report.json"
SVG_OUT = PROJECT_ROOT / "docs" / "img" / "boston311_hotspots.svg"
GEOJSON_OUT = PROJECT_ROOT / "docs" / "data" / "boston311_hotspots.geojson"
SCRATCH_DB = "onemap_boston"
MAX_GEOJSON_BYTES = 2_000_000
CITY_NAME = "Boston"  # the export's neighbourhood for rows it could not place in one
PLACEHOLDER_NEIGHBOURHOODS = 5  # one point reported from this many neighbourhoods is no place
ADMIN = User(0, "boston-script", ROLES["admin"], ())
# ColorBrewer RdBu (7 classes): the usual diverging palette of hot (red) and cold (blue) spots.
# Not significant cells are grey, and white when they hold no case at all.
COLOURS = {"hot_99": "#b2182b", "hot_95": "#ef8a62", "hot_90": "#fddbc7", "ns": "#dedede",
           "empty": "#fbfbfb", "cold_90": "#d1e5f0", "cold_95": "#67a9cf",
           "cold_99": "#2166ac"}  # fmt: skip
CHINESE = {**CLASS_LABELS, "empty": "不显著，无案件"}
ENGLISH = {"hot_99": "Hot spot, 99 %", "hot_95": "Hot spot, 95 %", "hot_90": "Hot spot, 90 %",
           "ns": "Not significant", "empty": "Not significant, no case",
           "cold_90": "Cold spot, 90 %", "cold_95": "Cold spot, 95 %",
           "cold_99": "Cold spot, 99 %"}  # fmt: skip
WIDTH, MARGIN, LEGEND_W = 940, 20, 270


def target_url() -> str:
    """DATABASE_URL, or the scratch database on the configured server; never the main one."""
    main = LOCAL_URL_FILE.read_text(encoding="utf-8").strip() if LOCAL_URL_FILE.exists() else None
    url = os.environ.get("DATABASE_URL")
    if not url:  # the configured server (the project-local cluster), another database on it
        base = make_url(Settings().sqlalchemy_url())
        url = base.set(database=SCRATCH_DB).render_as_string(hide_password=False)
    target = make_url(Settings(DATABASE_URL=url).sqlalchemy_url())
    if target.database == "onemap" or (main and same_database(target, make_url(main))):
        sys.exit(f"拒绝写入主数据库 {target.database}：请用单独的数据库（默认 {SCRATCH_DB}）")
    return target.render_as_string(hide_password=False)


def same_database(a, b) -> bool:
    """Whether two URLs name the same database on the same server."""
    return (a.host, a.port or 5432, a.database) == (b.host, b.port or 5432, b.database)


def ensure_database(url: str) -> None:
    """Create the database when it does not exist yet."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"),
                              {"d": target.database}).first()  # fmt: skip
        if exists is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
            print(f"已创建数据库 {target.database}")
    admin.dispose()


def import_cases(url: str) -> dict:
    """Import the export as cases (replacing earlier ones) and return the import report."""
    REPORT.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "loaders", "import", "case", str(BOSTON), "--mapping",
               str(MAPPING), "--report", str(REPORT), "--mode", "replace"]  # fmt: skip
    done = subprocess.run(command, cwd=PROJECT_ROOT, env={**os.environ, "DATABASE_URL": url},
                          capture_output=True, text=True, check=False)  # fmt: skip
    print(done.stdout.strip())
    if done.returncode not in (0, 1):  # 1: some rows rejected, the rest loaded
        sys.exit(f"导入失败（退出码 {done.returncode}）：\n{done.stderr}")
    return json.loads(REPORT.read_text(encoding="utf-8"))


def placeholders(report: dict, rows: pd.DataFrame) -> list[dict]:
    """Stacked points reported from many neighbourhoods, with their rows, neighbourhoods and
    addresses (the other stacked points of the report are listed with `placeholder` false)."""
    found = []
    for stack in report.get("stacked_coordinates", []):
        here = rows[rows.LONGITUDE.eq(stack["lon"]) & rows.LATITUDE.eq(stack["lat"])]
        hoods = here.neighborhood.nunique()
        found.append({"lon": stack["lon"], "lat": stack["lat"], "rows": len(here),
                      "neighbourhoods": hoods,
                      "addresses": here.LOCATION_STREET_NAME.nunique(),
                      "placeholder": hoods >= PLACEHOLDER_NEIGHBOURHOODS})  # fmt: skip
    return found


def set_aside(engine: Engine, stacks: list[dict]) -> int:
    """Delete the cases on the placeholder points from this scratch database; how many."""
    removed = 0
    points = [(s["lon"], s["lat"]) for s in stacks if s["placeholder"]]
    with engine.begin() as conn:
        for lon, lat in points:
            removed += conn.execute(text(
                "DELETE FROM case_record WHERE ST_X(geom) = :lon AND ST_Y(geom) = :lat"),
                {"lon": lon, "lat": lat}).rowcount  # fmt: skip
    return removed


def extent(engine: Engine) -> tuple[str, str, str]:
    """The bbox of the cases (lon/lat text) and their first and last day on the city's clock."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), f, t FROM (SELECT "
            "ST_Extent(geom) e, min((reported_at AT TIME ZONE :tz)::date) f, "
            "max((reported_at AT TIME ZONE :tz)::date) t FROM case_record) x"),
            {"tz": CITY_TIMEZONE}).one()  # fmt: skip
    pad = 0.0005  # a case on the bbox's edge still falls inside a cell
    bbox = f"{row[0] - pad:.4f},{row[1] - pad:.4f},{row[2] + pad:.4f},{row[3] + pad:.4f}"
    return bbox, row[4].isoformat(), row[5].isoformat()


def hotspots(engine: Engine, bbox: str, start: str, stop: str, size: float) -> dict:
    """The hotspots analysis over the bbox in hexagons of `size` metres, as the API runs it."""
    params = {"cells": "hex", "size": str(size), "bbox": bbox, "from": start, "to": stop}
    with engine.connect() as conn:
        return run_analysis(conn, ADMIN, "hotspots", params)["result"]


def imported_cases(engine: Engine, rows: pd.DataFrame) -> pd.DataFrame:
    """The cases left in the database with the neighbourhood their row of the export names."""
    with engine.connect() as conn:
        cases = pd.DataFrame(conn.execute(text(
            "SELECT code, ST_X(geom) lon, ST_Y(geom) lat FROM case_record")).all(),
            columns=["code", "lon", "lat"])  # fmt: skip
    hoods = rows.assign(code=rows.CASE_ENQUIRY_ID.astype(str))[["code", "neighborhood"]]
    return cases.merge(hoods, on="code", how="left")


def cell_neighbourhoods(features: list[dict], cases: pd.DataFrame) -> list[str | None]:
    """The neighbourhood most of each cell's cases name (None for a cell without cases)."""
    cells = [shape(f["geometry"]) for f in features]
    tree = shapely.STRtree(cells)
    points = shapely.points(cases.lon.to_numpy(), cases.lat.to_numpy())
    point_i, cell_i = tree.query(points, predicate="intersects")
    names: list[Counter] = [Counter() for _ in cells]
    for p, c in zip(point_i, cell_i, strict=True):
        name = cases.neighborhood.iat[p]
        if isinstance(name, str) and name.strip():
            names[c][name] += 1
    return [n.most_common(1)[0][0] if n else None for n in names]


def hot_groups(features: list[dict]) -> list[int]:
    """Sizes of the groups of hot cells that touch (queen contiguity), largest first."""
    hot = [shape(f["geometry"]) for f in features
           if f["properties"]["hotspot_class"].startswith("hot")]  # fmt: skip
    if not hot:
        return []
    w = Queen.from_dataframe(gpd.GeoDataFrame(geometry=hot, crs=4326), use_index=False,
                             silence_warnings=True)  # fmt: skip
    return sorted((int(n) for n in np.bincount(w.component_labels)), reverse=True)


def reading(result: dict, names: list[str | None] | None = None) -> dict:
    """The figures quoted in the docs: cells per class, and hot / cold cells per neighbourhood."""
    classes = [f["properties"]["hotspot_class"] for f in result["features"]]
    names = names or [None] * len(classes)
    counts = [f["properties"]["count"] for f in result["features"]]
    tally = Counter(classes)
    significant = sum(n for c, n in tally.items() if c != "ns")
    hot = Counter(n or "（无案件）" for n, c in zip(names, classes, strict=True)
                  if c.startswith("hot"))  # fmt: skip
    cells = Counter(n for n in names if n)
    cold = Counter(n or "（无案件）" for n, c in zip(names, classes, strict=True)
                   if c.startswith("cold"))  # fmt: skip
    return {"cells": len(classes), "with_cases": sum(1 for n in counts if n > 0),
            "classes": dict(tally), "significant_share": round(significant / len(classes), 4),
            "hot_by_neighbourhood": dict(hot.most_common()),
            "cells_by_neighbourhood": dict(cells.most_common()),
            "cold_by_neighbourhood": dict(cold.most_common()),
            "max_count": max(counts), "mean_count": round(float(np.mean(counts)), 2),
            "sd_count": round(float(np.std(counts)), 2),
            "min_z": min(f["properties"]["gi_z"] for f in result["features"]),
            "hot_case_share": round(sum(n for n, c in zip(counts, classes, strict=True)
                                        if c.startswith("hot")) / max(sum(counts), 1), 4),
            "hot_groups": hot_groups(result["features"]),
            "summary": result["summary"]}  # fmt: skip


class Canvas:
    """Lon/lat → SVG pixels through the metric CRS (north up, one scale in x and y)."""

    def __init__(self, features: list[dict], srid: int):
        self.to_metric = Transformer.from_crs(4326, srid, always_xy=True).transform
        polygons = [self.metric(shape(f["geometry"])) for f in features]
        self.minx, self.miny, maxx, self.maxy = shapely.total_bounds(polygons)
        self.scale = (WIDTH - LEGEND_W - 2 * MARGIN) / (maxx - self.minx)  # px per metre
        self.height = (self.maxy - self.miny) * self.scale + 2 * MARGIN + 40
        self.polygons = polygons

    def metric(self, geom):
        """A lon/lat geometry in metres."""
        return shapely.transform(geom, lambda xy: np.column_stack(self.to_metric(*xy.T)))

    def xy(self, x: float, y: float) -> tuple[float, float]:
        """Metres → pixels."""
        return (MARGIN + (x - self.minx) * self.scale, MARGIN + 40 + (self.maxy - y) * self.scale)

    def path(self, polygon) -> str:
        """An SVG path of a polygon's outer ring."""
        points = [self.xy(x, y) for x, y in polygon.exterior.coords[:-1]]
        return "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points) + "Z"


def labels(canvas: Canvas, cases: pd.DataFrame) -> list[str]:
    """Each neighbourhood's name at the median position of its own cases (from the data)."""
    out = []
    named = cases[cases.neighborhood.notna() & (cases.neighborhood.str.strip() != "")]
    for name, group in named.groupby("neighborhood"):
        if len(group) < 200 or name == CITY_NAME:  # rare spellings; rows without a neighbourhood
            continue
        x, y = canvas.xy(*canvas.to_metric(group.lon.median(), group.lat.median()))
        short = str(name).split(" / ")[0]  # "Fenway / Kenmore / …" → "Fenway"
        out.append(f'<text x="{x:.0f}" y="{y:.0f}" class="hood">{escape(short)}</text>')
    return out


def legend(tally: Counter, x: float, y: float) -> list[str]:
    """The bilingual legend with each class's number of cells."""
    out = [f'<text x="{x}" y="{y}" class="h">图例 Legend</text>']
    for i, cls in enumerate(COLOURS):
        top = y + 14 + i * 24
        out.append(f'<rect x="{x}" y="{top}" width="18" height="16" fill="{COLOURS[cls]}" '
                   f'stroke="#999" stroke-width="0.5"/>')  # fmt: skip
        out.append(f'<text x="{x + 26}" y="{top + 8}" class="l">{CHINESE[cls]}'
                   f' {ENGLISH[cls]} ({tally.get(cls, 0)})</text>')  # fmt: skip
    return out


def north_and_scale(canvas: Canvas, x: float, y: float) -> list[str]:
    """A north arrow and a 2 km scale bar (the map is in metres, north up)."""
    bar = 2000 * canvas.scale
    return [
        f'<path d="M{x + 10},{y} l10,30 l-10,-8 l-10,8 Z" fill="#333"/>',
        f'<text x="{x + 10}" y="{y + 44}" class="l" text-anchor="middle">N 北</text>',
        f'<rect x="{x}" y="{y + 62}" width="{bar / 2:.1f}" height="5" fill="#333"/>',
        f'<rect x="{x + bar / 2:.1f}" y="{y + 62}" width="{bar / 2:.1f}" height="5" fill="#fff" '
        'stroke="#333" stroke-width="0.8"/>',
        f'<text x="{x}" y="{y + 80}" class="l">0</text>',
        f'<text x="{x + bar:.1f}" y="{y + 80}" class="l" text-anchor="middle">2 km</text>',
    ]  # fmt: skip


def colour_key(properties: dict) -> str:
    """The legend entry of a cell: its class, or `empty` for a non-significant cell without cases."""
    cls = properties["hotspot_class"]
    return "empty" if cls == "ns" and properties["count"] == 0 else cls


def draw(result: dict, cases: pd.DataFrame, size: float, srid: int) -> str:
    """The SVG map: hexagons by class, neighbourhood names, legend, north arrow, scale bar."""
    features = result["features"]
    canvas = Canvas(features, srid)
    keys = [colour_key(f["properties"]) for f in features]
    tally = Counter(keys)
    summary = result["summary"]
    body = [f'<path d="{canvas.path(p)}" fill="{COLOURS[k]}"/>'
            for p, k in zip(canvas.polygons, keys, strict=True)]  # fmt: skip
    side = WIDTH - LEGEND_W + 10
    title = (
        f"Boston 311 案件热点（Getis-Ord Gi*，FDR 校正）· Boston 311 hot spots, "
        f"{summary['from'][:4]} — {size:g} m 六边形 hexagons, {len(cases):,} 件 cases"
    )
    note = (
        "颜色：Benjamini–Hochberg 校正后的显著性 · colours: FDR-adjusted significance; "
        f"{summary['crs']} ({CRS.from_epsg(srid).name})"
    )
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{canvas.height:.0f}" '
        f'viewBox="0 0 {WIDTH} {canvas.height:.0f}" font-family="Noto Sans CJK SC, Microsoft YaHei, '
        'Helvetica, Arial, sans-serif">',
        "<style>.h{font-size:14px;font-weight:bold}.l{font-size:11px;dominant-baseline:middle}"
        ".hood{font-size:10px;fill:#222;text-anchor:middle;paint-order:stroke;stroke:#fff;"
        "stroke-width:2.5px;stroke-opacity:.8}</style>",
        f'<rect width="{WIDTH}" height="{canvas.height:.0f}" fill="#fff"/>',
        f'<text x="{MARGIN}" y="22" class="h">{escape(title)}</text>',
        f'<text x="{MARGIN}" y="40" class="l" fill="#555">{escape(note)}</text>',
        '<g stroke="#fff" stroke-width="0.3">', *body, "</g>",
        *labels(canvas, cases),
        *legend(tally, side, 70),
        *north_and_scale(canvas, side + 10, 70 + 14 + len(COLOURS) * 24 + 30),
        "</svg>",
    ])  # fmt: skip


def write_geojson(result: dict) -> int | None:
    """The result as GeoJSON under docs/data/ (coordinates to 6 decimals) if under 2 MB."""
    rounded = {"type": "FeatureCollection", "features": [
        {**f, "geometry": shapely.geometry.mapping(shapely.set_precision(shape(f["geometry"]), 1e-6))}
        for f in result["features"]]}  # fmt: skip
    data = json.dumps(rounded, ensure_ascii=False, separators=(",", ":"))
    if len(data.encode()) > MAX_GEOJSON_BYTES:
        return None
    GEOJSON_OUT.parent.mkdir(parents=True, exist_ok=True)
    GEOJSON_OUT.write_text(data, encoding="utf-8")
    return len(data.encode())


def main() -> None:
    """Import, set placeholders aside, analyse, draw; print the figures."""
    parser = argparse.ArgumentParser(description="Boston 311 (2015) Gi* hotspots → docs/img SVG")
    parser.add_argument("--size", type=float, default=300.0, help="hexagon edge in metres")
    parser.add_argument(
        "--compare", default="200,500", help="other edges to report, comma-separated"
    )
    args = parser.parse_args()
    url = target_url()
    ensure_database(url)
    engine = make_engine(url, statement_timeout_ms=600_000)
    migrate(engine)
    report = import_cases(url)
    rows = pd.read_csv(BOSTON, usecols=["CASE_ENQUIRY_ID", "neighborhood", "LOCATION_STREET_NAME",
                                        "LONGITUDE", "LATITUDE"])  # fmt: skip
    bbox, start, stop = extent(engine)
    with_placeholder = reading(hotspots(engine, bbox, start, stop, args.size))
    stacked = placeholders(report, rows)
    removed = set_aside(engine, stacked)
    bbox, start, stop = extent(engine)
    result = hotspots(engine, bbox, start, stop, args.size)
    cases = imported_cases(engine, rows)
    names = cell_neighbourhoods(result["features"], cases)
    figures = reading(result, names)
    srid = int(result["summary"]["crs"].removeprefix("EPSG:"))
    SVG_OUT.parent.mkdir(parents=True, exist_ok=True)
    SVG_OUT.write_text(draw(result, cases, args.size, srid), encoding="utf-8")
    written = write_geojson(result)
    others = {size: reading(hotspots(engine, bbox, start, stop, float(size)))
              for size in args.compare.split(",") if size}  # fmt: skip
    print(json.dumps({
        "database": make_url(url).database, "loaded": report["loaded"],
        "rejected": report["rejected"], "stacked": stacked, "set_aside": removed,
        "bbox": bbox, "window": [start, stop], "size_m": args.size, "figures": figures,
        "with_placeholder": {k: with_placeholder[k] for k in ("classes", "significant_share",
                                                              "max_count", "summary")},
        "other_sizes": {k: {"cells": v["cells"], "classes": v["classes"],
                            "significant_share": v["significant_share"],
                            "hot_groups": v["hot_groups"]} for k, v in others.items()},
        "svg": str(SVG_OUT.relative_to(PROJECT_ROOT)),
        "geojson": str(GEOJSON_OUT.relative_to(PROJECT_ROOT)) if written else None,
        "geojson_bytes": written,
    }, ensure_ascii=False, indent=2, default=str))  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    main()
