"""The big screen's figures and its pinned view (指挥中心大屏): the same service as /bigscreen."""

from __future__ import annotations

from flask import Blueprint, request

from analytics import bigscreen as bs
from api.http import engine, private_json
from auth.web import client_ip, current_user
from errors import BadRequest
from runtime import runtime

bp = Blueprint("bigscreen", __name__)


def views() -> tuple[bs.View, ...]:
    """The configured views of this deployment."""
    return bs.configured_views(runtime().settings.bigscreen_config_path())


@bp.get("/api/bigscreen")
def snapshot():
    """Every figure of the screen (KPIs, charts, hotspot cells, feed), the views and the pin."""
    with engine().begin() as conn:  # the day's record of figures without history is written
        snap = bs.snapshot(conn, current_user(), views(), runtime().settings.bigscreen_day)
        pin = bs.pinned(conn, views())
    return private_json({**snap, "kpis": bs.kpi_values(snap), "charts": bs.chart_values(snap),
                         "views": [v.json() for v in views()], "pinned": pin})  # fmt: skip


@bp.post("/api/bigscreen/pin")
def pin():
    """Pin a view on every screen: JSON {"view": "<id>"}, or {"view": null} to rotate again."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "view" not in body:
        raise BadRequest('请求体必须是 JSON 对象，如 {"view": "parking"}；{"view": null} 恢复轮播')
    with engine().begin() as conn:
        return private_json(
            bs.pin_view(conn, current_user(), body["view"], views(), ip=client_ip())
        )
