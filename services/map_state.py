"""The map state the page sends with its callbacks (untrusted): switched-on layers, filters, area."""

from __future__ import annotations

from auth.access import layer_allowed, user_filters
from auth.accounts import User
from layers.registry import REGISTRY

MAX_LAYERS = 40


def requested_layers(state) -> tuple[list[tuple[str, dict]], object]:
    """(layer id, filter arguments) of the switched-on layers, and the focused area; shapes that
    are not what the page sends count as nothing."""
    state = state if isinstance(state, dict) else {}
    wanted = state.get("layers") if isinstance(state.get("layers"), dict) else {}
    out = []
    for layer_id, cfg in list(wanted.items())[:MAX_LAYERS]:
        filters = cfg.get("filters") if isinstance(cfg, dict) else None
        out.append((layer_id, dict(filters) if isinstance(filters, dict) else {}))
    return out, state.get("area")


def visible_layers(state, user: User) -> list:
    """(layer, filters) of the switched-on layers the user may see, the area focus applied."""
    wanted, area = requested_layers(state)
    out = []
    for layer_id, args in wanted:
        layer = REGISTRY.get(layer_id) if isinstance(layer_id, str) else None
        if layer is None or not layer_allowed(user, layer):
            continue
        if area and layer.follows_area:
            args["area"] = area
        out.append((layer, user_filters(user, layer, args, ignore=set())))
    return out
