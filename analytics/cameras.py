"""Video linkage (视频联动): the cameras that see a point, and everything known about the place.

A camera sees a point when the point lies inside its view sector, the same geometry as the camera
road coverage (`analytics.service_coverage.sector`): from the camera's position, `direction_deg`
as a compass bearing (0 = north, clockwise), `fov_deg` wide and `range_m` deep; a missing direction
or field of view is all round, no range is no view. The sector is drawn in the metric CRS of the
point (`analytics.coverage.metric_epsg`, a CGCS2000 Gauss-Krüger zone), as the coverage draws it.

The SQL keeps the candidates to what an index can find: a box around the point as wide as the
longest camera range (GiST index of camera.geom), then the exact geodesic distance to each
camera's own range (ST_DWithin on geography); the sector test runs on those few in Python.
"""

from __future__ import annotations

import math

import shapely
from sqlalchemy import Connection, text

from analytics.contract import Memo
from analytics.coverage import metric_epsg
from analytics.service_coverage import sector
from auth import accounts
from auth.access import check_point, find_layer
from auth.accounts import User
from errors import Forbidden, NotFound
from geodata.areas import in_areas
from geodata.catalog import SRID
from geodata.versions import version_key
from params import parse_int, parse_lonlat
from services import alarms, places
from services.archive import open_archive

MAX_CAMERAS = 50
COMPONENT_REACH_M = 30.0  # a clicked point's component: the nearest within this distance
M_PER_DEG_LAT = 110_574.0  # the shortest degree of latitude (equator): the box is never too small
M_PER_DEG_LON = 111_320.0  # a degree of longitude at the equator, times cos(latitude)
BOX_MARGIN = 1.01
POINT = f"ST_SetSRID(ST_MakePoint(:lon, :lat), {SRID})"
MAX_RANGE = text("SELECT coalesce(max(range_m), 0) FROM camera")
RANGES = Memo(8)  # the longest camera range by database and camera-data version
GRID_UNIT = text("SELECT responsible_unit FROM unit_grid WHERE code = :c")
COMPONENT_LAYER = (
    "'component_' || left(t.class_code, 2)"  # components are one layer per major class
)
LINKED_COMPONENT = text(f"SELECT {COMPONENT_LAYER} FROM component t WHERE t.id = :id")


def candidates_sql(scoped: bool) -> str:
    """SQL: cameras whose own range reaches the point, nearest first (box first, for the index)."""
    scope = f" AND {in_areas('c.geom', 'scope')}" if scoped else ""
    return f"""
        WITH p AS (SELECT {POINT} AS g)
        SELECT c.id, c.code, c.name, c.online, c.stream_url, c.direction_deg, c.fov_deg,
               c.range_m, ST_Distance(c.geom::geography, p.g::geography) AS distance_m,
               ST_X(ST_Transform(c.geom, :srid)) AS x, ST_Y(ST_Transform(c.geom, :srid)) AS y,
               ST_X(ST_Transform(p.g, :srid)) AS px, ST_Y(ST_Transform(p.g, :srid)) AS py
        FROM camera c, p
        WHERE c.geom && ST_Expand(p.g, :dx, :dy)
          AND ST_DWithin(c.geom::geography, p.g::geography, c.range_m){scope}
        ORDER BY distance_m, c.code"""


def search_box(lat: float, reach_m: float) -> tuple[float, float]:
    """Half width and height in degrees of a box holding every point within `reach_m`."""
    cos_lat = max(math.cos(math.radians(lat)), 1e-6)
    reach = reach_m * BOX_MARGIN
    return reach / (M_PER_DEG_LON * cos_lat), reach / M_PER_DEG_LAT


def sees(camera, x: float, y: float) -> bool:
    """Whether the point (metric x, y) lies in the camera's view sector, edges included."""
    view = sector(camera.x, camera.y, camera.direction_deg, camera.fov_deg, camera.range_m)
    return bool(view.covers(shapely.Point(x, y)))


def max_range(conn: Connection) -> float:
    """The longest camera range in metres, remembered per database and camera-data version."""
    key = version_key(conn, ("camera",))
    reach = RANGES.get(key)
    if reach is None:
        reach = float(conn.execute(MAX_RANGE).scalar())
        RANGES.put(key, reach)
    return reach


def seeing(conn: Connection, lon: float, lat: float, scope=None,
           limit: int = MAX_CAMERAS) -> list[dict]:  # fmt: skip
    """Cameras whose view sector holds the point, nearest first (at most `limit`)."""
    reach = max_range(conn)
    if reach <= 0:
        return []
    srid = metric_epsg(lon, lat)
    dx, dy = search_box(lat, reach)
    params = {"lon": lon, "lat": lat, "srid": srid, "dx": dx, "dy": dy}
    if scope:
        params["scope"] = list(scope)
    rows = conn.execute(text(candidates_sql(bool(scope))), params).all()
    found = [r for r in rows if sees(r, r.px, r.py)][:limit]
    return [{"id": r.id, "code": r.code, "name": r.name, "online": r.online,
             "distance_m": round(float(r.distance_m), 1), "direction_deg": r.direction_deg,
             "fov_deg": r.fov_deg, "range_m": r.range_m, "stream_url": r.stream_url}
            for r in found]  # fmt: skip


