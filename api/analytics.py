"""Analyses: /api/analytics (the registry) and /api/analytics/<id> (run one)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from analytics.contract import ANALYSES, result_cache, run_analysis
from analytics.export import main_table, to_csv, to_xlsx
from api.http import private_json, reading
from auth.access import check_analytics
from auth.web import current_user
from errors import BadRequest
from runtime import runtime

bp = Blueprint("analytics", __name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.get("/api/analytics")
def analyses():
    """Every analysis with its parameters and output kind."""
    check_analytics(current_user())
    return private_json({"analyses": [a.describe() for a in ANALYSES.values()]})


@bp.get("/api/analytics/parking/heat")
def parking_heat():
    """Parking pressure at a moment (`at`): the analysis parking-heat under its issue's path."""
    with reading() as conn:
        body = run_analysis(conn, current_user(), "parking-heat", request.args.to_dict(),
                            result_cache(runtime()))  # fmt: skip
    return private_json(body)


@bp.get("/api/analytics/<analysis_id>")
def run(analysis_id: str):
    """Run an analysis with the query's parameters (format=geojson: the features themselves)."""
    with reading() as conn:
        body = run_analysis(conn, current_user(), analysis_id, request.args.to_dict(),
                            result_cache(runtime()))  # fmt: skip
    if body["result"].get("type") == "FeatureCollection":
        return private_json(body["result"])
    return private_json(body)


@bp.get("/api/analytics/<analysis_id>/export.<fmt>")
def export(analysis_id: str, fmt: str):
    """An analysis result as CSV (its main table) or an XLSX workbook (every table)."""
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("导出格式只能是 csv 或 xlsx（GeoJSON 用 format=geojson）")
    with reading() as conn:
        body = run_analysis(conn, current_user(), analysis_id, request.args.to_dict(),
                            result_cache(runtime()))  # fmt: skip
    if body["result"].get("type") == "FeatureCollection":
        raise BadRequest("该结果是图层，请用 format=geojson 导出")
    name = f"{analysis_id}.{fmt}"
    if fmt == "csv":
        resp = Response(to_csv(main_table(body["result"])), mimetype="text/csv; charset=utf-8")
    else:
        resp = Response(to_xlsx(body["result"], body["title"]), mimetype=XLSX)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/api/analytics/park-coverage/what-if")
def park_what_if():
    """Coverage with a candidate park: JSON body {geometry: GeoJSON polygon, area, mode, rules}."""
    raw = request.get_json(silent=True)
    if not isinstance(raw, dict):
        raise BadRequest("请求体必须是 JSON 对象，含 geometry（GeoJSON 多边形）")
    with reading() as conn:
        body = run_analysis(conn, current_user(), "park-coverage-what-if", raw)
    return private_json(body)
