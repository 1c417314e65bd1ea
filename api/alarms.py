"""Alarms (预警一张图) and video linkage (视频联动): the alarm list, ingest, closing, cameras."""

from __future__ import annotations

from flask import Blueprint, request

from analytics.cameras import alarm_linkage, cameras_seeing, point_linkage
from api.http import engine, private_json
from auth import accounts
from auth.web import client_ip, current_user
from errors import BadRequest
from services import alarms
from services.batches import parse_partial

bp = Blueprint("alarms", __name__)


@bp.get("/api/alarms")
def list_alarms():
    """Alarms newest first: ?active=true|false&kind=&level=&bbox=&limit=."""
    with engine().connect() as conn:
        return private_json(alarms.list_alarms(conn, current_user(), request.args))


@bp.post("/api/alarms")
def post_alarms():
    """A batch of alarms: a JSON array of {sensor_code, raised_at, level, message}, or {alarms, partial}."""
    user = current_user()
    alarms.check_alarm_role(user, "提交告警")
    raw = request.get_json(silent=True)
    rows, partial = raw, request.args.get("partial")
    if isinstance(raw, dict):
        rows, partial = raw.get("alarms"), raw.get("partial", partial)
    partial = parse_partial(partial)
    with engine().begin() as conn:
        report = alarms.ingest_alarms(conn, rows, partial=partial)
        accounts.audit(conn, user.username, "alarm_ingest", "alarm",
                       {k: v for k, v in report.items() if k not in ("rejected", "ids")}
                       | {"rejected": len(report["rejected"])}, ip=client_ip())  # fmt: skip
    return private_json(report, 422 if report["rejected"] and not report["written"] else 200)


@bp.get("/api/alarms/<alarm_id>")
def alarm(alarm_id: str):
    """One alarm with its place, the cameras seeing it and the archive of the watched object."""
    with engine().begin() as conn:  # archive and camera views of restricted layers are audited
        return private_json(alarm_linkage(conn, current_user(), alarm_id, ip=client_ip()))


@bp.post("/api/alarms/<alarm_id>/close")
def close_alarm(alarm_id: str):
    """Close an alarm (operators and admins); optional JSON body {note}."""
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise BadRequest('请求体必须是 JSON 对象，如 {"note": "已现场处理"}')
    with engine().begin() as conn:
        done = alarms.close_alarm(conn, current_user(), alarm_id, body.get("note"), ip=client_ip())
    return private_json(done)


@bp.get("/api/sensors")
def sensors():
    """Sensors with their live state: ?kind=&bbox=&limit=."""
    with engine().connect() as conn:
        return private_json(alarms.sensor_states(conn, current_user(), request.args))


@bp.get("/api/cameras/seeing")
def seeing():
    """Cameras whose view sector holds ?lon=&lat=, nearest first (roles that see cameras)."""
    args = request.args
    with engine().begin() as conn:  # stream links handed out are audited
        body = cameras_seeing(conn, current_user(), args.get("lon"), args.get("lat"),
                              args.get("limit"), ip=client_ip())  # fmt: skip
    return private_json(body)


@bp.get("/api/linkage")
def linkage():
    """Any point: its grid, community, responsible unit, the cameras seeing it, nearest component."""
    args = request.args
    with engine().begin() as conn:
        return private_json(point_linkage(conn, current_user(), args.get("lon"), args.get("lat"),
                                          ip=client_ip()))  # fmt: skip
