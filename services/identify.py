"""Map clicks: what the user clicked (identify) and where it is (reverse geocoding)."""

from __future__ import annotations

from sqlalchemy import Connection

from auth.access import find_layer, layer_allowed, user_filters
from auth.accounts import User
from layers.identify import identify
from layers.registry import REGISTRY
from params import parse_lonlat, parse_zoom
from services import places

MAX_LAYERS = 40


def visible_layers(state, user: User) -> list:
    """(layer, filters) of the switched-on layers in a map state from the browser (untrusted)."""
    state = state if isinstance(state, dict) else {}
    wanted = state.get("layers") if isinstance(state.get("layers"), dict) else {}
    area = state.get("area")
    out = []
    for layer_id, cfg in list(wanted.items())[:MAX_LAYERS]:
        layer = REGISTRY.get(layer_id) if isinstance(layer_id, str) else None
        if layer is None or not layer_allowed(user, layer):
            continue
        filters = cfg.get("filters") if isinstance(cfg, dict) else None
        args = dict(filters) if isinstance(filters, dict) else {}
        if area and layer.follows_area:
            args["area"] = area
        out.append((layer, user_filters(user, layer, args, ignore=set())))
    return out


def click(conn: Connection, user: User, lon, lat, zoom, state) -> dict:
    """The place of a clicked point and the object hit on the visible layers (or None)."""
    x, y = parse_lonlat(lon, lat)
    z = parse_zoom(zoom)
    where = places.reverse(conn, user, x, y)
    hit = identify(conn, visible_layers(state, user), x, y, z)
    if hit is not None:
        find_layer(hit["layer"], user)  # identify only saw allowed layers; say so explicitly
    return {"place": where, "hit": hit}
