"""Side panel: statistics (统计), object archive (档案), search (查询) and click-to-locate."""

from __future__ import annotations

import dash_leaflet as dl
from dash import ALL, ClientsideFunction, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics.duplicates import similar_to_case
from auth.accounts import User
from auth.web import client_ip, current_user
from callbacks import alarm_panel, analysis_panel, case_panel, drainage_panel, ids, parking_panel
from callbacks.ui import CODE_NAMES, acted, output_id_field, store
from errors import OneMapError
from layers.registry import REGISTRY
from params import parse_lonlat
from runtime import runtime
from services import layer_data
from services.archive import object_title, open_archive
from services.identify import click
from services.map_state import requested_layers
from services.search import search

STATS_ID = "stats-body"
ARCHIVE_ID = "archive-body"
RESULTS_ID = "search-results"
RESULTS_STORE = "search-results-data"
SEARCH_INPUT = "search-input"
SEARCH_BUTTON = "search-button"
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


# Analysis tabs are built on first opening (mount_panel): the page's first render carries and
# wires only what is shown, and their lists and timers start when someone looks at them.
LAZY_TABS = {
    "analysis": ("分析", analysis_panel.panel),
    "cases": ("案件分析", case_panel.panel),
    "parking": ("停车分析", parking_panel.panel),
    "drainage": ("排水分析", drainage_panel.panel),
    "alarms": ("预警", alarm_panel.panel),
}
LAZY_TOOLS = {"analysis": analysis_panel.draw_tool}  # map tools that come with their tab


def panel(user: User) -> dcc.Tabs:
    """Tabs of the side panel, each with a loading indicator (analysis tabs empty until opened)."""
    lazy = [dcc.Tab(label=label, value=value, children=dcc.Loading(html.Div(
                id=ids.panel_body(value), className="panel-body")))
            for value, (label, _build) in LAZY_TABS.items()]  # fmt: skip
    return dcc.Tabs(id=ids.PANEL_TABS, value="stats", className="panel-tabs", children=[
        dcc.Tab(label="统计", value="stats", children=dcc.Loading(html.Div(
            id=STATS_ID, children=html.P("地图加载后显示统计", className="hint")))),
        dcc.Tab(label="档案", value="archive", children=dcc.Loading(html.Div(
            id=ARCHIVE_ID, children=html.P("点击地图上的对象查看档案", className="hint")))),
        dcc.Tab(label="查询", value="search", children=[
            dcc.Loading(html.Div(id=RESULTS_ID)), dcc.Store(id=RESULTS_STORE),
            html.Div(id=LOCATION_ID, children=html.P("点击地图任意位置查询地址与网格", className="hint"))]),
        *lazy,
    ])  # fmt: skip


def lazy_panels(user: User) -> list:
    """Every lazily built tab's content and tools (for Dash's check of callback ids)."""
    return [[*mirrors(tab), build(user)] for tab, (_label, build) in LAZY_TABS.items()] + [
        tool() for tool in LAZY_TOOLS.values()
    ]


MIRRORED = ((ids.PANEL_TAB, ids.PANEL_TABS, "value"), (ids.PANEL_MAP_CLICK, ids.MAP, "clickData"),
            (ids.PANEL_OBJECT, ids.CLICKED_STORE, "data"))  # fmt: skip


def mirrors(tab: str, clicked=None) -> list:
    """The copies a lazily built tab's callbacks listen to: the open tab (this one), map clicks,
    and the object clicked before the tab was built."""
    return [dcc.Store(id=ids.in_panel(ids.PANEL_TAB, tab), data=tab),
            dcc.Store(id=ids.in_panel(ids.PANEL_MAP_CLICK, tab)),
            store(ids.in_panel(ids.PANEL_OBJECT, tab), clicked if isinstance(clicked, dict) else None)]  # fmt: skip


def listed_tabs(outputs) -> list:
    """The tab named by each output of a wildcard output list (sent by the page: untrusted)."""
    if not isinstance(outputs, list):
        raise PreventUpdate
    return [output_id_field(o, "tab") for o in outputs]


def mount_panel(tab, tabs: list[str], bodies, tool_tabs: list[str], user: User,
                clicked=None) -> tuple:  # fmt: skip
    """(tab bodies, map tools) after opening `tab`: its content built for this user (knowing the
    object clicked so far) and its map tools added if it was still empty, everything else left as
    it is."""
    if not isinstance(tab, str) or tab not in LAZY_TABS or tab not in tabs:
        raise PreventUpdate
    if not isinstance(bodies, list) or len(bodies) != len(tabs) or bodies[tabs.index(tab)]:
        raise PreventUpdate
    body = [[*mirrors(tab, clicked), LAZY_TABS[tab][1](user)] if t == tab else no_update
            for t in tabs]  # fmt: skip
    tools = [LAZY_TOOLS[t]() if t == tab and t in LAZY_TOOLS else no_update for t in tool_tabs]
    return body, tools


# --- statistics --------------------------------------------------------------------------


