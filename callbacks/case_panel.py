"""The 案件分析 panel of the map page: hotspots, emerging trends, recurring problems and KPIs.

Thin callbacks over `analytics.contract.run_analysis` (the same function as /api/analytics): the
controls are passed raw and validated there. The map overlay draws only the cells that carry a
finding (significant hot/cold cells, or cells with an emerging pattern), at most MAX_OVERLAY of
them, so the browser never receives the whole grid.
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlencode

import dash_leaflet as dl
import plotly.graph_objects as go
from dash import Input, Output, State, ctx, dash_table, dcc, html
from dash.exceptions import PreventUpdate
from dash_extensions.javascript import Namespace

from analytics.case_filters import STATUS_CHOICES, latest_case_day
from analytics.emerging import CATEGORIES
from analytics.export import TITLES
from analytics.hotspots import CLASS_LABELS
from auth.accounts import User
from auth.web import current_user
from callbacks import ids
from callbacks.analyses import run
from callbacks.ui import row_view
from errors import OneMapError
from geodata import catalog
from runtime import runtime

PRESET = "ca-preset"
RANGE = "ca-range"
RANGE_TEXT = "ca-range-text"
END_DAY = "ca-end-day"
CLASS = "ca-class"
SOURCE = "ca-source"
STATUS = "ca-status"
CELLS = "ca-cells"
SIZE = "ca-size"
RUN = "ca-run"
SHOW = "ca-show"
HOT = "ca-hotspots"
HOT_STORE = "ca-hot-store"
EMERGING = "ca-emerging"
EMERGING_STORE = "ca-emerging-store"
RECURRING = "ca-recurring"
KPI_BY = "ca-kpi-by"
KPIS = "ca-kpis"
OVERLAY = "ca-overlay"
TOP_TABLE = "ca-top-table"
EMERGING_TABLE = "ca-emerging-table"
RECURRING_TABLE = "ca-recurring-table"
PRESETS = {"7": "近7天", "30": "近30天", "365": "近一年"}
SLIDER_DAYS = 730
MAX_OVERLAY = 3000
TOP_N = 10
HOT_COLOURS = {"hot_99": "#b2182b", "hot_95": "#ef8a62", "hot_90": "#fddbc7", "ns": "#f7f7f7",
               "cold_90": "#d1e5f0", "cold_95": "#67a9cf", "cold_99": "#2166ac"}  # fmt: skip
PATTERN_COLOURS = {"new": "#1b9e77", "consecutive": "#66a61e", "intensifying": "#b2182b",
                   "persistent": "#e7298a", "diminishing": "#7570b3", "sporadic": "#e6ab02",
                   "oscillating": "#a6761d", "historical": "#666666", "none": "#ffffff"}  # fmt: skip
KPI_BY = {"district": "区县", "street": "街道", "community": "社区", "department": "处置部门"}
MAP_JS = Namespace("onemap", "map")


def class_options() -> list[dict]:
    """Event and component classes, majors first, as dropdown options."""
    groups = ((catalog.EVENT_MAJOR, "事件"), (catalog.EVENT_MINOR, "事件"),
              (catalog.COMPONENT_MAJOR, "部件"), (catalog.COMPONENT_MINOR, "部件"))  # fmt: skip
    return [{"label": f"{kind} {code} {name}", "value": code}
            for names, kind in groups for code, name in names.items()]  # fmt: skip


def anchor_day(user: User) -> date:
    """Where the windows end: the latest case the user may see (today when there is none)."""
    with runtime().reads.connect() as conn:
        return latest_case_day(conn, user) or date.today()


def panel(user: User) -> html.Div:
    """Controls and result areas of the case-analysis tab (roles with analytics only)."""
    if not user.role.analytics:
        return html.Div(html.P("当前角色不提供案件分析", className="hint"))
    marks = {-729: "2年前", -364: "1年前", -89: "90天前", 0: "截止日"}
    return html.Div(className="analysis-panel case-panel", children=[
        dcc.Store(id=END_DAY),
        html.Label("时间窗口"),
        dcc.RadioItems(id=PRESET, value="30", inline=True,
                       options=[{"label": t, "value": v} for v, t in PRESETS.items()]),
        dcc.RangeSlider(id=RANGE, min=-SLIDER_DAYS + 1, max=0, step=1, value=[-29, 0], marks=marks,
                        allowCross=False, updatemode="mouseup"),
        html.P(id=RANGE_TEXT, className="hint"),
        html.Label("案件类别"),
        dcc.Dropdown(id=CLASS, options=class_options(), placeholder="全部类别"),
        html.Div(className="site-controls", children=[
            dcc.Dropdown(id=SOURCE, options=list(catalog.CASE_SOURCES), placeholder="全部来源"),
            dcc.Dropdown(id=STATUS, options=list(STATUS_CHOICES), placeholder="全部状态")]),
        html.Label("统计网格"),
        dcc.RadioItems(id=CELLS, value="unit_grid", inline=True, options=[
            {"label": "单元网格", "value": "unit_grid"}, {"label": "社区", "value": "community"},
            {"label": "六边形", "value": "hex"}]),
        html.Div(className="site-controls", children=[
            html.Label("六边形边长(m)"),
            dcc.Input(id=SIZE, type="number", value=500, min=50, max=5000, step=50)]),
        html.Button("运行案件分析", id=RUN, n_clicks=0, className="primary"),
        html.Label("地图显示"),
        dcc.RadioItems(id=SHOW, value="hotspots", inline=True, options=[
            {"label": "热点（Gi*）", "value": "hotspots"}, {"label": "新兴趋势", "value": "emerging"}]),
        legend(), dcc.Store(id=HOT_STORE), dcc.Store(id=EMERGING_STORE),
        html.H4("热点与冷点"), dcc.Loading(html.Div(id=HOT)),
        table(TOP_TABLE, (("rank", "名次"), ("cell_id", "网格"), ("count", "案件数"),
                          ("gi_z", "Gi* z"), ("class", "类别"))),
        html.H4("新兴趋势（时空热点）"), dcc.Loading(html.Div(id=EMERGING)),
        table(EMERGING_TABLE, (("pattern", "模式"), ("cell_id", "网格"), ("count", "案件数"),
                               ("hot_steps", "热点时段"), ("trend_z", "趋势 z"))),
        html.H4("反复发生问题（近12周至少4周）"), dcc.Loading(html.Div(id=RECURRING)),
        table(RECURRING_TABLE, (("rank", "名次"), ("place", "地点"), ("class_name", "类别"),
                                ("weeks", "出现周数"), ("count", "案件数"), ("cases", "最近案件"))),
        html.H4("考核指标"),
        dcc.RadioItems(id=KPI_BY, value="district", inline=True,
                       options=[{"label": t, "value": v} for v, t in KPI_BY.items()]),
        dcc.Loading(html.Div(id=KPIS)),
    ])  # fmt: skip


def table(table_id: str, columns) -> dash_table.DataTable:
    """A result table of the panel (rows come from a run; a click on a row zooms the map)."""
    return dash_table.DataTable(id=table_id, data=[], page_size=10,
                                columns=[{"id": k, "name": t} for k, t in columns],
                                style_cell={"fontSize": 11, "cursor": "pointer",
                                            "whiteSpace": "normal"})  # fmt: skip


def legend() -> html.Details:
    """Colours of the hotspot classes and the emerging patterns."""

    def rows(colours: dict, labels: dict) -> list:
        return [html.Li([html.Span(className="swatch box", style={"background": c}), labels[k]])
                for k, c in colours.items() if k not in ("ns", "none")]  # fmt: skip

    return html.Details(open=True, className="legend-box", children=[
        html.Summary("图例（不显著的网格不绘制）"),
        html.Ul(rows(HOT_COLOURS, CLASS_LABELS), className="legend"),
        html.Ul(rows(PATTERN_COLOURS, {k: v[0] for k, v in CATEGORIES.items()}), className="legend"),
    ])  # fmt: skip


def overlays() -> list:
    """The map layer of the case analysis (cells coloured by class or pattern)."""
    return [dl.GeoJSON(id=OVERLAY, style=MAP_JS("caseCellStyle"),
                       onEachFeature=MAP_JS("bindCaseCellTooltip"), interactive=True)]  # fmt: skip


def window_of(value, end: str) -> tuple[str, str]:
    """The (from, to) dates of the slider's day offsets from the anchor day (untrusted input)."""
    end_day = date.fromisoformat(end) if isinstance(end, str) else date.today()
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError):
        lo, hi = -29, 0
    lo, hi = max(-SLIDER_DAYS, min(lo, 0)), max(-SLIDER_DAYS, min(hi, 0))
    return (end_day + timedelta(days=min(lo, hi))).isoformat(), (
        end_day + timedelta(days=max(lo, hi))
    ).isoformat()


