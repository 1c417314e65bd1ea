"""Layers: the registry as the user sees it, features, exports and statistics."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.http import engine, private_json, reading
from auth.access import visible_layers
from auth.web import client_ip, current_user
from layers.registry import layer_json
from services import layer_data

bp = Blueprint("layers", __name__)


@bp.get("/api/layers")
def layers():
    """The layers the user's role may see."""
    return jsonify({"layers": [layer_json(x) for x in visible_layers(current_user())]})


@bp.get("/api/features/<layer_id>")
def features(layer_id: str):
    """A GeoJSON page of a layer's features (bulk reads need the export right)."""
    with reading() as conn:  # bulk reads are audited on the primary (writer)
        body = layer_data.features(conn, current_user(), layer_id, request.args.to_dict(),
                                   ip=client_ip(), writer=engine())  # fmt: skip
    return private_json(body)


@bp.get("/api/export/<layer_id>")
def export(layer_id: str):
    """A layer's matching features as a GeoJSON download (audited)."""
    with reading() as conn:  # exports are audited on the primary (writer)
        body = layer_data.export(conn, current_user(), layer_id, request.args.to_dict(),
                                 ip=client_ip(), writer=engine())  # fmt: skip
    resp = private_json(body)
    resp.headers["Content-Disposition"] = f'attachment; filename="{layer_id}.geojson"'
    return resp


@bp.get("/api/stats/<layer_id>")
def stats(layer_id: str):
    """Counts by a field inside an area."""
    with reading() as conn:
        body = layer_data.stats(conn, current_user(), layer_id, request.args.to_dict())
    return private_json(body)
