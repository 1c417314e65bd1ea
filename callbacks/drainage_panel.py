"""The 排水分析 panel of the map page: network trace, upstream catchment, data quality, pipe risk.

Thin callbacks over `analytics.contract.run_analysis` (the same function as /api/analytics/...):
every control is passed raw and validated there. Clicking a well or a pipe on the map fills in its
code. One overlay shows the last result (traced pipes and wells, catchment parcels and grids,
pipes with a quality issue, or pipes coloured by risk); a click on a table row zooms to it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import dash_leaflet as dl
from dash import Input, Output, State, ctx, dash_table, dcc, html
from dash.exceptions import PreventUpdate
from dash_extensions.javascript import Namespace

from auth.accounts import User
from auth.web import current_user
from callbacks import ids
from callbacks.analyses import run
from callbacks.ui import acted, row_view
from errors import OneMapError
from runtime import runtime
from services.archive import object_title

CODE = "dr-code"
CLICKED = ids.in_panel(ids.PANEL_OBJECT, "drainage")  # the clicked object, seen from the tab
DIRECTION = "dr-direction"
TRACE = "dr-trace"
CATCHMENT = "dr-catchment"
QUALITY = "dr-quality"
RISK = "dr-risk"
RESULT = "dr-result"
TABLE = "dr-table"
OVERLAY = "dr-overlay"
DRAIN_LAYERS = ("drain_well", "drain_pipe")
MAX_OVERLAY = 5000
LEVEL_COLOURS = {"高": "#c62828", "中": "#f9a825", "低": "#2e7d32"}
MAP_JS = Namespace("onemap", "map")
COLUMNS = {  # the table's columns per result
    "quality": (("check_label", "问题"), ("code", "管线"), ("diameter_mm", "管径(mm)"),
                ("detail", "说明")),
    "risk": (("rank", "名次"), ("code", "管线"), ("score", "风险分"), ("level", "等级"),
             ("reasons", "主要因素")),
    "catchment": (("object", "类型"), ("code", "编码"), ("name", "名称"), ("area_m2", "面积(m²)"),
                  ("population", "人口")),
}  # fmt: skip


def panel(user: User) -> html.Div:
    """Controls and result areas of the drainage tab (roles with analytics only)."""
    if not user.role.analytics:
        return html.Div(html.P("当前角色不提供排水分析", className="hint"))
    return html.Div(className="analysis-panel drainage-panel", children=[
        html.Label("检查井或管线编码（点击地图上的检查井或管线自动填入）"),
        dcc.Input(id=CODE, type="text", debounce=True, placeholder="如 W370102000001",
                  className="rules-input"),
        dcc.RadioItems(id=DIRECTION, value="down", inline=True, options=[
            {"label": "向下游（至排口）", "value": "down"},
            {"label": "向上游（汇入管网）", "value": "up"}]),
        html.Div(className="site-controls", children=[
            html.Button("管网追踪", id=TRACE, n_clicks=0, className="primary"),
            html.Button("上游汇水范围", id=CATCHMENT, n_clicks=0)]),
        html.H4("全区分析（页首所选区域）"),
        html.Div(className="site-controls", children=[
            html.Button("数据质量检查", id=QUALITY, n_clicks=0),
            html.Button("管线隐患排查", id=RISK, n_clicks=0)]),
        legend(),
        dcc.Loading(html.Div(id=RESULT)),
        dash_table.DataTable(id=TABLE, data=[], columns=[], page_size=12, sort_action="native",
                             style_cell={"fontSize": 11, "cursor": "pointer",
                                         "whiteSpace": "normal", "textAlign": "left"}),
    ])  # fmt: skip


def legend() -> html.Ul:
    """Colours of the drainage overlay."""
    rows = [("追踪的管线 / 检查井", "#1565c0"), ("环路上的管线", "#c62828"),
            ("汇水地块与单元网格", "#26a69a"), ("数据质量问题", "#ef6c00"),
            *((f"隐患等级：{k}", c) for k, c in LEVEL_COLOURS.items())]  # fmt: skip
    return html.Ul([html.Li([html.Span(className="swatch box", style={"background": c}), t])
                    for t, c in rows], className="legend")  # fmt: skip


def overlays() -> list:
    """The map layer of the drainage analysis."""
    return [dl.GeoJSON(id=OVERLAY, style=MAP_JS("drainStyle"), pointToLayer=MAP_JS("drainPoint"),
                       onEachFeature=MAP_JS("bindDrainTooltip"), interactive=True)]  # fmt: skip


def figures(pairs) -> html.Table:
    """A small table of headline figures."""
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in pairs],
                      className="attr-table", id="dr-figures")  # fmt: skip


def exports(analysis_id: str, params: dict) -> html.Div:
    """CSV / XLSX / GeoJSON links of a table analysis."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    base = f"/api/analytics/{analysis_id}"
    return html.Div(className="exports", children=[
        html.A("CSV", href=f"{base}/export.csv?{query}"),
        html.A("XLSX", href=f"{base}/export.xlsx?{query}"),
        html.A("GeoJSON", href=f"{base}?{query}&format=geojson", download=f"{analysis_id}.geojson"),
    ])  # fmt: skip


