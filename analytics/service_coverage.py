"""Other facilities on the same engine: toilets, collection points, transfer stations, cameras.

Sanitation facilities serve residential land within their radius (rule table), straight-line and
on foot. Cameras (视频监控) cover road length inside their view sector: from the camera's
position, `direction_deg` as a compass bearing (0 = north, clockwise), `fov_deg` wide and
`range_m` deep (a missing direction or field of view is taken as all round; no range, no view).
"""

from __future__ import annotations

import numpy as np
import shapely
import shapely.geometry
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.contract import Analysis, Param, register
from analytics.coverage_rules import FACILITY_RULES, MAX_RADIUS_M
from analytics.network import cover, load_roads
from auth.access import find_layer
from auth.accounts import User
from geodata.catalog import SRID

KINDS = (*FACILITY_RULES, "camera")
FACILITIES = text(
    f"""
    WITH a AS (SELECT ST_GeomFromWKB(:wkb, :srid) AS g)
    SELECT ST_AsBinary(ST_Transform(f.geom, :srid)) FROM sanitation_facility f, a
    WHERE f.kind = :kind AND f.geom && ST_Transform(ST_Expand(a.g, :reach), {SRID})
    ORDER BY f.id
    """
)
CAMERAS = text(
    f"""
    WITH a AS (SELECT ST_GeomFromWKB(:wkb, :srid) AS g)
    SELECT ST_X(ST_Transform(c.geom, :srid)) x, ST_Y(ST_Transform(c.geom, :srid)) y,
           c.direction_deg, c.fov_deg, c.range_m, c.online
    FROM camera c, a WHERE c.geom && ST_Transform(ST_Expand(a.g, 500), {SRID})
    """
)


def sector(x: float, y: float, direction, fov, reach) -> shapely.Polygon:
    """A camera's view: the circular sector around `direction` (compass degrees), `fov` wide."""
    if not reach or reach <= 0:
        return shapely.Polygon()
    if direction is None or fov is None or fov >= 360:
        return shapely.Point(x, y).buffer(reach, quad_segs=16)
    steps = max(4, int(fov / 5))
    angles = np.radians(np.linspace(direction - fov / 2, direction + fov / 2, steps + 1))
    arc = np.column_stack([x + reach * np.sin(angles), y + reach * np.cos(angles)])
    return shapely.Polygon([(x, y), *arc, (x, y)])


def facility_coverage(conn: Connection, params: dict, user: User) -> dict:
    """Residential land and population within a facility kind's radius, both modes."""
    title, sanitation_kind, default_radius = FACILITY_RULES[params["kind"]]
    radius = float(params["radius_m"] or default_radius)
    area = cov.load_area(conn, user, params["area"])
    land = cov.load_land(conn, area)
    rows = conn.execute(FACILITIES, {**area.sql_params,
                                     "kind": sanitation_kind, "reach": radius}).scalars()  # fmt: skip
    points = np.array([shapely.from_wkb(bytes(g)) for g in rows], dtype=object)
    radii = np.full(len(points), radius)
    covered = cover(conn, area, land, points, radii, shapely.buffer(points, radius, quad_segs=16))
    if params["format"] == "geojson":
        return cov.uncovered_geojson(land, covered[params["mode"]], area.srid)
    figs = {m: cov.figures(land, covered[m]) for m in covered}
    by_area = cov.by_area_both(area, land, covered, params["mode"])
    return {"kind": params["kind"], "title": title, "radius_m": radius, "area": area.code,
            "area_name": area.name, "mode": params["mode"], "facilities": len(points),
            **figs[params["mode"]].json(), "side_by_side": {m: f.json() for m, f in figs.items()},
            "by_area": by_area}  # fmt: skip


def camera_coverage(conn: Connection, params: dict, user: User) -> dict:
    """Road length inside cameras' view sectors, per sub-area, and the blind road (GeoJSON)."""
    find_layer("camera", user)  # cameras are a restricted layer: same rule as everywhere
    area = cov.load_area(conn, user, params["area"])
    cams = conn.execute(CAMERAS, area.sql_params).all()
    views = cov.union_all([sector(c.x, c.y, c.direction_deg, c.fov_deg, c.range_m) for c in cams]) \
        if cams else shapely.Polygon()  # fmt: skip
    roads = cov.intersection(load_roads(conn, area, 0.0), area.geom)
    roads = roads[~shapely.is_empty(roads)]
    seen = cov.intersection(roads, views)
    if params["format"] == "geojson":
        blind = cov.to_lonlat(cov.difference(roads, views), area.srid)
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": shapely.geometry.mapping(g), "properties": {
                "blind_m": round(float(g_len), 1)}}
            for g, g_len in zip(blind, shapely.length(cov.difference(roads, views)), strict=True)
            if g_len > 0.5]}  # fmt: skip
    rows = []
    for code, name, geom in area.children:
        total = float(shapely.length(cov.intersection(roads, geom)).sum())
        covered = float(shapely.length(cov.intersection(seen, geom)).sum())
        rows.append({"code": code, "name": name, "road_length_m": round(total, 1),
                     "covered_length_m": round(covered, 1),
                     "coverage_pct": round(100 * covered / total, 2) if total else None})  # fmt: skip
    total, covered = float(shapely.length(roads).sum()), float(shapely.length(seen).sum())
    return {"kind": "camera", "title": "视频监控道路覆盖", "area": area.code, "area_name": area.name,
            "cameras": len(cams), "online": sum(1 for c in cams if c.online),
            "road_length_m": round(total, 1), "covered_length_m": round(covered, 1),
            "coverage_pct": round(100 * covered / total, 2) if total else None, "by_area": rows}  # fmt: skip


def run(conn: Connection, params: dict, user: User) -> dict:
    """Coverage of one facility kind."""
    if params["kind"] == "camera":
        return camera_coverage(conn, params, user)
    return facility_coverage(conn, params, user)


SERVICE_COVERAGE = register(Analysis(
    id="service-coverage", title="设施服务覆盖",
    description="公厕、垃圾收集点、垃圾中转站的服务半径覆盖（居住用地与人口），以及视频监控的道路覆盖。",
    output="layer",
    params=(Param("kind", "设施", "choice", "toilet", choices=KINDS), Param("area", "区域", "area"),
            Param("mode", "可达方式", "choice", "euclidean", choices=("euclidean", "network")),
            Param("radius_m", "服务半径(m)（空为规则表默认值）", "float", None, low=10, high=MAX_RADIUS_M),
            Param("format", "格式", "choice", "json", choices=("json", "geojson"))),
    tables=("admin_area", "land_parcel", "sanitation_facility", "camera", "road"), run=run, cached=True,
))  # fmt: skip