def stats_figures(conn, state, user: User) -> list:
    """One bar chart per visible layer (counts by its first code-list field) in the focus area."""
    if not user.role.analytics:
        return [html.P("当前角色不提供统计分析", className="hint")]
    wanted, area = requested_layers(state)
    out = []
    for layer_id, filters in wanted:
        layer = REGISTRY.get(layer_id) if isinstance(layer_id, str) else None
        by = next((f for f in layer.filterable if f.values), None) if layer else None
        if by is None or len(out) >= MAX_STATS_LAYERS:
            continue
        args = {**filters, "by": by.name}
        if area:
            args["area"] = area
        try:
            result = layer_data.stats(conn, user, layer_id, args)
        except OneMapError:
            continue  # a layer the role may not see, or a stale filter: no chart for it
        out.append(stats_card(layer, by, result))
    return out or [html.P("勾选有分类的图层后显示统计", className="hint")]


def stats_card(layer, by, result: dict) -> html.Div:
    """A titled bar list of one layer's counts: label, bar (longest = most) and count.

    Plain HTML, not a plotly figure: the statistics tab is open on every page load, and plotly's
    4.8 MB script would be fetched and compiled for it each time."""
    where = result["area_name"] or "全部区域"
    total = result["total"]
    title = html.H3(f"{layer.title}·按{by.title}（{where}，共 {total:,} 个）")
    if not result["groups"]:
        return html.Div(
            [title, html.P("该区域内没有数据", className="hint")], className="stats-card"
        )
    names = CODE_NAMES.get(by.name, {})
    top = max(g["count"] for g in result["groups"]) or 1
    rows = []
    for g in result["groups"]:
        label = names.get(g["value"], g["value"] or "（空）")
        share = f"{g['count'] / total:.1%}" if total else "—"
        bar = html.Div(className="stats-bar", style={
            "width": f"{100 * g['count'] / top:.1f}%", "background": layer.style.color})  # fmt: skip
        rows.append(html.Tr([html.Th(label, title=label), html.Td(bar, className="stats-bar-cell"),
                             html.Td(f"{g['count']:,}", title=share, className="stats-count")]))  # fmt: skip
    return html.Div([title, html.Table(rows, className="stats-bars")], className="stats-card")


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
        *similar_section(data.get("similar")),
    ])  # fmt: skip


def case_item(case: dict, listed: str = "related", detail: str = "") -> html.Li:
    """A case with its status and a button that zooms to it (ids unique per list and case)."""
    return html.Li([
        html.Span(case["status"], className=f"status status-{case['status']}"),
        f" {case['class_name']} {case['code']} {case['reported_at'][:10]}{detail}",
        html.Button("定位", id={"type": "zoom-to", "list": listed, "code": case["code"],
                               "lat": case["lat"], "lon": case["lon"]},
                    className="link-button"),
    ])  # fmt: skip


def similar_section(similar: dict | None) -> list:
    """相似案卷 of a case: open cases nearby of its class, best score first (none: said so)."""
    if similar is None:
        return []
    head = html.H4(f"相似案卷（{similar['count']}，疑似重复 {similar['likely_count']}）",
                   id="similar-title")  # fmt: skip
    rule = html.P(f"{similar['max_distance_m']} 米、前后 {similar['max_hours']:g} 小时内的同类未结案件；"
                  f"相似度 ≥ {similar['threshold']} 为疑似重复", className="hint")  # fmt: skip
    if not similar["rows"]:
        return [head, html.P("未发现相似案卷", className="hint", id="similar-none")]
    items = [case_item(c, "similar", f" · 相似度 {c['score']:.2f}{'（疑似重复）' if c['likely'] else ''}"
                       f" · {c['distance_m']:.0f} 米 · 相隔 {c['hours_apart']:.1f} 小时")
             for c in similar["rows"]]  # fmt: skip
    return [head, rule, html.Ul(items, className="case-list", id="similar-list")]