def cameras_seeing(conn: Connection, user: User, lon, lat, limit=None, *, ip: str) -> dict:
    """GET /api/cameras/seeing: the cameras that see a point, for roles that see cameras (audited)."""
    x, y = parse_lonlat(lon, lat)
    n = MAX_CAMERAS if limit in (None, "") else parse_int(limit, "limit", 1, MAX_CAMERAS)
    find_layer("camera", user)  # a restricted layer: 403 for roles without it
    check_point(conn, user, x, y)
    cameras = seeing(conn, x, y, user.scope, n)
    if cameras:  # stream links of restricted cameras were handed out: who, where, which
        accounts.audit(conn, user.username, "camera_seeing", f"{x:.6f},{y:.6f}",
                       {"cameras": [c["code"] for c in cameras]}, ip=ip)  # fmt: skip
    return {"lon": x, "lat": y, "count": len(cameras), "cameras": cameras}


def nearest_component(conn: Connection, lon: float, lat: float, scope=None) -> tuple | None:
    """(layer id, id) of the nearest component within COMPONENT_REACH_M of the point, if any."""
    dx, dy = search_box(lat, COMPONENT_REACH_M)
    params = {"lon": lon, "lat": lat, "dx": dx, "dy": dy, "reach": COMPONENT_REACH_M}
    scope_sql = ""
    if scope:
        params["scope"], scope_sql = list(scope), f" AND {in_areas('t.geom', 'scope')}"
    return conn.execute(text(
        f"SELECT {COMPONENT_LAYER}, t.id FROM component t WHERE t.geom && ST_Expand({POINT}, :dx, :dy) "
        f"AND ST_DWithin(t.geom::geography, {POINT}::geography, :reach){scope_sql} "
        f"ORDER BY t.geom <-> {POINT}, t.id LIMIT 1"), params).first()  # fmt: skip


def archive_or_reason(conn: Connection, user: User, layer, object_id, ip: str) -> dict:
    """The object's archive as the user may see it, or why not (no role, out of scope, gone)."""
    try:
        return {"archive": open_archive(conn, user, layer, object_id, ip=ip), "reason": None}
    except (Forbidden, NotFound) as exc:
        return {"archive": None, "reason": exc.message}


def linkage(conn: Connection, user: User, lon: float, lat: float, *, linked=None,
            ip: str) -> dict:  # fmt: skip
    """The place (grid, community, responsible unit), the cameras seeing it and the object archive.

    `linked` is (layer, id) of the object an alarm's sensor watches; without it, the nearest
    component within COMPONENT_REACH_M. Cameras are left out (with the reason) for roles without
    the camera layer, so the rest still answers.
    """
    place = places.reverse(conn, user, lon, lat)
    unit = (
        conn.execute(GRID_UNIT, {"c": place["grid_code"]}).scalar() if place["grid_code"] else None
    )
    try:
        cams, cam_reason = cameras_seeing(conn, user, lon, lat, ip=ip)["cameras"], None
    except Forbidden as exc:
        cams, cam_reason = None, exc.message
    if linked is None:
        linked = nearest_component(conn, lon, lat, user.scope)
    elif linked[0] == "component":  # sensors name the table; the map has a layer per major class
        layer = conn.execute(LINKED_COMPONENT, {"id": linked[1]}).scalar()
        linked = (layer, linked[1]) if layer else None
    linked = tuple(linked) if linked else None
    archive = archive_or_reason(conn, user, *linked, ip) if linked else {"archive": None,
                                                                         "reason": "没有关联的或附近的部件"}  # fmt: skip
    return {"place": {**place, "responsible_unit": unit}, "cameras": cams,
            "cameras_reason": cam_reason, "object": linked and {"layer": linked[0], "id": linked[1]},
            "archive": archive["archive"], "archive_reason": archive["reason"]}  # fmt: skip


def alarm_linkage(conn: Connection, user: User, alarm_id, *, ip: str) -> dict:
    """GET /api/alarms/<id>: the alarm, its place, the cameras seeing it and the watched object."""
    alarm = alarms.get_alarm(conn, user, alarm_id)
    linked = (alarm["linked_layer"], alarm["linked_id"]) if alarm["linked_layer"] else None
    return {"alarm": alarm, **linkage(conn, user, alarm["lon"], alarm["lat"], linked=linked, ip=ip)}


def point_linkage(conn: Connection, user: User, lon, lat, *, ip: str) -> dict:
    """GET /api/linkage: for any point, its place, the cameras seeing it and the nearest component."""
    x, y = parse_lonlat(lon, lat)
    return linkage(conn, user, x, y, ip=ip)
