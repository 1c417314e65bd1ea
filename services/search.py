"""Search (查询): addresses and POIs, or component and unit-grid codes, scoped in SQL."""

from __future__ import annotations

from sqlalchemy import Connection

from auth.accounts import User
from errors import BadRequest
from geodata.geocoding import geocode
from geodata.queries import search_codes
from params import text_value

MAX_QUERY = 100
MIN_CODE_DIGITS = 6


def search(conn: Connection, user: User, raw, limit: int = 10) -> list[dict]:
    """Hits for a query: codes when it is 6+ digits, else addresses and POIs; each with a place."""
    query = text_value(raw, "q", MAX_QUERY).strip()
    if not query:
        raise BadRequest("请输入地址、兴趣点或编码")
    if query.isdigit() and len(query) >= MIN_CODE_DIGITS:
        return [code_hit(h) for h in search_codes(conn, query, limit, user.scope)]
    return [{"kind": "geocode", "title": h["address"], "layer": "geocode", "id": h["id"],
             "code": None, "lat": h["lat"], "lon": h["lon"]}
            for h in geocode(conn, query, limit, user.scope)]  # fmt: skip


def code_hit(h: dict) -> dict:
    """A component or unit-grid hit with the layer that shows it."""
    layer = f"component_{h['major']}" if h["kind"] == "component" else "unit_grid"
    return {"kind": h["kind"], "title": f"{h['title']} {h['code']}", "layer": layer,
            "id": h["id"], "code": h["code"], "lat": h["lat"], "lon": h["lon"]}  # fmt: skip
