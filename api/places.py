"""Places: administrative areas, geocoding, reverse geocoding, search and road labels."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.http import private_json, reading
from auth.web import current_user
from services import places
from services.search import search

bp = Blueprint("places", __name__)


@bp.get("/api/admin/<level>")
def admin_areas(level: str):
    """Districts, streets or communities as GeoJSON (optionally simplified, under a parent)."""
    with reading() as conn:
        return jsonify(places.admin_areas(conn, level, request.args))


@bp.get("/api/labels/road")
def road_labels():
    """Road names for the offline basemap within a small bbox."""
    with reading() as conn:
        return private_json(places.road_labels(conn, current_user(), request.args))


@bp.get("/api/geocode")
def geocode():
    """Standard addresses and POIs matching `q`."""
    with reading() as conn:
        return private_json(places.geocode(conn, current_user(), request.args))


@bp.get("/api/reverse")
def reverse():
    """Nearest address, grid and areas of `lon`, `lat`."""
    args = request.args
    with reading() as conn:
        return private_json(places.reverse(conn, current_user(), args.get("lon"), args.get("lat")))


@bp.get("/api/search")
def search_route():
    """The page's search box: addresses and POIs, or component and unit-grid codes."""
    with reading() as conn:
        hits = search(conn, current_user(), request.args.get("q", ""))
    return private_json({"results": hits})
