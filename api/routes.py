"""JSON routes on the Dash server; every error answers JSON with a Chinese message."""

from __future__ import annotations

from flask import Flask, jsonify, request

from errors import BadRequest, OneMapError
from geodata import catalog
from geodata.db import engine_for
from geodata.queries import admin_areas_geojson
from settings import Settings

MAX_TOLERANCE = 0.01


def register(server: Flask, settings: Settings) -> None:
    """Attach the API routes and the JSON error handler to the Flask server."""

    server.json.ensure_ascii = False  # Chinese messages stay readable

    @server.errorhandler(OneMapError)
    def _onemap_error(exc: OneMapError):
        return jsonify({"error": exc.message, "status": exc.status}), exc.status

    @server.get("/api/admin/<level>")
    def admin_areas(level: str):
        if level not in catalog.ADMIN_LEVELS:
            raise BadRequest(
                f"未知的行政区划级别：{level}（可选：{', '.join(catalog.ADMIN_LEVELS)}）"
            )
        tolerance = parse_float(request.args.get("simplify", "0"), "simplify", 0, MAX_TOLERANCE)
        parent = request.args.get("parent") or None
        if parent is not None and not parent.isdigit():
            raise BadRequest("parent 必须是数字行政区划代码")
        with engine_for(settings).connect() as conn:
            body = admin_areas_geojson(conn, level=level, parent=parent, tolerance=tolerance)
        return jsonify(body)


def parse_float(raw: str, name: str, low: float, high: float) -> float:
    """Parse a float query parameter within [low, high] or raise BadRequest."""
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"参数 {name} 必须是数字") from None
    if not low <= value <= high:
        raise BadRequest(f"参数 {name} 必须在 {low} 与 {high} 之间")
    return value