def params_days(value) -> int:
    """The slider window's length in days (untrusted input; 30 when malformed)."""
    start, stop = window_of(value, date.today().isoformat())
    return (date.fromisoformat(stop) - date.fromisoformat(start)).days + 1


def step_of(days: int) -> str:
    """Weekly steps for windows of four weeks or more, daily steps for shorter ones."""
    return "week" if days >= 28 else "day"


def filters_of(value, end, cls, source, status) -> dict:
    """The shared case filters of the panel as raw analysis parameters."""
    start, stop = window_of(value, end)
    return {"from": start, "to": stop, "class": cls, "source": source, "status": status}


def error_view(exc: OneMapError) -> html.P:
    """A refused or invalid run, said in the panel."""
    return html.P(exc.message, className="error")


def bounds_of(feature: dict) -> list:
    """[[south, west], [north, east]] of a GeoJSON polygon feature."""
    rings = feature["geometry"]["coordinates"]
    flat = [pt for ring in (rings if feature["geometry"]["type"] == "Polygon" else
                            [r for poly in rings for r in poly]) for pt in ring]  # fmt: skip
    lons, lats = [p[0] for p in flat], [p[1] for p in flat]
    return [[min(lats), min(lons)], [max(lats), max(lons)]]


def slim(features: list[dict], keep) -> list[dict]:
    """At most MAX_OVERLAY features that pass `keep`, most extreme first."""
    kept = [f for f in features if keep(f["properties"])]
    kept.sort(key=lambda f: -abs(f["properties"].get("gi_z") or f["properties"].get("last_z") or 0))
    return kept[:MAX_OVERLAY]