def bounds_of(features: list[dict]) -> dict | None:
    """The map view that fits the features' coordinates (None when there are none)."""
    xs, ys = [], []

    def walk(coords):
        if coords and isinstance(coords[0], int | float):
            xs.append(coords[0])
            ys.append(coords[1])
        else:
            for c in coords or []:
                walk(c)

    for f in features:
        walk((f.get("geometry") or {}).get("coordinates"))
    return {"bounds": [[min(ys), min(xs)], [max(ys), max(xs)]]} if xs else None


def trace_view(code: str, direction) -> tuple:
    """The trace's figures, overlay and view."""
    body = run("drain-trace", {"from": code, "direction": direction})["result"]
    s = body["summary"]
    pairs = [("起点", f"{s['start_code']}（{'检查井' if s['start_object'] == 'well' else '管线'}）"),
             ("方向", "向下游" if s["direction"] == "down" else "向上游"),
             ("管线", f"{s['pipes']:,} 段，{s['length_m']:,.0f} m"), ("检查井", f"{s['wells']:,}"),
             ("最远距离", f"{s['max_distance_m']:,.0f} m"),
             ("排口", "、".join(s["outfalls"] or []) or "—"),
             ("环路", f"{len(s['loops'])} 处" if s["loops"] else "无")]  # fmt: skip
    if s["direction"] == "down":
        pairs.append(("到达排口", "是" if s.get("reached_outfall") else "否（管网断开）"))
    if s.get("hidden_pipes"):
        pairs.append(("辖区外（未显示）", f"{s['hidden_pipes']} 段管线"))
    feats = body["features"][:MAX_OVERLAY]
    return (
        figures(pairs),
        [],
        [],
        {"type": "FeatureCollection", "features": feats},
        bounds_of(feats),
    )


def table_of(shapes: dict) -> dict:
    """The table form of a `format=geojson` answer: its summary figures and its features'
    properties as rows (the same rows, so the analysis runs once for both)."""
    return {**shapes["summary"], "rows": [f["properties"] for f in shapes["features"]]}


def catchment_view(code: str) -> tuple:
    """The catchment's figures, its parcels and grids in the table and on the map."""
    shapes = run("drain-catchment", {"at": code, "format": "geojson"})["result"]
    body = table_of(shapes)
    pairs = [("上游管线", f"{body['upstream_pipes']:,} 段，{body['upstream_length_m']:,.0f} m"),
             ("上游检查井", f"{body['upstream_wells']:,}"),
             ("受影响地块", f"{body['parcels']:,}（{body['parcel_area_m2']:,.0f} m²）"),
             ("受影响人口", f"{body['population']:,}"), ("受影响单元网格", f"{body['grids']:,}")]  # fmt: skip
    feats = (shapes.get("features") or [])[:MAX_OVERLAY]
    return (figures(pairs), columns("catchment"), body["rows"][:2000],
            {"type": "FeatureCollection", "features": feats}, bounds_of(feats))  # fmt: skip


def quality_view(area) -> tuple:
    """The quality checks' counts, the list of issues and the pipes on the map."""
    params = {"area": area or None}
    shapes = run("drain-quality", {**params, "format": "geojson"})["result"]
    body = table_of(shapes)
    labels = {"no_outfall": "未连通排口", "reverse_slope": "倒坡", "diameter_decrease": "下游管径变小",
              "loop": "环路"}  # fmt: skip
    pairs = [("检查的管线", f"{body['pipes_checked']:,}"),
             *((t, f"{body.get(k, 0):,}") for k, t in labels.items()),
             ("无排口的管网片段", f"{body.get('pieces_without_outfall', 0):,}")]  # fmt: skip
    feats = (shapes.get("features") or [])[:MAX_OVERLAY]
    view = html.Div([figures(pairs), exports("drain-quality", params),
                     html.P("未发现问题" if not body["rows"] else "", className="hint")])  # fmt: skip
    return (
        view,
        columns("quality"),
        body["rows"],
        {"type": "FeatureCollection", "features": feats},
        None,
    )


