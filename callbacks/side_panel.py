"""Side panel: statistics (统计), object archive (档案), search (查询) and click-to-locate."""

from __future__ import annotations

import dash_leaflet as dl
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from auth.access import check_archives, layer_allowed, redact, scoped, user_filters
from auth.web import current_user
from callbacks.ui import CODE_NAMES
from errors import OneMapError
from geodata import accounts
from geodata.archive import object_archive
from geodata.db import engine_for
from geodata.geocoding import geocode, reverse
from geodata.identify import identify
from geodata.layer_sql import point_in_scope
from geodata.queries import search_codes
from geodata.stats import layer_stats
from layers.registry import REGISTRY

TABS_ID = "panel-tabs"
STATS_ID = "stats-body"
ARCHIVE_ID = "archive-body"
RESULTS_ID = "search-results"
RESULTS_STORE = "search-results-data"
SEARCH_INPUT = "search-input"
SEARCH_BUTTON = "search-button"
MARKER_LAYER_ID = "marker-layer"
LOCATION_ID = "location-body"
MAX_STATS_LAYERS = 4


def search_box() -> html.Div:
    """One box for addresses, POIs, component codes and unit-grid codes."""
    return html.Div(
        className="search-box",
        children=[
            dcc.Input(
                id=SEARCH_INPUT,
                type="search",
                debounce=True,
                n_submit=0,
                placeholder="搜索地址、兴趣点、部件编码、网格编码",
            ),
            html.Button("搜索", id=SEARCH_BUTTON, n_clicks=0),
        ],
    )


def panel() -> dcc.Tabs:
    """Tabs of the side panel, each with a loading indicator."""
    return dcc.Tabs(id=TABS_ID, value="stats", className="panel-tabs", children=[
        dcc.Tab(label="统计", value="stats", children=dcc.Loading(html.Div(id=STATS_ID))),
        dcc.Tab(label="档案", value="archive", children=dcc.Loading(html.Div(
            id=ARCHIVE_ID, children=html.P("点击地图上的对象查看档案", className="hint")))),
        dcc.Tab(label="查询", value="search", children=[
            dcc.Loading(html.Div(id=RESULTS_ID)), dcc.Store(id=RESULTS_STORE),
            html.Div(id=LOCATION_ID, children=html.P("点击地图任意位置查询地址与网格", className="hint"))]),
    ])  # fmt: skip


# --- statistics --------------------------------------------------------------------------


def stats_figures(conn, state: dict, user) -> list:
    """One bar chart per visible layer (counts by its first code-list field) in the focus area."""
    out = []
    area = state.get("area")
    for layer_id, cfg in list(state.get("layers", {}).items()):
        layer = REGISTRY.get(layer_id)
        if layer is None or not layer_allowed(user, layer):
            continue
        by = next((f for f in (layer.filterable if layer else ()) if f.values), None)
        if by is None or len(out) >= MAX_STATS_LAYERS:
            continue
        filters = user_filters(user, layer, cfg.get("filters", {}), ignore=set())
        result = layer_stats(conn, layer, area=area, by=by, filters=filters)
        out.append(stats_card(layer, by, result))
    return out or [html.P("勾选有分类的图层后显示统计", className="hint")]


