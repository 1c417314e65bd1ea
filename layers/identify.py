"""Identify (要素识别): the object of the visible layers under a clicked point."""

from __future__ import annotations

import math

from sqlalchemy import Connection, text

from layers.filters import Filter, where_parts
from layers.registry import Layer

CLICK_TOLERANCE_PX = 8
ORDER = {"point": 0, "line": 1, "polygon": 2}  # what is drawn on top is found first


def tolerance_degrees(lat: float, zoom: int) -> float:
    """A few screen pixels at this zoom and latitude, in degrees."""
    metres_per_px = 156543.03392 * math.cos(math.radians(lat)) / 2**zoom
    return CLICK_TOLERANCE_PX * metres_per_px / 111_320.0


def nearest_in_layer(conn: Connection, layer: Layer, filters: list[Filter], lon: float, lat: float,
                     tol: float) -> dict | None:  # fmt: skip
    """The layer's object at the point (polygons) or nearest within the tolerance (points, lines)."""
    params: dict = {"lon": lon, "lat": lat, "tol": tol}
    parts = where_parts(layer, filters, params)
    pt = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4490)"
    if layer.geometry == "polygon":
        parts.append(f"ST_Intersects(t.geom, {pt})")
    else:
        parts += [f"t.geom && ST_Expand({pt}, :tol)", f"ST_DWithin(t.geom, {pt}, :tol)"]
    sql = (f"SELECT t.id FROM {layer.source} t WHERE {' AND '.join(parts)} "
           f"ORDER BY t.geom <-> {pt}, t.id LIMIT 1")  # fmt: skip
    found = conn.execute(text(sql), params).scalar()
    return None if found is None else {"layer": layer.id, "id": int(found)}


def identify(conn: Connection, layers: list[tuple[Layer, list[Filter]]], lon: float, lat: float,
             zoom: int) -> dict | None:  # fmt: skip
    """First hit among the visible layers: points before lines before polygons."""
    tol = tolerance_degrees(lat, zoom)
    for layer, filters in sorted(layers, key=lambda lf: ORDER[lf[0].geometry]):
        if zoom < layer.min_zoom or (layer.geometry == "point" and zoom < layer.detail_zoom):
            continue  # aggregates and hidden layers are not objects to open
        hit = nearest_in_layer(conn, layer, filters, lon, lat, tol)
        if hit is not None:
            return hit
    return None
