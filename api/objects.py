"""Object archives (档案): /api/objects/<layer>/<id>."""

from __future__ import annotations

from flask import Blueprint

from api.http import engine, private_json
from auth.web import client_ip, current_user
from services.archive import open_archive

bp = Blueprint("objects", __name__)


@bp.get("/api/objects/<layer_id>/<object_id>")
def archive(layer_id: str, object_id: str):
    """One object's archive, as the user may see it (restricted views audited)."""
    with engine().begin() as conn:
        body = open_archive(conn, current_user(), layer_id, object_id, ip=client_ip())
    return private_json(body)