def stats_card(layer, by, result: dict) -> html.Div:
    """A titled plotly bar chart of one layer's counts."""
    where = result["area_name"] or "全部区域"
    title = html.H3(f"{layer.title}·按{by.title}（{where}，共 {result['total']:,} 个）")
    if not result["groups"]:
        return html.Div(
            [title, html.P("该区域内没有数据", className="hint")], className="stats-card"
        )
    names = CODE_NAMES.get(by.name, {})
    labels = [names.get(g["value"], g["value"] or "（空）") for g in result["groups"]]
    fig = go.Figure(go.Bar(x=[g["count"] for g in result["groups"]], y=labels, orientation="h",
                           marker_color=layer.style.color))  # fmt: skip
    fig.update_layout(height=60 + 22 * len(labels), margin={"l": 8, "r": 8, "t": 8, "b": 8},
                      yaxis={"autorange": "reversed"}, font={"size": 11},
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")  # fmt: skip
    return html.Div(className="stats-card", children=[
        title,
        dcc.Graph(figure=fig, config={"displayModeBar": False}),
    ])  # fmt: skip


# --- archive ------------------------------------------------------------------------------


COLUMN_TITLES = {
    "data_source": "数据来源", "initial_date": "初始日期", "change_date": "变更日期", "remark": "备注",
    "photo_url": "照片", "stream_url": "视频流", "name": "名称", "code": "编码", "status": "状态",
    "reported_at": "上报时间", "registered_at": "立案时间", "dispatched_at": "派遣时间",
    "handled_at": "处置时间", "verified_at": "核查时间", "closed_at": "结案时间", "deadline": "处置时限",
    "address": "地址", "source": "来源", "component_id": "关联部件", "kind": "类型",
    "capacity": "容量", "lot_type": "类型", "fee": "收费", "online": "在线", "area_m2": "面积(m²)",
    "population": "人口", "land_use": "用地性质", "level": "级别", "parent_code": "上级代码",
}  # fmt: skip


def archive_view(data: dict) -> html.Div:
    """The archive (档案) of one object: attributes, place, owner, media, related cases."""
    attrs, titles = data["attributes"], data["titles"]
    rows = [html.Tr([html.Th(titles.get(k) or COLUMN_TITLES.get(k, k)), html.Td(fmt(v))])
            for k, v in attrs.items() if v is not None and k != "id"]  # fmt: skip
    place = data["place"]
    where = [html.Tr([html.Th(t), html.Td(place.get(k) or "—")]) for k, t in (
        ("grid_code", "单元网格"), ("community_name", "社区"), ("street_name", "街道"),
        ("district_name", "区县"))]  # fmt: skip
    media = []
    for key, label in (("photo_url", "照片"), ("stream_url", "视频流")):
        if attrs.get(key):
            media.append(html.A(label, href=attrs[key], target="_blank", rel="noopener"))
    return html.Div(className="archive", children=[
        html.H3(f"{data['layer_title']} · {attrs.get('code') or attrs.get('name') or data['id']}",
                id="archive-title"),
        html.Table(rows + where, className="attr-table"), *media,
        html.H4(f"相关案件（{len(data['related_cases'])}）"),
        html.Ul([case_item(c) for c in data["related_cases"]] or [html.Li("无")],
                className="case-list"),
    ])  # fmt: skip


def case_item(case: dict) -> html.Li:
    """A related case with its status and a button that zooms to it."""
    return html.Li([
        html.Span(case["status"], className=f"status status-{case['status']}"),
        f" {case['class_name']} {case['code']} {case['reported_at'][:10]}",
        html.Button("定位", id={"type": "zoom-to", "lat": case["lat"], "lon": case["lon"]},
                    className="link-button"),
    ])  # fmt: skip


def fmt(value) -> str:
    """A readable attribute value."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


# --- search and reverse -------------------------------------------------------------------


def search(conn, text: str, user) -> list[dict]:
    """Hits for a query: codes when it is digits, else addresses and POIs."""
    q = text.strip()
    if q.isdigit() and len(q) >= 6:
        return [{"title": f"{h['title']} {h['code']}", "lat": h["lat"], "lon": h["lon"],
                 "layer": f"component_{h['major']}" if h["kind"] == "component" else "unit_grid",
                 "id": h["id"]} for h in search_codes(conn, q)
                if not user.scope or point_in_scope(conn, h["lon"], h["lat"], user.scope)]  # fmt: skip
    return [{"title": h["address"], "lat": h["lat"], "lon": h["lon"], "layer": "geocode",
             "id": h["id"]} for h in geocode(conn, q, 10, user.scope)]  # fmt: skip


def marker(lat: float, lon: float, text: str) -> list:
    """The marker of a chosen search hit or clicked place."""
    return [dl.Marker(position=[lat, lon], children=dl.Tooltip(text, permanent=True),
                      id="search-marker")]  # fmt: skip


def location_view(info: dict) -> html.Div:
    """The reverse-geocoding answer for a clicked point."""
    near = info["nearest_address"]
    rows = [("最近地址", f"{near['address']}（{near['distance_m']:.0f} 米）" if near else "—"),
            ("单元网格", info["grid_code"] or "—"),
            ("社区", (info["community"] or {}).get("name", "—")),
            ("街道", (info["street"] or {}).get("name", "—")),
            ("区县", (info["district"] or {}).get("name", "—"))]  # fmt: skip
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows],
                      className="attr-table", id="location-table")  # fmt: skip


def visible(state: dict | None, user) -> list:
    """(layer, filters) of the layers the user has switched on."""
    out = []
    area = (state or {}).get("area")
    for layer_id, cfg in ((state or {}).get("layers") or {}).items():
        layer = REGISTRY.get(layer_id)
        if layer is not None and layer_allowed(user, layer):
            args = dict(cfg.get("filters", {}))
            if area and layer.group != "基础":  # as on the map: base layers are not cut
                args["area"] = area
            out.append((layer, user_filters(user, layer, args, ignore=set())))
    return out


def popup_title(conn, hit: dict, user) -> list:
    """Name and code of an identified object, for its popup."""
    attrs = object_archive(conn, REGISTRY[hit["layer"]], hit["id"], scoped(user, []))["attributes"]
    name = attrs.get("name") or attrs.get("class_name") or attrs.get("address") or ""
    return [html.B(name or REGISTRY[hit["layer"]].title), html.Br(), attrs.get("code") or ""]


def open_archive(conn, layer, object_id: int) -> dict:
    """The archive as the current user may see it; restricted views are audited."""
    user = current_user()
    check_archives(user)
    data = object_archive(conn, layer, object_id, scoped(user, []))
    if layer.restricted:
        accounts.audit(conn, user.username, "archive_view", f"{layer.id}/{object_id}")
    return redact(data, user)


def register(app, settings) -> None:
    """Statistics, archive, search and map-click callbacks."""
    engine = lambda: engine_for(settings)  # noqa: E731 - created on first use

    @app.callback(Output(STATS_ID, "children"), Input("map-state", "data"))
    def _stats(state):
        if not state:
            raise PreventUpdate
        with engine().connect() as conn:
            return stats_figures(conn, state, current_user())

    @app.callback(Output(ARCHIVE_ID, "children"), Output(TABS_ID, "value"),
                  Input("clicked-object", "data"), prevent_initial_call=True)  # fmt: skip
    def _archive(clicked):
        layer = REGISTRY.get((clicked or {}).get("layer"))
        if layer is None or clicked.get("id") is None:
            raise PreventUpdate
        try:
            with engine().begin() as conn:
                return archive_view(open_archive(conn, layer, int(clicked["id"]))), "archive"
        except OneMapError as exc:
            return html.P(exc.message, className="error"), "archive"

    @app.callback(Output(RESULTS_ID, "children"), Output(RESULTS_STORE, "data"),
                  Output(TABS_ID, "value", allow_duplicate=True),
                  Input(SEARCH_INPUT, "n_submit"), Input(SEARCH_BUTTON, "n_clicks"),
                  State(SEARCH_INPUT, "value"), prevent_initial_call=True)  # fmt: skip
    def _search(_n1, _n2, text):
        if not text or not text.strip():
            return html.P("请输入地址、兴趣点或编码", className="hint"), [], "search"
        with engine().connect() as conn:
            hits = search(conn, text[:100], current_user())
        items = [html.Li(html.Button(h["title"], id={"type": "search-hit", "index": i},
                                     className="hit")) for i, h in enumerate(hits)]  # fmt: skip
        body = (
            html.Ul(items, className="hits")
            if items
            else html.P("没有找到匹配的结果", className="hint")
        )
        return body, hits, "search"

    @app.callback(Output(MARKER_LAYER_ID, "children"),
                  Output("view-request", "data", allow_duplicate=True),
                  Input({"type": "search-hit", "index": ALL}, "n_clicks"),
                  Input({"type": "zoom-to", "lat": ALL, "lon": ALL}, "n_clicks"),
                  State(RESULTS_STORE, "data"), prevent_initial_call=True)  # fmt: skip
    def _go(_hits, _zooms, hits):
        trigger = ctx.triggered_id
        if not trigger or not any(t["value"] for t in ctx.triggered):
            raise PreventUpdate
        if trigger["type"] == "search-hit":
            hit = hits[trigger["index"]]
            lat, lon, text = hit["lat"], hit["lon"], hit["title"]
        else:
            lat, lon, text = trigger["lat"], trigger["lon"], "案件位置"
        return marker(lat, lon, text), {"center": [lat, lon], "zoom": 18}

    @app.callback(
        Output(LOCATION_ID, "children"),
        Output("clicked-object", "data"),
        Output(MARKER_LAYER_ID, "children", allow_duplicate=True),
        Output(TABS_ID, "value", allow_duplicate=True),
        Input("onemap-map", "clickData"),
        State("map-state", "data"),
        State("onemap-map", "zoom"),
        prevent_initial_call=True,
    )
    def _click(click, state, zoom):
        if not click or "latlng" not in click:
            raise PreventUpdate
        lat, lon = click["latlng"]["lat"], click["latlng"]["lng"]
        with engine().connect() as conn:
            user = current_user()
            if user.scope and not point_in_scope(conn, lon, lat, user.scope):
                return html.P("该位置不在您的管辖范围内", className="hint"), no_update, [], "search"
            where = location_view(reverse(conn, lon, lat))
            hit = identify(conn, visible(state, user), lon, lat, int(zoom or 0))
            if hit is None:
                return where, no_update, [], "search"
            title = popup_title(conn, hit, user)
        popup = dl.Popup(position=[lat, lon], children=title, className="onemap-popup")
        return where, {**hit, "lat": lat, "lon": lon}, [popup], no_update
