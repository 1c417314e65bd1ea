"""The one-map page (一张图): header with search and area focus, layer tree, map, side panel."""

from __future__ import annotations

import dash_leaflet as dl
from dash import dcc, html
from dash_extensions.javascript import Namespace
from flask import has_request_context

from auth.access import visible_layers
from auth.accounts import User
from auth.web import csrf_token
from callbacks import (
    alarm_panel,
    analysis_panel,
    area_focus,
    bigscreen,
    case_panel,
    drainage_panel,
    ids,
    layer_tree,
    parking_panel,
    side_panel,
)
from callbacks.pages import Page
from callbacks.ui import store
from layers.registry import layer_json
from runtime import runtime
from settings import Settings

# ~50 m tolerance: enough for a city overview, keeps the payload small.
DISTRICT_URL = "/api/admin/district?simplify=0.0005"
MAP_JS = Namespace("onemap", "map")
LAYER_JS = Namespace("onemap", "layers")
DISTRICT_STYLE = {"color": "#0b3d91", "weight": 1.5, "fill": False}
TIANDITU = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}"
    "&TILECOL={{x}}&tk={key}"
)


def layout(settings: Settings, user: User, query: str) -> html.Div:
    """The whole page for this user, set as the page URL's query says."""
    layers = visible_layers(user)
    init = layer_tree.initial_values(layers, query)
    outline, area_view = area_start(settings, init["area"])
    return html.Div(
        className="onemap-page",
        children=[
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Store(id=ids.REGISTRY_STORE, data=[layer_json(x) for x in layers]),
            dcc.Store(id=ids.STATE_STORE, data=layer_tree.initial_state(layers, init)),
            dcc.Store(id=ids.MAP_DRAWN),
            dcc.Store(id=ids.CLICKED_STORE),
            store(ids.VIEW_REQUEST, init["view"] or area_view),
            dcc.Store(id=ids.LAYERS_SYNCED),
            dcc.Store(id=ids.VIEW_APPLIED),
            header(settings, user, init["area"], outline),
            html.Main(
                className="onemap-main",
                children=[
                    html.Aside(layer_tree.tree(layers, init), className="onemap-sidebar"),
                    html.Div(base_map(settings, outline), className="onemap-map-wrap"),
                    html.Aside(side_panel.panel(user), className="onemap-panel"),
                ],
            ),
        ],
    )


def area_start(settings: Settings, code: str | None) -> tuple[dict | None, dict | None]:
    """Outline and fitting view of the URL's focused area (nothing without one)."""
    if not code or not has_request_context():
        return None, None
    with runtime().reads.connect() as conn:
        return area_focus.focus(conn, code)


def header(settings: Settings, user, area: str | None, outline: dict | None) -> html.Header:
    """Title, search box and area selector."""
    return html.Header(
        className="onemap-header",
        children=[
            html.H1(settings.title),
            side_panel.search_box(),
            area_focus.selector(area, outline),
            bigscreen.pin_control(settings, user),
            html.Div(
                className="user-box",
                children=[
                    html.Span(
                        f"{user.display_name or user.username}（{user.role.title}）", id="user-name"
                    ),
                    html.Form(  # signing out changes state: a POST carrying the CSRF token
                        html.Button(
                            "退出",
                            type="submit",
                            name="csrf_token",
                            value=csrf_token(),
                            className="logout",
                            style={
                                "background": "none",
                                "border": 0,
                                "padding": 0,
                                "font": "inherit",
                                "cursor": "pointer",
                            },
                        ),
                        method="post",
                        action="/logout",
                        style={"margin": 0},
                    ),
                ],
            ),
        ],
    )


def basemap_layers(settings: Settings) -> list:
    """Base layers: our own offline basemap first; online ones only as options."""
    bases = [dl.BaseLayer(dl.LayerGroup(), name="本地底图（离线）", checked=True)]
    if settings.tianditu_key:
        for layer, title in (("vec", "天地图矢量"), ("img", "天地图影像")):
            url = TIANDITU.format(s="{s}", layer=layer, key=settings.tianditu_key)
            bases.append(dl.BaseLayer(dl.TileLayer(url=url, subdomains="01234567"), name=title))
    bases.append(dl.BaseLayer(dl.TileLayer(url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                                           attribution="© OpenStreetMap"),
                              name="OpenStreetMap（需联网）"))  # fmt: skip
    return bases


MIN_ZOOM, MAX_ZOOM = 3, 20


def base_map(settings: Settings, outline: dict | None = None) -> dl.Map:
    """The map: district outlines, vector-tile host, focus outline, markers, controls."""
    return dl.Map(
        id=ids.MAP,
        center=[settings.map_center_lat, settings.map_center_lon],
        zoom=settings.map_zoom,
        # fixed limits: otherwise Leaflet derives them from the layers on the map, and a layer
        # that starts at its detail zoom (the cases under their heat map) would clamp the map
        minZoom=MIN_ZOOM,
        maxZoom=MAX_ZOOM,
        preferCanvas=True,
        trackViewport=True,
        className="onemap-map",
        children=[
            dl.LayersControl(basemap_layers(settings), position="topright"),
            dl.GeoJSON(
                id=ids.DISTRICT_LAYER,
                url=DISTRICT_URL,
                style=DISTRICT_STYLE,
                onEachFeature=MAP_JS("bindAreaLabel"),
                interactive=False,
            ),
            dl.LayerGroup(id=ids.VT_HOST, eventHandlers={"add": LAYER_JS("attach")}),
            dl.GeoJSON(
                id=ids.AREA_OUTLINE,
                data=outline,
                style=area_focus.OUTLINE_STYLE,
                interactive=False,
            ),
            dl.LayerGroup(id=ids.MARKER_LAYER),
            *analysis_panel.overlays(),
            *case_panel.overlays(),
            *parking_panel.overlays(),
            *drainage_panel.overlays(),
            *alarm_panel.overlays(),
            dl.ScaleControl(position="bottomleft", imperial=False),
            dl.FullScreenControl(position="topleft", title="全屏", titleCancel="退出全屏"),
        ],
    )


def register(app, settings: Settings) -> None:
    """Callbacks of every page area."""
    layer_tree.register(app)
    area_focus.register(app, settings)
    side_panel.register(app, settings)
    analysis_panel.register(app, settings)
    case_panel.register(app, settings)
    parking_panel.register(app, settings)
    drainage_panel.register(app, settings)
    alarm_panel.register(app, settings)
    bigscreen.register_pin(app, settings)


PAGE = Page(
    path="/", title="一张图", layout=layout, register=register, later=side_panel.lazy_panels
)
