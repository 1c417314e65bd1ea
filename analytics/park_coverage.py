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
from analytics.contract import Analysis, Param, register
from analytics.coverage_rules import PARK_RULES, park_radius, parse_park_rules, rules_json
from analytics.network import network_zone
from analytics.parks import Parks, euclidean_zone, load_parks, park_rows
from auth.accounts import User
from errors import BadRequest

MODES = ("euclidean", "network")
COVERAGE_TABLES = ("admin_area", "land_parcel", "green_space", "road")


@dataclass
class Zones:
    """The service zones of a set of parks, straight-line and on foot."""

    euclidean: BaseGeometry
    network: BaseGeometry

    def of(self, mode: str) -> BaseGeometry:
        """The zone of one mode."""
        return self.network if mode == "network" else self.euclidean


def zones(conn: Connection, area: cov.Area, parks: Parks) -> Zones:
    """Both zones of the parks."""
    straight = euclidean_zone(parks)
    return Zones(straight, network_zone(conn, area, parks.geoms, parks.radius, straight))


def park_area_in(parks: Parks, area: cov.Area) -> float:
    """Area of qualifying parks inside the area, m² (for 人均公园绿地面积)."""
    return (
        float(shapely.area(cov.intersection(parks.geoms, area.geom)).sum())
        if len(parks.geoms)
        else 0.0
    )


def summary(conn: Connection, area: cov.Area, land: cov.Land, parks: Parks, mode: str,
            rules) -> dict:  # fmt: skip
    """All figures of one run: the area's totals, both modes, sub-areas and parks."""
    z = zones(conn, area, parks)
    covered = {m: cov.covered_parts(land, z.of(m)) for m in MODES}
    figs = {m: cov.figures(land, covered[m]) for m in MODES}
    main = figs[mode]
    park_area = park_area_in(parks, area)
    per_area = {m: cov.by_area(area, land, covered[m]) for m in MODES}
    rows = []
    for main_row, e_row, n_row in zip(per_area[mode], per_area["euclidean"], per_area["network"],
                                      strict=True):  # fmt: skip
        rows.append({**main_row, "coverage_pct_euclidean": e_row["coverage_pct"],
                     "coverage_pct_network": n_row["coverage_pct"]})  # fmt: skip
    land_union = cov.union_all(land.parts) if len(land.parts) else shapely.Polygon()
    park_zones = parks.zones() if mode == "euclidean" else np.array(
        [cov.intersection(zn, z.network) for zn in parks.zones()], dtype=object)  # fmt: skip
    return {
        "area": area.code, "area_name": area.name, "mode": mode, **main.json(),
        "park_area_m2": round(park_area, 1),
        "park_area_per_capita_m2": round(park_area / main.population, 2) if main.population else None,
        "side_by_side": {m: figs[m].json() for m in MODES},
        "by_area": rows, "parks": park_rows(parks, area, land_union, park_zones, rules),
        "rules": rules_json(rules), "metric_crs": f"EPSG:{area.srid}",
    }  # fmt: skip


def run_coverage(conn: Connection, params: dict, user: User) -> dict:
    """Park coverage of an area (or the uncovered land as GeoJSON with format=geojson)."""
    rules = parse_park_rules(params["rules"])
    area = cov.load_area(conn, user, params["area"])
    land, parks = cov.load_land(conn, area), load_parks(conn, area, rules)
    if params["format"] == "geojson":
        z = zones(conn, area, parks)
        return cov.uncovered_geojson(land, cov.covered_parts(land, z.of(params["mode"])), area.srid)
    return summary(conn, area, land, parks, params["mode"], rules)


def candidate_park(params: dict, area: cov.Area) -> BaseGeometry:
    """The drawn park in the area's metric CRS (must have an area)."""
    geom = cov.from_lonlat(params["geometry"], area.srid)
    if geom.area < 1.0:
        raise BadRequest("拟建公园面积过小")
    return geom


