"""Analyses: /api/analytics (the registry) and /api/analytics/<id> (run one)."""

from __future__ import annotations

from flask import Blueprint, request

from analytics.contract import ANALYSES, ResultCache, run_analysis
from api.http import engine, private_json
from auth.access import check_analytics
from auth.web import current_user
from errors import BadRequest
from runtime import runtime

bp = Blueprint("analytics", __name__)


def result_cache() -> ResultCache:
    """The app's cache of analysis results (per worker, keyed by data version)."""
    return runtime().cache("analytics", ResultCache)


@bp.get("/api/analytics")
def analyses():
    """Every analysis with its parameters and output kind."""
    check_analytics(current_user())
    return private_json({"analyses": [a.describe() for a in ANALYSES.values()]})


@bp.get("/api/analytics/<analysis_id>")
def run(analysis_id: str):
    """Run an analysis with the query's parameters (format=geojson: the features themselves)."""
    with engine().connect() as conn:
        body = run_analysis(conn, current_user(), analysis_id, request.args.to_dict(),
                            result_cache())  # fmt: skip
    if body["result"].get("type") == "FeatureCollection":
        return private_json(body["result"])
    return private_json(body)


@bp.post("/api/analytics/park-coverage/what-if")
def park_what_if():
    """Coverage with a candidate park: JSON body {geometry: GeoJSON polygon, area, mode, rules}."""
    raw = request.get_json(silent=True)
    if not isinstance(raw, dict):
        raise BadRequest("请求体必须是 JSON 对象，含 geometry（GeoJSON 多边形）")
    with engine().connect() as conn:
        body = run_analysis(conn, current_user(), "park-coverage-what-if", raw)
    return private_json(body)
