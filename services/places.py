"""Places: geocoding, reverse geocoding, road labels and administrative areas, within the user's scope."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from auth.access import check_point
from auth.accounts import User
from errors import BadRequest
from geodata import catalog, geocoding, queries
from params import parse_bbox, parse_float, parse_int, parse_lonlat, required, text_value

MAX_TOLERANCE = 0.01
MAX_LABEL_BBOX = 0.01  # square degrees: road names only when zoomed in


def geocode(conn: Connection, user: User, args: Mapping) -> dict:
    """Addresses and POIs matching `q` (pg_trgm), within the user's areas."""
    query = text_value(required(args, "q"), "q", 100).strip()
    if not query:
        raise BadRequest("请提供查询参数 q")
    limit = parse_int(args.get("limit", "10"), "limit", 1, 100)
    return {"query": query, "results": geocoding.geocode(conn, query, limit, user.scope)}


def reverse(conn: Connection, user: User, lon, lat) -> dict:
    """Nearest address, unit grid and areas of a point the user may ask about."""
    x, y = parse_lonlat(lon, lat)
    check_point(conn, user, x, y)
    return geocoding.reverse(conn, x, y, user.scope)


def road_labels(conn: Connection, user: User, args: Mapping) -> dict:
    """Road names for the offline basemap in a small bbox, within the user's areas."""
    bbox = parse_bbox(required(args, "bbox"))
    if (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) > MAX_LABEL_BBOX:
        raise BadRequest("范围过大：道路名称只在放大后显示（bbox 面积不超过 0.01 平方度）")
    return {"labels": queries.road_labels(conn, bbox, scope=user.scope)}


def admin_areas(conn: Connection, level: str, args: Mapping) -> dict:
    """Administrative areas of a level (optionally under a parent) as GeoJSON."""
    if level not in catalog.ADMIN_LEVELS:
        raise BadRequest(
            f"未知的行政区划级别：{level[:20]}（可选：{', '.join(catalog.ADMIN_LEVELS)}）"
        )
    tolerance = parse_float(args.get("simplify", "0"), "simplify", 0, MAX_TOLERANCE)
    parent = args.get("parent") or None
    if parent is not None and not (isinstance(parent, str) and parent.isdigit()):
        raise BadRequest("parent 必须是数字行政区划代码")
    return queries.admin_areas_geojson(conn, level=level, parent=parent, tolerance=tolerance)