def run_what_if(conn: Connection, params: dict, user: User) -> dict:
    """Coverage with a drawn candidate park added (nothing is written), and the gain."""
    rules = parse_park_rules(params["rules"])
    area = cov.load_area(conn, user, params["area"])
    land, parks = cov.load_land(conn, area), load_parks(conn, area, rules)
    before = summary(conn, area, land, parks, params["mode"], rules)
    candidate = candidate_park(params, area)
    more = parks.with_park(candidate, params["historic"] == "true", rules)
    after = summary(conn, area, land, more, params["mode"], rules)
    z_before, z_after = (zones(conn, area, p).of(params["mode"]) for p in (parks, more))
    newly = cov.difference(cov.covered_parts(land, z_after), cov.covered_parts(land, z_before))
    gain = (after["coverage_pct"] or 0) - (before["coverage_pct"] or 0)
    return {**after, "gain_pct": round(gain, 2),
            "before": {k: before[k] for k in ("coverage_pct", "covered_area_m2", "served_population")},
            "candidate": {"area_m2": round(candidate.area, 1),
                          "radius_m": park_radius(candidate.area, params["historic"] == "true", rules)},
            "newly_covered": cov.land_geojson(land, newly, area.srid, "newly_covered_m2")}  # fmt: skip


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


def greedy_sites(uncovered: BaseGeometry, disks: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Greedy maximal covering: k times, the disk covering most still-uncovered land, and its gain."""
    chosen = []
    for _ in range(k):
        if uncovered.is_empty:
            break
        shapely.prepare(uncovered)
        gains = np.where(shapely.intersects(uncovered, disks),
                         shapely.area(cov.intersection(disks, uncovered)), 0.0)  # fmt: skip
        best = int(np.argmax(gains)) if len(gains) else 0
        if not len(gains) or gains[best] <= 0:
            break
        chosen.append((best, float(gains[best])))
        uncovered = cov.difference(uncovered, disks[best])
    return chosen


def run_siting(conn: Connection, params: dict, user: User) -> dict:
    """The k sites for a new park of a given size that raise coverage most (straight-line)."""
    rules = parse_park_rules(params["rules"])
    area = cov.load_area(conn, user, params["area"])
    land, parks = cov.load_land(conn, area), load_parks(conn, area, rules)
    size = float(params["size_m2"])
    radius = park_radius(size, False, rules)
    if radius == 0:
        raise BadRequest("该面积的公园按规则不计服务半径，无法选址")
    covered = cov.covered_parts(land, euclidean_zone(parks))
    base = cov.figures(land, covered)
    uncovered = (
        cov.union_all(cov.difference(land.parts, covered)) if len(land.parts) else shapely.Polygon()
    )
    points = site_candidates(area, land, float(params["spacing_m"]))
    park_radius_m = (size / np.pi) ** 0.5  # a round park of that size
    disks = shapely.buffer(points, park_radius_m + radius, quad_segs=16)
    picks = greedy_sites(uncovered, disks, int(params["k"]))
    lonlat = cov.to_lonlat(points[[i for i, _ in picks]], area.srid) if picks else []
    total = base.residential_area_m2
    sites, cumulative = [], base.covered_area_m2
    for rank, ((_, gain), pt) in enumerate(zip(picks, lonlat, strict=True), start=1):
        cumulative += gain
        sites.append({"rank": rank, "lon": round(pt.x, 6), "lat": round(pt.y, 6),
                      "gain_m2": round(gain, 1), "gain_pct": round(100 * gain / total, 2) if total else None,
                      "coverage_pct_after": round(100 * cumulative / total, 2) if total else None})  # fmt: skip
    return {"area": area.code, "area_name": area.name, "size_m2": size, "radius_m": radius,
            "coverage_pct": base.coverage_pct, "candidates": len(points), "sites": sites,
            "rules": rules_json(rules)}  # fmt: skip


COMMON = (
    Param("area", "区域", "area"),
    Param("mode", "可达方式", "choice", "euclidean", choices=MODES),
    Param("rules", "服务半径规则（最小面积:半径[:h]，逗号分隔）", "text",
          ",".join(r.text() for r in PARK_RULES)),
)  # fmt: skip

PARK_COVERAGE = register(Analysis(
    id="park-coverage", title="公园绿地服务半径覆盖率",
    description="居住用地中位于公园绿地服务半径内的比例，直线距离与步行路网两种口径并列。",
    output="layer", params=(*COMMON, Param("format", "格式", "choice", "json", choices=("json", "geojson"))),
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
