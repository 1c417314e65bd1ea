"""Parking: /api/parking/nearest (the nearest lots with free spaces from a point) and
POST /api/parking/readings (occupancy readings in batches)."""

from __future__ import annotations

from flask import Blueprint, request

from analytics import parking
from api.http import engine, private_json, reading
from auth import accounts
from auth.web import client_ip, current_user
from services.batches import parse_partial
from services.parking_ingest import check_ingest, ingest_readings

bp = Blueprint("parking", __name__)


@bp.get("/api/parking/nearest")
def nearest():
    """The `n` nearest lots with free spaces from `lon`, `lat`, ordered by distance_m."""
    with reading() as conn:
        return private_json(parking.nearest(conn, current_user(), request.args))


@bp.post("/api/parking/readings")
def post_readings():
    """A batch of readings: a JSON array of {lot_code, at, occupied}, or {readings, partial}."""
    user = current_user()
    check_ingest(user)
    raw = request.get_json(silent=True)
    rows, partial = raw, request.args.get("partial")
    if isinstance(raw, dict):
        rows, partial = raw.get("readings"), raw.get("partial", partial)
    partial = parse_partial(partial)
    with engine().begin() as conn:
        report = ingest_readings(conn, rows, partial=partial)
        accounts.audit(conn, user.username, "parking_readings", "parking_occupancy",
                       {k: v for k, v in report.items() if k != "rejected"}
                       | {"rejected": len(report["rejected"])}, ip=client_ip())  # fmt: skip
    return private_json(report, 422 if report["rejected"] and not report["written"] else 200)