def risk_view(area) -> tuple:
    """The risk levels, the ranked pipes with their reasons, and the pipes coloured by level."""
    params = {"area": area or None, "top": 200}
    body = run("pipe-risk", params)["result"]
    shapes = run("pipe-risk", {**params, "format": "geojson"})["result"]
    pairs = [("评估的管线", f"{body['pipes']:,}"), ("评估日期", body["to"]),
             *((f"{k}风险", f"{body.get(f'level_{k}', 0):,}") for k in LEVEL_COLOURS)]  # fmt: skip
    feats = (shapes.get("features") or [])[:MAX_OVERLAY]
    view = html.Div([figures(pairs), area_summary(body.get("areas") or []),
                     exports("pipe-risk", params),
                     html.P("评分方法见 docs/DRAINAGE.md（各因素权重在一张表中）", className="hint")])  # fmt: skip
    return (
        view,
        columns("risk"),
        body["rows"],
        {"type": "FeatureCollection", "features": feats},
        None,
    )


def area_summary(areas: list[dict]) -> html.Table | None:
    """Pipe risk per sub-area: pipes, mean and highest score, pipes at each level."""
    if not areas:
        return None
    head = html.Tr([html.Th(t) for t in ("区域", "管线", "平均分", "最高分", "高", "中", "低")])
    rows = [html.Tr([html.Td(a.get("name") or a.get("code")), html.Td(f"{a['pipes']:,}"),
                     html.Td(a.get("mean_score")), html.Td(a.get("max_score")),
                     *(html.Td(a.get(f"level_{k}", 0)) for k in LEVEL_COLOURS)])
            for a in areas]  # fmt: skip
    return html.Table([head, *rows], className="attr-table", id="dr-risk-areas")


def columns(kind: str) -> list[dict]:
    """DataTable columns of a result kind."""
    return [{"id": k, "name": t} for k, t in COLUMNS[kind]]


def register(app, settings) -> None:
    """Fill the code from a map click; run the four analyses; zoom from the table."""

    @app.callback(Output(CODE, "value"), Input(CLICKED, "data"))  # also as the tab is built
    def _clicked(clicked):
        layer = clicked.get("layer") if isinstance(clicked, dict) else None
        if layer not in DRAIN_LAYERS:
            raise PreventUpdate
        try:
            with runtime().reads.connect() as conn:
                _, code = object_title(conn, current_user(), layer, clicked.get("id"))
        except OneMapError:
            raise PreventUpdate from None
        if not code:
            raise PreventUpdate
        return code

    @app.callback(Output(RESULT, "children"), Output(TABLE, "columns"), Output(TABLE, "data"),
                  Output(OVERLAY, "data"), Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input(TRACE, "n_clicks"), Input(CATCHMENT, "n_clicks"), Input(QUALITY, "n_clicks"),
                  Input(RISK, "n_clicks"), State(CODE, "value"), State(DIRECTION, "value"),
                  State(ids.AREA_VALUE, "data"), prevent_initial_call=True)  # fmt: skip
    def _run(_t, _c, _q, _r, code, direction, area):
        if not acted():  # the tab was just built: nothing clicked yet
            raise PreventUpdate
        try:
            if ctx.triggered_id == TRACE:
                out = trace_view(code, direction)
            elif ctx.triggered_id == CATCHMENT:
                out = catchment_view(code)
            elif ctx.triggered_id == QUALITY:
                out = quality_view(area)
            elif ctx.triggered_id == RISK:
                out = risk_view(area)
            else:
                raise PreventUpdate
        except OneMapError as exc:
            return html.P(exc.message, className="error"), [], [], None, None
        view, cols, rows, overlay, bounds = out
        return view, cols, rows, overlay, bounds

    @app.callback(Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input(TABLE, "active_cell"), State(TABLE, "derived_viewport_data"),
                  prevent_initial_call=True)  # fmt: skip
    def _zoom(cell, rows):
        view = row_view(cell, rows, zoom=18)
        if view is None:
            raise PreventUpdate
        return view
