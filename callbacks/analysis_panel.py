"""The 分析 panel of the map page: coverage of parks and facilities, what-if and siting.

Thin callbacks over `analytics.contract.run_analysis` (the same function as /api/analytics): the
inputs are passed raw and validated there; results come back as figures, a table by sub-area
with the 80 % / 90 % target lines, overlays on the map and export links.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import dash_leaflet as dl
import plotly.graph_objects as go
from dash import Input, Output, State, ctx, dash_table, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics.coverage_rules import PARK_RULES
from auth.accounts import User
from callbacks import ids
from callbacks.analyses import run
from callbacks.ui import acted
from errors import OneMapError

FACILITY = "an-facility"
MODE = "an-mode"
RULES = "an-rules"
RULES_RESET = "an-rules-reset"
RUN = "an-run"
RESULT = "an-result"
SITE_K = "an-site-k"
SITE_SIZE = "an-site-size"
SITE_RUN = "an-site-run"
SITES = "an-sites"
WHAT_IF = "an-what-if"
UNCOVERED = "an-uncovered"
NEWLY = "an-newly"
SITE_MARKERS = "an-site-markers"
DRAW = "an-draw"
DRAW_PURPOSE = "an-draw-purpose"
DRAWN_AREA = "an-drawn-area"
DEFAULT_RULES = ",".join(r.text() for r in PARK_RULES)
FACILITIES = [{"label": "公园绿地", "value": "park"}, {"label": "公共厕所", "value": "toilet"},
              {"label": "垃圾收集点", "value": "collection_point"},
              {"label": "垃圾中转站", "value": "transfer_station"},
              {"label": "视频监控（道路）", "value": "camera"}]  # fmt: skip
UNCOVERED_STYLE = {"color": "#c62828", "weight": 2, "fillColor": "#ef5350", "fillOpacity": 0.45}
NEWLY_STYLE = {"color": "#1b5e20", "weight": 1, "fillColor": "#66bb6a", "fillOpacity": 0.6}
TARGETS = (80, 90)


def panel(user: User) -> html.Div:
    """Controls of the analysis tab (shown only to roles with analytics)."""
    hidden = None if user.role.analytics else {"display": "none"}
    return html.Div(className="analysis-panel", children=[
        html.P("当前角色不提供分析", className="hint") if hidden else None,
        html.Div(style=hidden, children=[
            html.Label("设施"), dcc.Dropdown(id=FACILITY, options=FACILITIES, value="park",
                                           clearable=False),
            html.Label("可达方式"), dcc.RadioItems(id=MODE, value="euclidean", inline=True, options=[
                {"label": "直线距离", "value": "euclidean"}, {"label": "步行路网", "value": "network"}]),
            html.Label("服务半径规则（最小面积 m²:半径 m[:h 仅历史地段]）"),
            html.Div([dcc.Input(id=RULES, value=DEFAULT_RULES, debounce=True, className="rules-input"),
                      html.Button("恢复默认", id=RULES_RESET, className="link-button")]),
            html.Label("地图绘制用途"),
            dcc.RadioItems(id=DRAW_PURPOSE, value="what-if", inline=True, options=[
                {"label": "拟建公园推演", "value": "what-if"}, {"label": "分析范围", "value": "area"}]),
            dcc.Store(id=DRAWN_AREA),
            html.P("区域：绘制的分析范围；否则页首所选区域（未选择时为全部）", className="hint",
                   id="an-area-hint"),
            html.Button("运行分析", id=RUN, n_clicks=0, className="primary"),
            dcc.Loading(html.Div(id=RESULT)),
            html.H4("拟建公园推演"),
            html.P("绘制用途选“拟建公园推演”，用地图左侧的绘制工具画出拟建公园，即时查看覆盖率变化；"
                   "删除图形即恢复。", className="hint"),
            dcc.Loading(html.Div(id=WHAT_IF)),
            html.H4("公园选址建议"),
            html.Div(className="site-controls", children=[
                html.Label("选址数"), dcc.Input(id=SITE_K, type="number", value=3, min=1, max=10),
                html.Label("面积(m²)"), dcc.Input(id=SITE_SIZE, type="number", value=5000, min=1000,
                                                 max=200000, step=500),
                html.Button("选址", id=SITE_RUN, n_clicks=0)]),
            dcc.Loading(html.Div(id=SITES)),
            legend(),
        ]),
    ])  # fmt: skip


def legend() -> html.Ul:
    """Legend of the analysis overlays."""
    rows = [("未覆盖居住用地 / 监控盲区道路", UNCOVERED_STYLE["fillColor"]),
            ("推演新增覆盖", NEWLY_STYLE["fillColor"]),
            ("建议选址", "#1565c0")]  # fmt: skip
    return html.Ul([html.Li([html.Span(className="swatch box", style={"background": c}), t])
                    for t, c in rows], className="legend")  # fmt: skip


def overlays() -> list:
    """Map layers of the analysis: uncovered land, newly covered land, sites, the drawing tool's
    group."""
    return [
        dl.GeoJSON(id=UNCOVERED, style=UNCOVERED_STYLE, interactive=False),
        dl.GeoJSON(id=NEWLY, style=NEWLY_STYLE, interactive=False),
        dl.LayerGroup(id=SITE_MARKERS),
        dl.FeatureGroup(id=ids.panel_tools("analysis")),  # draw_tool, once the tab is opened
    ]


def draw_tool() -> dl.EditControl:
    """The drawing tool (polygon, rectangle) for what-if parks and analysis areas."""
    return dl.EditControl(id=DRAW, position="topleft", draw={
        "polygon": True, "rectangle": True, "polyline": False, "circle": False,
        "marker": False, "circlemarker": False}, edit={"edit": False})  # fmt: skip


def analysis_of(facility: str) -> tuple[str, dict]:
    """The analysis id and fixed parameters for a facility choice."""
    if facility == "park":
        return "park-coverage", {}
    return "service-coverage", {"kind": facility}


def fmt_pct(value) -> str:
    """A percentage for display."""
    return "—" if value is None else f"{value:.2f}%"


def figures_view(result: dict) -> html.Div:
    """The headline figures, both modes side by side where the analysis has them."""
    rows = [("覆盖率", fmt_pct(result.get("coverage_pct")))]
    side = result.get("side_by_side")
    if side:
        rows += [("直线距离覆盖率", fmt_pct(side["euclidean"]["coverage_pct"])),
                 ("步行路网覆盖率", fmt_pct(side["network"]["coverage_pct"]))]  # fmt: skip
    for key, title in (("residential_area_m2", "居住用地(m²)"), ("covered_area_m2", "覆盖(m²)"),
                       ("population", "人口"), ("served_population", "服务人口"),
                       ("park_area_per_capita_m2", "人均公园绿地(m²)"), ("road_length_m", "道路长度(m)"),
                       ("covered_length_m", "覆盖道路(m)")):  # fmt: skip
        if result.get(key) is not None:
            rows.append((title, f"{result[key]:,}"))
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows],
                      className="attr-table", id="an-figures")  # fmt: skip


def area_chart(rows: list[dict]) -> dcc.Graph:
    """Coverage by sub-area with the 80 % and 90 % target lines."""
    fig = go.Figure(go.Bar(x=[r["name"] for r in rows], y=[r["coverage_pct"] or 0 for r in rows],
                           marker_color="#2e7d32"))  # fmt: skip
    for target in TARGETS:
        fig.add_hline(y=target, line_dash="dash", line_color="#c62828",
                      annotation_text=f"{target}%", annotation_position="top left")  # fmt: skip
    fig.update_layout(height=220, margin={"l": 8, "r": 8, "t": 8, "b": 8}, yaxis={"range": [0, 100]},
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font={"size": 10})  # fmt: skip
    return dcc.Graph(figure=fig, config={"displayModeBar": False})


def area_table(rows: list[dict]) -> dash_table.DataTable:
    """The by-area table (sortable)."""
    columns = [("name", "区域"), ("coverage_pct", "覆盖率(%)"), ("coverage_pct_euclidean", "直线(%)"),
               ("coverage_pct_network", "步行(%)"), ("residential_area_m2", "居住用地(m²)"),
               ("covered_area_m2", "覆盖(m²)"), ("road_length_m", "道路(m)"),
               ("covered_length_m", "覆盖道路(m)")]  # fmt: skip
    present = [(k, t) for k, t in columns if rows and k in rows[0]]
    return dash_table.DataTable(data=rows, columns=[{"id": k, "name": t} for k, t in present],
                                sort_action="native", page_size=12, id="an-table",
                                style_cell={"fontSize": 11, "padding": "2px 4px"})  # fmt: skip


def export_links(analysis_id: str, params: dict) -> html.Div:
    """Download links: GeoJSON (the gaps), CSV and XLSX (the tables)."""
    query = urlencode({k: json.dumps(v) if isinstance(v, dict) else v
                       for k, v in params.items() if v not in (None, "")})  # fmt: skip
    base = f"/api/analytics/{analysis_id}"
    return html.Div(className="exports", children=[
        html.A("GeoJSON", href=f"{base}?{query}&format=geojson", download=f"{analysis_id}.geojson"),
        html.A("CSV", href=f"{base}/export.csv?{query}"),
        html.A("XLSX", href=f"{base}/export.xlsx?{query}"),
    ])  # fmt: skip


def result_view(analysis_id: str, params: dict, body: dict) -> html.Div:
    """Figures, chart, table and exports of one run."""
    result = body["result"]
    # sub-areas without residential land or roads have no figure: they would only clutter
    rows = [r for r in result.get("by_area") or []
            if r.get("residential_area_m2") or r.get("road_length_m")]  # fmt: skip
    return html.Div([
        html.H4(f"{body['title']} · {result.get('area_name', '')}"),
        figures_view(result), area_chart(rows) if rows else None,
        area_table(rows) if rows else None, export_links(analysis_id, params),
    ])  # fmt: skip


def error_view(exc: OneMapError) -> html.P:
    """A refused or invalid run, said in the panel."""
    return html.P(exc.message, className="error")


def site_markers(sites: list[dict]) -> list:
    """Numbered markers of the suggested sites."""
    return [dl.CircleMarker(center=[s["lat"], s["lon"]], radius=9, color="#1565c0", fillOpacity=0.8,
                            children=dl.Tooltip(f"选址 {s['rank']}：+{s['gain_pct']}%", permanent=True))
            for s in sites]  # fmt: skip


def drawn_polygon(geojson) -> dict | None:
    """The last polygon drawn with the edit control, if any."""
    feats = geojson.get("features") if isinstance(geojson, dict) else None
    polys = [f for f in feats or [] if isinstance(f, dict)
             and (f.get("geometry") or {}).get("type") in ("Polygon", "MultiPolygon")]  # fmt: skip
    return polys[-1]["geometry"] if polys else None


def what_if_view(polygon, mode, rules, area) -> tuple:
    """The what-if answer for a drawn park (or a hint when none is drawn)."""
    if polygon is None:
        return html.P("没有拟建公园", className="hint"), None
    try:
        body = run("park-coverage-what-if", {"geometry": polygon, "area": area or None,
                                             "mode": mode, "rules": rules})  # fmt: skip
    except OneMapError as exc:
        return error_view(exc), None
    r = body["result"]
    return html.Div([
        html.P(f"拟建公园 {r['candidate']['area_m2']:,.0f} m²，服务半径 {r['candidate']['radius_m']:g} m"),
        html.P(f"覆盖率 {fmt_pct(r['before']['coverage_pct'])} → {fmt_pct(r['coverage_pct'])}"
               f"（+{r['gain_pct']:.2f}%）", id="an-what-if-gain"),
    ]), r["newly_covered"]  # fmt: skip


def register(app, settings) -> None:
    """Run, reset rules, what-if on drawing, siting."""

    @app.callback(Output(RULES, "value"), Input(RULES_RESET, "n_clicks"), prevent_initial_call=True)
    def _reset(_n):
        return DEFAULT_RULES

    @app.callback(Output(RESULT, "children"), Output(UNCOVERED, "data"),
                  Input(RUN, "n_clicks"), State(FACILITY, "value"), State(MODE, "value"),
                  State(RULES, "value"), State(ids.AREA_VALUE, "data"), State(DRAWN_AREA, "data"),
                  prevent_initial_call=True)  # fmt: skip
    def _run(_n, facility, mode, rules, area, drawn_area):
        if not acted():  # the tab was just built: nothing clicked yet
            raise PreventUpdate
        analysis_id, params = analysis_of(facility if isinstance(facility, str) else "")
        params |= (
            {"area": area or None, "mode": mode} if facility != "camera" else {"area": area or None}
        )
        if facility == "park":
            params["rules"] = rules
            if drawn_area:  # a drawn area replaces the focused one
                params |= {"area": None, "geometry": drawn_area}
        try:
            body = run(analysis_id, params)
            gaps = run(analysis_id, {**params, "format": "geojson"})["result"]
        except OneMapError as exc:
            return error_view(exc), None
        return result_view(analysis_id, params, body), gaps  # uncovered housing, or blind roads

    @app.callback(Output(WHAT_IF, "children"), Output(NEWLY, "data"), Output(DRAWN_AREA, "data"),
                  Input(DRAW, "geojson"), State(DRAW_PURPOSE, "value"), State(MODE, "value"),
                  State(RULES, "value"), State(ids.AREA_VALUE, "data"), prevent_initial_call=True)  # fmt: skip
    def _drawn(drawn, purpose, mode, rules, area):
        polygon = drawn_polygon(drawn)
        if purpose == "area":
            note = "已设定绘制的分析范围，点击“运行分析”" if polygon else "未绘制分析范围"
            return html.P(note, className="hint"), None, polygon
        view, newly = what_if_view(polygon, mode, rules, area)
        return view, newly, None

    @app.callback(Output(SITES, "children"), Output(SITE_MARKERS, "children"),
                  Input(SITE_RUN, "n_clicks"), State(SITE_K, "value"), State(SITE_SIZE, "value"),
                  State(RULES, "value"), State(ids.AREA_VALUE, "data"), prevent_initial_call=True)  # fmt: skip
    def _sites(_n, k, size, rules, area):
        if not acted():  # the tab was just built: nothing clicked yet
            raise PreventUpdate
        if not ctx.triggered_id:
            raise PreventUpdate
        params = {"area": area or None, "k": k, "size_m2": size, "rules": rules}
        try:
            body = run("park-siting", params)
        except OneMapError as exc:
            return error_view(exc), no_update
        sites = body["result"]["sites"]
        table = dash_table.DataTable(data=sites, id="an-site-table", columns=[
            {"id": "rank", "name": "名次"}, {"id": "gain_pct", "name": "覆盖率增量(%)"},
            {"id": "coverage_pct_after", "name": "选址后(%)"}, {"id": "lon", "name": "经度"},
            {"id": "lat", "name": "纬度"}], style_cell={"fontSize": 11})  # fmt: skip
        return html.Div([table, export_links("park-siting", params)]), site_markers(sites)
