"""Map clicks: what the user clicked (identify) and where it is (reverse geocoding)."""

from __future__ import annotations

from sqlalchemy import Connection

from auth.access import find_layer
from auth.accounts import User
from layers.identify import identify
from params import parse_lonlat, parse_zoom
from services import places
from services.map_state import visible_layers


def click(conn: Connection, user: User, lon, lat, zoom, state) -> dict:
    """The place of a clicked point and the object hit on the visible layers (or None)."""
    x, y = parse_lonlat(lon, lat)
    z = parse_zoom(zoom)
    where = places.reverse(conn, user, x, y)
    hit = identify(conn, visible_layers(state, user), x, y, z)
    if hit is not None:
        find_layer(hit["layer"], user)  # identify only saw allowed layers; say so explicitly
    return {"place": where, "hit": hit}
