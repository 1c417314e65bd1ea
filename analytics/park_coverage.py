"""公园绿地服务半径覆盖率: park service-radius coverage of residential land, what-if and siting.

coverage % = residential land within the service zone of qualifying parks ÷ all residential land
of the area × 100, straight-line (`euclidean`) and along the walking network (`network`, see
analytics/network.py), always both. Radii come from the rule table (analytics/coverage_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection

from analytics import coverage as cov
from analytics.contract import Analysis, Memo, Param, register
from analytics.coverage_rules import PARK_RULES, park_radius, parse_park_rules, rules_json
from analytics.network import cover
from analytics.parks import Parks, load_parks, park_rows
from auth.accounts import User
from errors import BadRequest
from geodata.versions import data_version

MODES = ("euclidean", "network")
COVERAGE_TABLES = ("admin_area", "land_parcel", "green_space", "road")


@dataclass
class Base:
    """Everything one area's run needs, kept for what-if runs on the same data."""

    area: cov.Area
    land: cov.Land
    parks: Parks
    rules: tuple
    covered: dict[str, np.ndarray]  # per mode, each residential part's covered piece


BASES = Memo(8)


def analysis_area(conn: Connection, user: User, code: str | None, drawn) -> cov.Area:
    """An administrative area by code, a polygon drawn on the map, or everything (not both)."""
    if drawn is not None:
        if code is not None:
            raise BadRequest("area 与 geometry 只能给一个")
        return cov.drawn_area(conn, user, drawn)
    return cov.load_area(conn, user, code)


def base(conn: Connection, user: User, code: str | None, rules, drawn=None) -> Base:
    """The area, its housing, its parks and their cover: computed once per data version."""
    shape = drawn.wkt if drawn is not None else None
    version = data_version(conn, COVERAGE_TABLES)
    key = (cov.database(conn), code, shape, tuple(rules), user.scope, version)
    found = BASES.get(key)
    if found is None:
        area = analysis_area(conn, user, code, drawn)
        land, parks = cov.load_land(conn, area), load_parks(conn, area, rules)
        found = Base(area, land, parks, rules,
                     cover(conn, area, land, parks.geoms, parks.radius, parks.zones()))  # fmt: skip
        BASES.put(key, found)  # the key holds the user's areas: a hit passed the same check
    return found


def park_area_in(parks: Parks, area: cov.Area) -> float:
    """Area of qualifying parks inside the area, m² (for 人均公园绿地面积)."""
    if not len(parks.geoms):
        return 0.0
    return float(shapely.area(cov.intersection(parks.geoms, area.geom)).sum())


def summary(b: Base, parks: Parks, covered: dict[str, np.ndarray], mode: str) -> dict:
    """All figures of one run: the area's totals, both modes, sub-areas and parks."""
    area, land = b.area, b.land
    figs = {m: cov.figures(land, covered[m]) for m in MODES}
    main = figs[mode]
    park_area = park_area_in(parks, area)
    rows = cov.by_area_both(area, land, covered, mode)
    return {
        "area": area.code, "area_name": area.name, "mode": mode, **main.json(),
        "park_area_m2": round(park_area, 1),
        "park_area_per_capita_m2": round(park_area / main.population, 2) if main.population else None,
        "side_by_side": {m: figs[m].json() for m in MODES},
        "by_area": rows, "parks": park_rows(parks, area, covered[mode], b.rules),
        "rules": rules_json(b.rules), "metric_crs": f"EPSG:{area.srid}",
    }  # fmt: skip


def run_coverage(conn: Connection, params: dict, user: User) -> dict:
    """Park coverage of an area (or the uncovered land as GeoJSON with format=geojson)."""
    b = base(conn, user, params["area"], parse_park_rules(params["rules"]), params["geometry"])
    if params["format"] == "geojson":
        return cov.uncovered_geojson(b.land, b.covered[params["mode"]], b.area.srid)
    return summary(b, b.parks, b.covered, params["mode"])


