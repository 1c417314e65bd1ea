"""The one-map page: header and the dash-leaflet map with the district boundaries from PostGIS."""

from __future__ import annotations

import dash_leaflet as dl
from dash import html
from dash_extensions.javascript import Namespace

from settings import Settings

MAP_ID = "onemap-map"
DISTRICT_LAYER_ID = "district-layer"
# ~50 m tolerance: enough for a city overview, keeps the payload small.
DISTRICT_URL = "/api/admin/district?simplify=0.0005"

MAP_JS = Namespace("onemap", "map")
DISTRICT_STYLE = {"color": "#1f6feb", "weight": 1.5, "fillColor": "#1f6feb", "fillOpacity": 0.06}


def layout(settings: Settings) -> html.Div:
    """The whole page: a title bar above a full-size map."""
    return html.Div(
        className="onemap-page",
        children=[
            html.Header(
                className="onemap-header",
                children=[
                    html.H1(settings.title),
                    html.Span("数据来源：PostGIS", className="meta"),
                ],
            ),
            base_map(settings),
        ],
    )


def base_map(settings: Settings) -> dl.Map:
    """The map with the district layer; canvas rendering for large layers."""
    return dl.Map(
        id=MAP_ID,
        center=[settings.map_center_lat, settings.map_center_lon],
        zoom=settings.map_zoom,
        preferCanvas=True,
        className="onemap-map",
        children=[
            dl.GeoJSON(
                id=DISTRICT_LAYER_ID,
                url=DISTRICT_URL,
                style=DISTRICT_STYLE,
                onEachFeature=MAP_JS("bindAreaLabel"),
            ),
            dl.ScaleControl(position="bottomleft", imperial=False),
        ],
    )


def register(app) -> None:
    """No callbacks yet on this page area: the district layer loads from its URL."""