def hotspot_view(result: dict) -> tuple[html.P, list, dict]:
    """Tally of classes, the top-N hot cells (click to zoom) and the overlay's features."""
    feats = result["features"]
    tally = {}
    for f in feats:
        tally[f["properties"]["hotspot_class"]] = tally.get(f["properties"]["hotspot_class"], 0) + 1
    top = sorted((f for f in feats if f["properties"]["hotspot_class"].startswith("hot")),
                 key=lambda f: -f["properties"]["gi_z"])[:TOP_N]  # fmt: skip
    rows = [{"rank": i + 1, "cell_id": f["properties"]["cell_id"], "count": f["properties"]["count"],
             "gi_z": round(f["properties"]["gi_z"], 2), "class": CLASS_LABELS[f["properties"]["hotspot_class"]],
             "bounds": bounds_of(f)} for i, f in enumerate(top)]  # fmt: skip
    cases = sum(f["properties"]["count"] for f in feats)
    summary = "；".join(f"{CLASS_LABELS[k]} {v}" for k, v in sorted(tally.items()))
    note = "" if rows else "窗口内没有显著热点。"
    view = html.P(
        f"{len(feats):,} 个网格，{cases:,} 件案件。{summary}。{note}", id="ca-hot-summary"
    )
    overlay = {"type": "FeatureCollection",
               "features": slim(feats, lambda p: p["hotspot_class"] != "ns")}  # fmt: skip
    return view, rows, overlay


PATTERN_ORDER = ("intensifying", "new", "consecutive", "persistent", "sporadic", "oscillating",
                 "diminishing", "historical")  # fmt: skip