def candidate_park(params: dict, area: cov.Area) -> BaseGeometry:
    """The drawn park in the area's metric CRS (must have an area)."""
    geom = cov.from_lonlat(params["geometry"], area.srid)
    if geom.area < 1.0:
        raise BadRequest("拟建公园面积过小")
    return geom


def cover_with(
    conn: Connection, b: Base, park: BaseGeometry, radius: float
) -> dict[str, np.ndarray]:
    """The base cover plus what one more park covers (only the parts near it are recomputed)."""
    covered = {m: c.copy() for m, c in b.covered.items()}
    if radius <= 0:
        return covered
    zone = shapely.buffer(park, radius, quad_segs=8)
    near = shapely.STRtree(b.land.parts).query(zone, predicate="intersects")
    if not len(near):
        return covered
    sub = cov.Land(b.land.ids[near], [b.land.codes[i] for i in near], b.land.population[near],
                   b.land.parcel_area[near], b.land.parts[near])  # fmt: skip
    around = cov.Area(None, "", None, b.area.srid, zone)
    extra = cover(conn, around, sub, np.array([park], dtype=object), np.array([radius]),
                  np.array([zone], dtype=object), keep_graph=False)  # fmt: skip
    straight = cov.union_pairs(b.covered["euclidean"][near], extra["euclidean"])
    covered["euclidean"][near] = straight
    on_foot = cov.union_pairs(b.covered["network"][near], extra["network"])
    covered["network"][near] = cov.intersection(on_foot, straight)
    return covered


