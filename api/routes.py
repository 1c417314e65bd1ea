"""HTTP routes on the Dash server: vector tiles and the JSON API. Errors answer JSON, never 500s."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from auth.access import (
    check_archives,
    check_point,
    check_tile,
    find_layer,
    redact,
    scoped,
    user_filters,
    visible_layers,
)
from auth.web import client_ip, current_user
from errors import BadRequest, Forbidden, NotFound, OneMapError
from geodata import accounts, catalog
from geodata.archive import object_archive
from geodata.db import engine_for
from geodata.geocoding import geocode, reverse
from geodata.layer_sql import features_sql
from geodata.queries import admin_areas_geojson, road_labels
from geodata.stats import layer_stats
from layers.registry import layer_json
from layers.tiles import TileCache, check_tile_address, get_tile
from settings import Settings

MAX_TOLERANCE = 0.01
MAX_FEATURES = 10_000
TILE_MAX_AGE = 60


def register(server: Flask, settings: Settings) -> None:
    """Attach the routes and the JSON error handlers to the Flask server."""
    server.json.ensure_ascii = False  # Chinese messages stay readable
    cache = TileCache(settings.tile_cache_mb * 1024 * 1024)
    engine = lambda: engine_for(settings)  # noqa: E731 - created on first use, not at import

    @server.errorhandler(OneMapError)
    def _onemap_error(exc: OneMapError):
        return jsonify({"error": exc.message, "status": exc.status}), exc.status

    @server.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        messages = {404: "没有这个地址", 405: "不支持该请求方法", 413: "上传内容过大"}
        message = messages.get(exc.code, exc.name)
        return jsonify({"error": message, "status": exc.code}), exc.code

    @server.errorhandler(Exception)
    def _unexpected(exc: Exception):
        server.logger.exception("unexpected error on %s", request.path)
        return jsonify({"error": "服务器内部错误，请联系管理员", "status": 500}), 500

    @server.get("/tiles/<path:rest>")
    @server.get("/api/<path:rest>")
    def _unknown(rest: str):
        raise NotFound("没有这个地址：瓦片为 /tiles/<图层>/<z>/<x>/<y>.pbf，接口见 /api/layers")

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
        with engine().connect() as conn:
            body = admin_areas_geojson(conn, level=level, parent=parent, tolerance=tolerance)
        return jsonify(body)

    @server.get("/api/labels/road")
    def road_label_route():
        bbox = parse_bbox(required(request.args, "bbox"))
        if (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) > 0.01:
            raise BadRequest("范围过大：道路名称只在放大后显示（bbox 面积不超过 0.01 平方度）")
        with engine().connect() as conn:
            return jsonify({"labels": road_labels(conn, bbox)})

    @server.get("/api/layers")
    def layers():
        return jsonify({"layers": [layer_json(x) for x in visible_layers(current_user())]})

    @server.get(
        "/tiles/<layer_id>/<int(signed=True):z>/<int(signed=True):x>/<int(signed=True):y>.pbf"
    )
    def tile(layer_id: str, z: int, x: int, y: int):
        user = current_user()
        layer = find_layer(layer_id, user)
        filters = user_filters(user, layer, request.args.to_dict(), ignore={"v"})
        check_tile_address(z, x, y)
        with engine().connect() as conn:
            check_tile(conn, user, z, x, y)
        found = get_tile(engine(), cache, layer, z, x, y, filters)
        return tile_response(found)

    @server.get("/api/features/<layer_id>")
    def features(layer_id: str):
        user = current_user()
        layer = find_layer(layer_id, user)
        args = request.args.to_dict()
        limit = int(parse_float(args.get("limit", "1000"), "limit", 1, MAX_FEATURES))
        bbox = parse_bbox(args["bbox"]) if "bbox" in args else None
        filters = user_filters(user, layer, args, ignore={"bbox", "limit"})
        sql, params = features_sql(layer, filters, bbox)
        with engine().connect() as conn:
            matched, feats = conn.execute(text(sql), {**params, "limit": limit}).one()
        return jsonify({"type": "FeatureCollection", "features": feats,
                        "numberMatched": matched, "numberReturned": len(feats)})  # fmt: skip

    @server.get("/api/export/<layer_id>")
    def export(layer_id: str):
        user = current_user()
        if not user.role.export:
            raise Forbidden("当前角色不能导出数据")
        layer = find_layer(layer_id, user)
        args = request.args.to_dict()
        bbox = parse_bbox(args["bbox"]) if "bbox" in args else None
        filters = user_filters(user, layer, args, ignore={"bbox"})
        sql, params = features_sql(layer, filters, bbox)
        with engine().begin() as conn:
            matched, feats = conn.execute(text(sql), {**params, "limit": MAX_FEATURES}).one()
            accounts.audit(conn, user.username, "export", layer.id,
                           {"filters": args, "rows": len(feats)}, client_ip())  # fmt: skip
        body = {"type": "FeatureCollection", "features": feats, "numberMatched": matched,
                "numberReturned": len(feats)}  # fmt: skip
        resp = jsonify(body)
        resp.headers["Content-Disposition"] = f'attachment; filename="{layer.id}.geojson"'
        return resp

    @server.get("/api/objects/<layer_id>/<int:object_id>")
    def archive(layer_id: str, object_id: int):
        user = current_user()
        layer = find_layer(layer_id, user)
        check_archives(user)
        with engine().begin() as conn:
            body = object_archive(conn, layer, object_id, scoped(user, []))
            if layer.restricted:
                accounts.audit(conn, user.username, "archive_view", f"{layer.id}/{object_id}",
                               ip=client_ip())  # fmt: skip
        return jsonify(redact(body, user))

    @server.get("/api/geocode")
    def geocode_route():
        query = request.args.get("q", "").strip()
        if not query:
            raise BadRequest("请提供查询参数 q")
        if len(query) > 100:
            raise BadRequest("查询文本过长（最多 100 字）")
        limit = int(parse_float(request.args.get("limit", "10"), "limit", 1, 100))
        scope = current_user().scope
        with engine().connect() as conn:
            return jsonify({"query": query, "results": geocode(conn, query, limit, scope)})

    @server.get("/api/reverse")
    def reverse_route():
        lon = parse_float(required(request.args, "lon"), "lon", -180, 180)
        lat = parse_float(required(request.args, "lat"), "lat", -90, 90)
        with engine().connect() as conn:
            check_point(conn, current_user(), lon, lat)
            return jsonify(reverse(conn, lon, lat))

    @server.get("/api/stats/<layer_id>")
    def stats(layer_id: str):
        user = current_user()
        layer = find_layer(layer_id, user)
        args = request.args.to_dict()
        by = layer.field(required(args, "by"))
        if by is None or not by.filterable:
            allowed_by = ", ".join(f.name for f in layer.filterable) or "无"
            raise BadRequest(f"图层 {layer.id} 不能按 {args['by']} 统计（可用：{allowed_by}）")
        area = args.get("area") or None
        if area is not None and not area.isdigit():
            raise BadRequest("area 必须是数字行政区划代码")
        filters = user_filters(user, layer, args, ignore={"by", "area"})
        with engine().connect() as conn:
            return jsonify(layer_stats(conn, layer, area=area, by=by, filters=filters))


def tile_response(tile) -> Response:
    """204 for an empty tile, 304 when the ETag matches, gzip when accepted."""
    headers = {"ETag": tile.etag, "Cache-Control": f"public, max-age={TILE_MAX_AGE}"}
    if request.if_none_match.contains(tile.etag.strip('"')):
        return Response(status=304, headers=headers)
    if not tile.data:
        return Response(status=204, headers=headers)
    body = tile.data
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body, headers["Content-Encoding"] = tile.gzipped, "gzip"
    headers["Vary"] = "Accept-Encoding"
    return Response(body, headers=headers, mimetype="application/vnd.mapbox-vector-tile")


def required(args, name: str) -> str:
    """A required query parameter, or 400."""
    value = args.get(name)
    if value is None or value == "":
        raise BadRequest(f"缺少参数 {name}")
    return value


def parse_float(raw: str, name: str, low: float, high: float) -> float:
    """Parse a float query parameter within [low, high] or raise BadRequest."""
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"参数 {name} 必须是数字") from None
    if not low <= value <= high:
        raise BadRequest(f"参数 {name} 必须在 {low} 与 {high} 之间")
    return value


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    """`minx,miny,maxx,maxy` in lon/lat degrees, or 400."""
    parts = raw.split(",")
    if len(parts) != 4:
        raise BadRequest("bbox 必须是 minx,miny,maxx,maxy 四个数")
    minx, maxx = (parse_float(parts[i], "bbox", -180, 180) for i in (0, 2))
    miny, maxy = (parse_float(parts[i], "bbox", -90, 90) for i in (1, 3))
    if minx >= maxx or miny >= maxy:
        raise BadRequest("bbox 的最小值必须小于最大值")
    return minx, miny, maxx, maxy