def emerging_view(result: dict) -> tuple[html.P, list, dict]:
    """Tally of patterns and the cells with one (worst first, click to zoom)."""
    feats = sorted(result["features"], key=lambda f: (
        PATTERN_ORDER.index(f["properties"]["category"]), -f["properties"]["trend_z"]))  # fmt: skip
    rows = [{"cell_id": f["properties"]["cell_id"], "pattern": f["properties"]["category_label"],
             "count": f["properties"]["count"], "hot_steps": f["properties"]["hot_steps"],
             "trend_z": f["properties"]["trend_z"], "bounds": bounds_of(f)} for f in feats[:50]]  # fmt: skip
    tally = "；".join(f"{CATEGORIES[k][0]} {v}" for k, v in result["categories"].items() if v)
    steps = result.get("steps") or []
    view = html.P(f"{len(steps)} 个时段（{steps[0] if steps else '—'} 起），"
                  f"{result.get('cells', 0):,} 个网格。{tally or '没有呈现时空模式的网格'}",
                  id="ca-emerging-summary")  # fmt: skip
    return view, rows, {"type": "FeatureCollection", "features": feats[:MAX_OVERLAY]}


def recurring_view(result: dict) -> tuple[html.P, list]:
    """The ranked recurring places with their latest cases (click a row to zoom)."""
    rows = [{"rank": r["rank"], "place": r["place"], "class_name": r["class_name"],
             "weeks": r["weeks_with_cases"], "count": r["count"], "lat": r["lat"], "lon": r["lon"],
             "cases": "、".join(r["case_codes"][:3])} for r in result["rows"]]  # fmt: skip
    note = (f"{result['from']} 至 {result['to']}，{len(rows)} 处" if rows
            else f"{result['from']} 至 {result['to']} 没有反复发生的问题")  # fmt: skip
    return html.P(note, id="ca-recurring-summary"), rows


KPI_COLUMNS = ("rank", "name", "grade", "score", "closure_rate", "on_time_closure_rate",
               "on_time_handling_rate", "rework_rate", "overdue", "due_to_close", "closed")  # fmt: skip


def kpi_view(params: dict, result: dict) -> html.Div:
    """The ranking table, a chart of the composite score and export links."""
    rows = result["rows"]
    if not rows:
        return html.P("窗口内没有案件", className="hint")
    columns = [c for c in KPI_COLUMNS if c in rows[0]]
    shown = [{c: ("—" if r.get(c) is None else r.get(c)) for c in columns} for r in rows]
    fig = go.Figure(go.Bar(x=[r["name"] for r in rows[:20]],
                           y=[r.get("score") or 0 for r in rows[:20]], marker_color="#1565c0"))  # fmt: skip
    for target in (90, 75, 60):
        fig.add_hline(y=target, line_dash="dot", line_color="#999")
    fig.update_layout(height=200, margin={"l": 8, "r": 8, "t": 8, "b": 8}, yaxis={"range": [0, 100]},
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font={"size": 10})  # fmt: skip
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return html.Div([
        dcc.Graph(figure=fig, config={"displayModeBar": False}),
        dash_table.DataTable(id="ca-kpi-table", data=shown, sort_action="native", page_size=12,
                             columns=[{"id": c, "name": TITLES.get(c, c)} for c in columns],
                             style_cell={"fontSize": 11, "padding": "2px 4px"}),
        html.Div(className="exports", children=[
            html.A("CSV", href=f"/api/analytics/case-kpis/export.csv?{query}"),
            html.A("XLSX", href=f"/api/analytics/case-kpis/export.xlsx?{query}")]),
    ])  # fmt: skip


def guarded(analysis_id: str, params: dict):
    """(result, None) or (None, the error view)."""
    try:
        return run(analysis_id, params)["result"], None
    except OneMapError as exc:
        return None, error_view(exc)