def fmt(value) -> str:
    """A readable attribute value."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


# --- search and reverse -------------------------------------------------------------------


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


def engine():
    """The engine of the app running this callback."""
    return runtime().engine


def error_note(exc: OneMapError) -> html.P:
    """A refused or invalid request, said in the panel."""
    return html.P(exc.message, className="error")


def register(app, settings) -> None:
    """Statistics, archive, search and map-click callbacks (each over one service)."""

    @app.callback(Output(STATS_ID, "children"), Input(ids.STATE_STORE, "data"),
                  Input(ids.MAP_DRAWN, "data"), prevent_initial_call=True)  # fmt: skip
    def _stats(state, _drawn):  # first asked for once the map has drawn its first view
        if not state:
            raise PreventUpdate
        with runtime().reads.connect() as conn:
            return stats_figures(conn, state, current_user())

    @app.callback(Output(ids.panel_body(ALL), "children"), Output(ids.panel_tools(ALL), "children"),
                  Input(ids.PANEL_TABS, "value"), State(ids.panel_body(ALL), "children"),
                  State(ids.CLICKED_STORE, "data"), prevent_initial_call=True)  # fmt: skip
    def _mount(tab, bodies, clicked):
        outputs = ctx.outputs_list if isinstance(ctx.outputs_list, list) else []
        if len(outputs) != 2:
            raise PreventUpdate
        tabs, tool_tabs = (listed_tabs(outs) for outs in outputs)
        return mount_panel(tab, tabs, bodies, tool_tabs, current_user(), clicked)

    for kind, source, prop in MIRRORED:
        app.clientside_callback(ClientsideFunction("onemap_panel", "mirror"),
                                Output(ids.in_panel(kind, ALL), "data"), Input(source, prop),
                                prevent_initial_call=True)  # fmt: skip

    @app.callback(Output(ARCHIVE_ID, "children"), Output(ids.PANEL_TABS, "value"),
                  Input(ids.CLICKED_STORE, "data"), prevent_initial_call=True)  # fmt: skip
    def _archive(clicked):
        if not isinstance(clicked, dict) or clicked.get("id") is None:
            raise PreventUpdate
        try:
            with engine().begin() as conn:
                user = current_user()
                data = open_archive(conn, user, clicked.get("layer"), clicked.get("id"),
                                    ip=client_ip())  # fmt: skip
                if data["layer"] == "case":
                    data["similar"] = similar_to_case(conn, data["attributes"]["code"], user.scope)
            return archive_view(data), "archive"
        except OneMapError as exc:
            return error_note(exc), "archive"

    @app.callback(Output(RESULTS_ID, "children"), Output(RESULTS_STORE, "data"),
                  Output(ids.PANEL_TABS, "value", allow_duplicate=True),
                  Input(SEARCH_INPUT, "n_submit"), Input(SEARCH_BUTTON, "n_clicks"),
                  State(SEARCH_INPUT, "value"), prevent_initial_call=True)  # fmt: skip
    def _search(_n1, _n2, text):
        try:
            with runtime().reads.connect() as conn:
                hits = search(conn, current_user(), text if text is not None else "")
        except OneMapError as exc:
            return error_note(exc), [], "search"
        items = [html.Li(html.Button(h["title"], id={"type": "search-hit", "index": i},
                                     className="hit")) for i, h in enumerate(hits)]  # fmt: skip
        body = (
            html.Ul(items, className="hits")
            if items
            else html.P("没有找到匹配的结果", className="hint")
        )
        return body, hits, "search"

    @app.callback(Output(ids.MARKER_LAYER, "children"),
                  Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input({"type": "search-hit", "index": ALL}, "n_clicks"),
                  Input({"type": "zoom-to", "list": ALL, "code": ALL, "lat": ALL, "lon": ALL},
                        "n_clicks"),
                  State(RESULTS_STORE, "data"), prevent_initial_call=True)  # fmt: skip
    def _go(_hits, _zooms, hits):
        trigger = ctx.triggered_id
        if not trigger or not acted():
            raise PreventUpdate
        try:
            lat, lon, text = chosen_place(trigger, hits)
        except (OneMapError, LookupError, TypeError):
            raise PreventUpdate from None
        return marker(lat, lon, text), {"center": [lat, lon], "zoom": 18}

    @app.callback(
        Output(LOCATION_ID, "children"),
        Output(ids.CLICKED_STORE, "data"),
        Output(ids.MARKER_LAYER, "children", allow_duplicate=True),
        Output(ids.PANEL_TABS, "value", allow_duplicate=True),
        Input(ids.MAP, "clickData"),
        State(ids.STATE_STORE, "data"),
        State(ids.MAP, "zoom"),
        State(ids.PANEL_TABS, "value"),
        prevent_initial_call=True,
    )
    def _click(clicked, state, zoom, tab):
        latlng = clicked.get("latlng") if isinstance(clicked, dict) else None
        if not isinstance(latlng, dict):
            raise PreventUpdate
        user = current_user()
        try:
            with runtime().reads.connect() as conn:
                found = click(conn, user, latlng.get("lng"), latlng.get("lat"), zoom, state)
                hit = found["hit"]
                title = object_title(conn, user, hit["layer"], hit["id"]) if hit else None
        except OneMapError as exc:
            return error_note(exc), no_update, [], "search"
        where = location_view(found["place"])
        if hit is None:  # an empty spot: 查询 answers, unless a panel that uses clicks is open
            return where, no_update, [], no_update if tab in CLICK_PANELS else "search"
        lat, lon = found["place"]["lat"], found["place"]["lon"]
        popup = dl.Popup(position=[lat, lon], children=[html.B(title[0]), html.Br(), title[1]],
                         className="onemap-popup")  # fmt: skip
        return where, {**hit, "lat": lat, "lon": lon}, [popup], no_update


CLICK_PANELS = ("alarms", "parking", "drainage")  # tabs that answer a map click themselves


def chosen_place(trigger: dict, hits) -> tuple[float, float, str]:
    """(lat, lon, label) of a clicked search hit or a related case's zoom button."""
    if trigger.get("type") == "search-hit":
        hit = hits[int(trigger["index"])]
        lon, lat = parse_lonlat(hit["lon"], hit["lat"])
        return lat, lon, str(hit["title"])[:100]
    lon, lat = parse_lonlat(trigger.get("lon"), trigger.get("lat"))
    return lat, lon, "案件位置"