def newly_covered(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Land covered after but not before, per part: only the parts `cover_with` replaced (the
    others hold the very same pieces) are compared."""
    out = cov.empty(len(after))
    changed = np.flatnonzero([a is not b for a, b in zip(after, before, strict=True)])
    out[changed] = cov.difference(after[changed], before[changed])
    return out


def run_what_if(conn: Connection, params: dict, user: User) -> dict:
    """Coverage with a drawn candidate park added (nothing is written), and the gain."""
    b = base(conn, user, params["area"], parse_park_rules(params["rules"]))
    mode, historic = params["mode"], params["historic"] == "true"
    candidate = candidate_park(params, b.area)
    radius = park_radius(candidate.area, historic, b.rules)
    covered = cover_with(conn, b, candidate, radius)
    before = cov.figures(b.land, b.covered[mode])
    after = summary(b, b.parks.with_park(candidate, historic, b.rules), covered, mode)
    newly = newly_covered(covered[mode], b.covered[mode])
    gain = (after["coverage_pct"] or 0) - (before.coverage_pct or 0)
    return {**after, "gain_pct": round(gain, 2),
            "before": {k: before.json()[k] for k in ("coverage_pct", "covered_area_m2", "served_population")},
            "candidate": {"area_m2": round(candidate.area, 1), "radius_m": radius},
            "newly_covered": cov.land_geojson(b.land, newly, b.area.srid, "newly_covered_m2")}  # fmt: skip


def site_candidates(area: cov.Area, land: cov.Land, spacing: float) -> np.ndarray:
    """Grid points inside the area, off residential land (a park is built on other land)."""
    minx, miny, maxx, maxy = area.geom.bounds
    xs, ys = np.meshgrid(np.arange(minx + spacing / 2, maxx, spacing),
                         np.arange(miny + spacing / 2, maxy, spacing))  # fmt: skip
    points = shapely.points(xs.ravel(), ys.ravel())
    shapely.prepare(area.geom)
    points = points[shapely.contains(area.geom, points)]
    if len(land.parts):
        residential = cov.union_all(land.parts)
        shapely.prepare(residential)
        points = points[~shapely.intersects(residential, points)]
    return points


def greedy_sites(gaps: np.ndarray, disks: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Greedy maximal covering: k times, the disk covering most still-uncovered land, and its gain.

    Works on the uncovered pieces near each disk (pairs from a spatial index), never on one big
    union: gains are the bincount of the pairs' intersection areas.
    """
    gaps = gaps[~shapely.is_empty(gaps)]
    chosen: list[tuple[int, float]] = []
    for _ in range(k):
        if not len(gaps) or not len(disks):
            break
        disk_i, gap_i = shapely.STRtree(gaps).query(disks, predicate="intersects")
        areas = shapely.area(cov.intersection(disks[disk_i], gaps[gap_i]))
        gains = np.bincount(disk_i, weights=areas, minlength=len(disks))
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        chosen.append((best, float(gains[best])))
        gaps = cov.difference(gaps, disks[best])
        gaps = gaps[~shapely.is_empty(gaps)]
    return chosen


def run_siting(conn: Connection, params: dict, user: User) -> dict:
    """The k sites for a new park of a given size that raise coverage most (straight-line)."""
    b = base(conn, user, params["area"], parse_park_rules(params["rules"]))
    size = float(params["size_m2"])
    radius = park_radius(size, False, b.rules)
    if radius == 0:
        raise BadRequest("该面积的公园按规则不计服务半径，无法选址")
    now = cov.figures(b.land, b.covered["euclidean"])
    gaps = cov.difference(b.land.parts, b.covered["euclidean"])
    points = site_candidates(b.area, b.land, float(params["spacing_m"]))
    disks = shapely.buffer(points, (size / np.pi) ** 0.5 + radius, quad_segs=16)  # a round park
    picks = greedy_sites(gaps, disks, int(params["k"]))
    lonlat = cov.to_lonlat(points[[i for i, _ in picks]], b.area.srid) if picks else []
    total, done = now.residential_area_m2, now.covered_area_m2
    sites = []
    for rank, ((_, gain), pt) in enumerate(zip(picks, lonlat, strict=True), start=1):
        done += gain
        sites.append({"rank": rank, "lon": round(pt.x, 6), "lat": round(pt.y, 6),
                      "gain_m2": round(gain, 1), "gain_pct": round(100 * gain / total, 2) if total else None,
                      "coverage_pct_after": round(100 * done / total, 2) if total else None})  # fmt: skip
    return {"area": b.area.code, "area_name": b.area.name, "size_m2": size, "radius_m": radius,
            "coverage_pct": now.coverage_pct, "candidates": len(points), "sites": sites,
            "rules": rules_json(b.rules)}  # fmt: skip


COMMON = (
    Param("area", "区域", "area"),
    Param("mode", "可达方式", "choice", "euclidean", choices=MODES),
    Param("rules", "服务半径规则（最小面积:半径[:h]，逗号分隔）", "text",
          ",".join(r.text() for r in PARK_RULES)),
)  # fmt: skip

PARK_COVERAGE = register(Analysis(
    id="park-coverage", title="公园绿地服务半径覆盖率",
    description="居住用地中位于公园绿地服务半径内的比例，直线距离与步行路网两种口径并列。",
    output="layer",
    params=(*COMMON, Param("geometry", "分析范围（在地图上绘制的多边形，代替 area）", "geometry"),
            Param("format", "格式", "choice", "json", choices=("json", "geojson"))),
    tables=COVERAGE_TABLES, run=run_coverage, cached=True,
))  # fmt: skip

PARK_WHAT_IF = register(Analysis(
    id="park-coverage-what-if", title="拟建公园覆盖率推演",
    description="在地图上绘制拟建公园，查看覆盖率的变化与新增覆盖的居住用地；不写入数据库。",
    output="layer", params=(*COMMON, Param("geometry", "拟建公园范围", "geometry", required=True),
                            Param("historic", "位于历史地段", "choice", "false", choices=("true", "false"))),
    tables=COVERAGE_TABLES, run=run_what_if,
))  # fmt: skip

PARK_SITING = register(Analysis(
    id="park-siting", title="公园选址建议",
    description="在非居住用地的规则网格点中，用贪心最大覆盖法选出最能提高覆盖率的 k 处公园选址。",
    output="table", params=(Param("area", "区域", "area"), COMMON[2],
                            Param("k", "选址数", "int", 3, low=1, high=10),
                            Param("size_m2", "公园面积(m²)", "float", 5000, low=1000, high=200_000),
                            Param("spacing_m", "候选点间距(m)", "float", 200, low=50, high=2000)),
    tables=COVERAGE_TABLES, run=run_siting, cached=True,
))  # fmt: skip