def register(app, settings) -> None:
    """Window presets, the four analyses on 运行, the overlay and zooming from the tables."""

    @app.callback(Output(RANGE, "value"), Input(PRESET, "value"), prevent_initial_call=True)
    def _preset(preset):
        days = int(preset) if preset in PRESETS else 30
        return [-(days - 1), 0]

    @app.callback(Output(END_DAY, "data"), Input(PRESET, "id"))
    def _anchor(_id):
        return anchor_day(current_user()).isoformat()

    @app.callback(Output(RANGE_TEXT, "children"), Input(RANGE, "value"), Input(END_DAY, "data"))
    def _range_text(value, end):
        if not end:
            raise PreventUpdate
        start, stop = window_of(value, end)
        return f"{start} 至 {stop}（数据截至 {end}）"

    common = (State(RANGE, "value"), State(END_DAY, "data"), State(CLASS, "value"),
              State(SOURCE, "value"), State(STATUS, "value"))  # fmt: skip
    cells = (State(CELLS, "value"), State(SIZE, "value"), State(ids.AREA_VALUE, "data"))

    @app.callback(Output(HOT, "children"), Output(TOP_TABLE, "data"), Output(HOT_STORE, "data"),
                  Input(RUN, "n_clicks"), *common, *cells, prevent_initial_call=True)  # fmt: skip
    def _hotspots(_n, value, end, cls, source, status, kind, size, area):
        params = filters_of(value, end, cls, source, status) | {
            "cells": kind,
            "size": size,
            "area": area or None,
        }
        result, error = guarded("hotspots", params)
        return (error, [], None) if error else hotspot_view(result)

    @app.callback(Output(EMERGING, "children"), Output(EMERGING_TABLE, "data"),
                  Output(EMERGING_STORE, "data"), Input(RUN, "n_clicks"), *common, *cells,
                  prevent_initial_call=True)  # fmt: skip
    def _emerging(_n, value, end, cls, source, status, kind, size, area):
        params = filters_of(value, end, cls, source, status) | {
            "cells": kind,
            "size": size,
            "area": area or None,
            "step": step_of(params_days(value)),
        }
        result, error = guarded("emerging", params)
        return (error, [], None) if error else emerging_view(result)

    @app.callback(Output(RECURRING, "children"), Output(RECURRING_TABLE, "data"),
                  Input(RUN, "n_clicks"), *common, *cells, prevent_initial_call=True)  # fmt: skip
    def _recurring(_n, value, end, cls, source, status, kind, size, area):
        _, stop = window_of(value, end)
        params = {"to": stop, "class": cls, "source": source, "status": status, "size": size,
                  "place": kind, "area": area or None}  # fmt: skip
        result, error = guarded("recurring", params)
        return (error, []) if error else recurring_view(result)

    @app.callback(Output(KPIS, "children"), Input(RUN, "n_clicks"), Input(KPI_BY, "value"),
                  *common, State(ids.AREA_VALUE, "data"), prevent_initial_call=True)  # fmt: skip
    def _kpis(_n, by, value, end, cls, source, _status, area):
        start, stop = window_of(value, end)
        params = {"by": by, "from": start, "to": stop, "class": cls, "source": source,
                  "area": area or None}  # fmt: skip
        result, error = guarded("case-kpis", params)
        return error or kpi_view(params, result)

    @app.callback(Output(OVERLAY, "data"), Input(SHOW, "value"), Input(HOT_STORE, "data"),
                  Input(EMERGING_STORE, "data"))  # fmt: skip
    def _overlay(show, hot, emerging):
        return (emerging if show == "emerging" else hot) or None

    @app.callback(Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input(TOP_TABLE, "active_cell"), Input(EMERGING_TABLE, "active_cell"),
                  Input(RECURRING_TABLE, "active_cell"), State(TOP_TABLE, "derived_viewport_data"),
                  State(EMERGING_TABLE, "derived_viewport_data"),
                  State(RECURRING_TABLE, "derived_viewport_data"), prevent_initial_call=True)  # fmt: skip
    def _zoom(top_cell, em_cell, rec_cell, top_rows, em_rows, rec_rows):
        picked = {TOP_TABLE: (top_cell, top_rows), EMERGING_TABLE: (em_cell, em_rows),
                  RECURRING_TABLE: (rec_cell, rec_rows)}.get(ctx.triggered_id)  # fmt: skip
        view = row_view(*picked) if picked else None
        if view is None:
            raise PreventUpdate
        return view
