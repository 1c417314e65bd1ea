"""The 停车分析 panel of the map page: pressure heat through the day, lot measures, shortage
places and "where can I park".

Thin callbacks over `analytics.contract.run_analysis` (the same function as /api/analytics) and
`analytics.parking.nearest` (the same as /api/parking/nearest); every control is passed raw and
validated there. 运行 fetches the chosen day in one go (the heat analysis at every moment, cached
per data version, and each lot's occupancy at those moments), so stepping the slider and playing
the day happen in the browser (assets/onemap_parking.js) without a request per step.

"Where can I park": a click on an empty spot of the map while this tab is open (side_panel keeps
the tab then), or the pick mode (button, then one click caught in the browser before Leaflet, so a
click on an object does not open its archive either), or an address.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

import dash_leaflet as dl
import plotly.graph_objects as go
from dash import ClientsideFunction, Input, Output, State, ctx, dash_table, dcc, html, no_update
from dash.exceptions import PreventUpdate
from dash_extensions.javascript import Namespace

from analytics import parking
from analytics.contract import ANALYSES, parse_day, result_cache, run_analysis
from auth.access import check_analytics
from auth.accounts import User
from auth.web import current_user
from callbacks import ids
from callbacks.analyses import run
from callbacks.ui import acted, row_view
from errors import BadRequest, OneMapError
from layers.registry import REGISTRY
from runtime import runtime
from services.search import search

DAY = "pk-day"
WINDOW = "pk-window"
STEP = "pk-step"
RUN = "pk-run"
SUMMARY = "pk-summary"
PROFILE = "pk-profile"
RANKING = "pk-ranking"
LOT_TABLE = "pk-lot-table"
EXPORTS = "pk-exports"
DAY_STORE = "pk-day-store"
MOMENT = "pk-moment"
MOMENT_TEXT = "pk-moment-text"
PLAY = "pk-play"
TICK = "pk-tick"
HEAT_POINTS = "pk-heat-points"
HEAT_DRAWN = "pk-heat-drawn"
LOTS_LAYER = "pk-lots"
SHORTAGE_BOX = "pk-shortage-box"
SHORTAGE = "pk-shortage"
SHORTAGE_TABLE = "pk-shortage-table"
PICK = "pk-pick"
PICK_HINT = "pk-pick-hint"
ORIGIN = "pk-origin"
MAP_CLICK = ids.in_panel(ids.PANEL_MAP_CLICK, "parking")  # a map click, seen from the tab
ADDRESS = "pk-address"
ADDRESS_GO = "pk-address-go"
NEAREST = "pk-nearest"
NEAREST_TABLE = "pk-nearest-table"
NEAREST_LAYER = "pk-nearest-layer"

SHORTAGE_ID = "parking-shortage"
WINDOWS = {"1": "当天", "7": "近7天", "30": "近30天"}
STEPS = {"60": "每小时", "15": "每15分钟"}
BUSY_SHARE = 0.6  # 较满 from 60 % (the parking_lot_status view of migration 0005)
MAX_LOTS = 3000  # lots drawn on the map, largest first
TOP_N = 15
NEAREST_N = 5
PLAY_MS = 1000
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
METHODS = {"network": "步行", "straight": "直线"}
PARKING_JS = Namespace("onemap", "parking")


def level_colours() -> dict:
    """空闲 / 较满 / 紧张 / 无数据 colours of the parking layer's legend (one source of truth)."""
    return {e.value: e.color for e in REGISTRY["parking"].style.legend}


def panel(user: User) -> html.Div:
    """Controls and result areas of the parking tab (roles with analytics only)."""
    if not user.role.analytics:
        return html.Div(html.P("当前角色不提供停车分析", className="hint"))
    shortage = SHORTAGE_ID in ANALYSES
    return html.Div(className="analysis-panel parking-panel", children=[
        html.Label("日期"),
        dcc.DatePickerSingle(id=DAY, display_format="YYYY-MM-DD", first_day_of_week=1),
        html.Label("统计时段（截至所选日期）"),
        dcc.RadioItems(id=WINDOW, value="7", inline=True,
                       options=[{"label": t, "value": v} for v, t in WINDOWS.items()]),
        html.Label("热力步长"),
        dcc.RadioItems(id=STEP, value="60", inline=True,
                       options=[{"label": t, "value": v} for v, t in STEPS.items()]),
        html.Button("运行停车分析", id=RUN, n_clicks=0, className="primary"),
        dcc.Store(id=DAY_STORE), dcc.Store(id=HEAT_POINTS), dcc.Store(id=HEAT_DRAWN),
        html.H4("停车压力（按车位数加权的占用率）"),
        html.Div(className="site-controls", children=[
            html.Button("▶ 播放", id=PLAY, n_clicks=0),
            html.Span(id=MOMENT_TEXT, className="hint")]),
        dcc.Slider(id=MOMENT, min=0, max=23, step=1, value=8, marks=None, updatemode="drag"),
        dcc.Interval(id=TICK, interval=PLAY_MS, disabled=True),
        legend(),
        dcc.Loading(html.Div(id=SUMMARY, children=html.P("选择日期后点击「运行停车分析」",
                                                         className="hint"))),
        html.H4("利用率：星期 × 小时"), dcc.Loading(dcc.Graph(id=PROFILE, figure=empty_figure(),
                                                           config={"displayModeBar": False})),
        html.H4(f"利用率排名（前 {TOP_N}）"),
        dcc.Graph(id=RANKING, figure=empty_figure(), config={"displayModeBar": False}),
        table(LOT_TABLE, (("code", "编码"), ("name", "名称"), ("capacity", "泊位"),
                          ("utilisation", "利用率"), ("turnover", "周转率"), ("peak_hour", "高峰时"),
                          ("hours_full", "满位小时"), ("occupancy_now", "期末占用率")),
              sortable=True),
        html.Div(id=EXPORTS, className="exports"),
        html.Div(id=SHORTAGE_BOX, style=None if shortage else {"display": "none"}, children=[
            html.H4("长期供不应求的地点"), dcc.Loading(html.Div(id=SHORTAGE)),
            table(SHORTAGE_TABLE, (("rank", "名次"), ("cell_id", "网格"), ("supply", "泊位供给"),
                                   ("demand", "停车需求"), ("hours_short", "短缺小时")))]),
        html.H4("附近哪里能停车"),
        html.Div(className="site-controls", children=[
            html.Button("点击地图查找附近停车场", id=PICK, n_clicks=0),
            html.Span(id=PICK_HINT, className="hint")]),
        html.Div(className="site-controls", children=[
            dcc.Input(id=ADDRESS, type="search", debounce=True, n_submit=0,
                      placeholder="或输入地址、兴趣点"),
            html.Button("查找", id=ADDRESS_GO, n_clicks=0)]),
        dcc.Store(id=ORIGIN),
        dcc.Loading(html.Div(id=NEAREST)),
        table(NEAREST_TABLE, (("name", "停车场"), ("free", "空位"), ("capacity", "泊位"),
                              ("fee", "收费"), ("distance_m", "距离(m)"), ("method", "方式"))),
    ])  # fmt: skip


def table(table_id: str, columns, sortable: bool = False) -> dash_table.DataTable:
    """A result table of the panel (rows come from a run; a click on a row zooms the map)."""
    return dash_table.DataTable(id=table_id, data=[], page_size=10,
                                sort_action="native" if sortable else "none",
                                columns=[{"id": k, "name": t} for k, t in columns],
                                style_cell={"fontSize": 11, "cursor": "pointer",
                                            "whiteSpace": "normal"})  # fmt: skip


def legend() -> html.Details:
    """Heat colours and the lots' occupancy levels."""
    levels = [html.Li([html.Span(className="swatch dot", style={"background": c}), name])
              for name, c in level_colours().items()]  # fmt: skip
    return html.Details(open=True, className="legend-box", children=[
        html.Summary("图例"),
        html.P("热力：蓝 → 红 为占用率低 → 高；圆点为停车场（所选时刻）", className="hint"),
        html.Ul(levels, className="legend"),
    ])  # fmt: skip


def empty_figure() -> go.Figure:
    """A blank chart until the first run."""
    fig = go.Figure()
    fig.update_layout(height=60, margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      xaxis={"visible": False}, yaxis={"visible": False},
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")  # fmt: skip
    return fig


def overlays() -> list:
    """Map layers of the parking analysis: lots coloured by occupancy and the nearest lots (the
    heat is one L.heatLayer kept by assets/onemap_parking.js)."""
    return [
        dl.GeoJSON(id=LOTS_LAYER, pointToLayer=PARKING_JS("lotMarker"),
                   onEachFeature=PARKING_JS("bindLotTooltip"), interactive=True),
        dl.LayerGroup(id=NEAREST_LAYER),
    ]  # fmt: skip


def error_view(exc: OneMapError) -> html.P:
    """A refused or invalid run, said in the panel."""
    return html.P(exc.message, className="error")


def day_of(raw, fallback: date) -> date:
    """The chosen day (untrusted: a YYYY-MM-DD text, also the picker's ISO date-time), or 400."""
    if raw is None or raw == "":
        return fallback
    if isinstance(raw, str) and len(raw) > 10 and raw[10] == "T":
        raw = raw[:10]
    return date.fromisoformat(parse_day(raw, "日期"))


def window_of(day: date, window) -> tuple[str, str]:
    """(from, to) of the measures: the chosen window's days up to the chosen day."""
    days = int(window) if window in WINDOWS else 7
    return (day - timedelta(days=days - 1)).isoformat(), day.isoformat()


def moments_of(day: date, step) -> list[datetime]:
    """The moments of a day on the city clock, every `step` minutes (hourly when malformed)."""
    minutes = int(step) if step in STEPS else 60
    start = datetime.combine(day, time(), parking.city_zone())
    return [start + timedelta(minutes=minutes * i) for i in range(24 * 60 // minutes)]


def area_of(area) -> str | None:
    """The map's area focus as the analyses' `area` parameter (validated there)."""
    return area or None


def measures_view(params: dict, result: dict) -> tuple:
    """Summary, weekday × hour profile, utilisation ranking, lot table rows and export links."""
    t, rows = result["totals"], result["rows"]
    pct = lambda v: "—" if v is None else f"{v:.1%}"  # noqa: E731
    summary = html.P(
        f"{result['from']} 至 {result['to']}：{t['lots']:,} 个停车场（容量未知 "
        f"{t['lots_unknown_capacity']}），{t['capacity'] or 0:,} 个泊位；利用率 "
        f"{pct(t['utilisation'])}，周转率 {'—' if t['turnover'] is None else t['turnover']}，"
        f"高峰 {'—' if t['peak_hour'] is None else str(t['peak_hour']) + ' 时'}，"
        f"满位 {t['hours_full']:,} 小时，期末占用率 {pct(t['occupancy_now'])}。",
        id="pk-summary-text",
    )
    shown = [{k: r.get(k) for k in ("code", "name", "capacity", "utilisation", "turnover",
                                    "peak_hour", "hours_full", "occupancy_now", "lon", "lat")}
             for r in rows]  # fmt: skip
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    links = [html.A("CSV", href=f"/api/analytics/parking/export.csv?{query}"),
             html.A("XLSX", href=f"/api/analytics/parking/export.xlsx?{query}")]  # fmt: skip
    return summary, profile_figure(result["profile"]), ranking_figure(rows), shown, links


def profile_figure(profile: list) -> go.Figure:
    """Utilisation by weekday (rows, Monday first) and hour of day (columns); gaps unobserved."""
    fig = go.Figure(go.Heatmap(z=profile, x=list(range(24)), y=list(WEEKDAYS), zmin=0, zmax=1,
                               colorscale="YlOrRd", hoverongaps=False,
                               colorbar={"thickness": 8, "tickformat": ".0%"},
                               hovertemplate="%{y} %{x} 时：%{z:.1%}<extra></extra>"))  # fmt: skip
    fig.update_layout(height=210, margin={"l": 8, "r": 8, "t": 8, "b": 8}, font={"size": 10},
                      yaxis={"autorange": "reversed"}, xaxis={"dtick": 3, "title": "时"},
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")  # fmt: skip
    return fig


def ranking_figure(rows: list) -> go.Figure:
    """The TOP_N lots of highest utilisation (lots without a rate are left out)."""
    top = sorted((r for r in rows if r["utilisation"] is not None),
                 key=lambda r: (-r["utilisation"], r["code"]))[:TOP_N]  # fmt: skip
    fig = go.Figure(go.Bar(x=[r["utilisation"] for r in top], y=[r["name"] or r["code"] for r in top],
                           orientation="h", marker_color="#3949ab",
                           hovertemplate="%{y}：%{x:.1%}<extra></extra>"))  # fmt: skip
    fig.update_layout(height=60 + 18 * len(top), margin={"l": 8, "r": 8, "t": 8, "b": 8},
                      yaxis={"autorange": "reversed"}, xaxis={"tickformat": ".0%"},
                      font={"size": 10}, paper_bgcolor="rgba(0,0,0,0)",
                      plot_bgcolor="rgba(0,0,0,0)")  # fmt: skip
    return fig


def day_frames(raw_day, step, area) -> dict:
    """The day's moments with the heat at each (parking-heat, cached) and the lots' states."""
    user = current_user()
    with runtime().reads.connect() as conn:
        check_analytics(user)
        day = day_of(raw_day, parking.latest_day(conn))
        moments = moments_of(day, step)
        cache = result_cache(runtime())
        frames = [run_analysis(conn, user, "parking-heat",
                               {"at": m.isoformat(), "area": area_of(area)}, cache)["result"]
                  for m in moments]  # fmt: skip
        lots = parking.lots_at(conn, user, moments, area_of(area), MAX_LOTS)
    return {
        "day": day.isoformat(), "moments": [m.strftime("%H:%M") for m in moments],
        "heat": [[[p[0], p[1], p[2]] for p in f["points"]] for f in frames],
        "totals": [[f["occupied"], f["capacity"], f["lots_with_reading"], f["lots"]] for f in frames],
        "lots": lots, "busy": BUSY_SHARE, "full": parking.FULL_SHARE, "colours": level_colours(),
    }  # fmt: skip


def shortage_view(result: dict) -> tuple[html.P, list]:
    """The cells that were short of spaces (≥ 90 % full) for some hours, worst first (click a row
    to zoom)."""
    keep = ("rank", "cell_id", "supply", "demand", "hours_short", "lon", "lat")
    rows = [{k: r.get(k) for k in keep} for r in result.get("rows", []) if r.get("hours_short")]
    t = result["totals"]
    note = (f"{result['from']} 至 {result['to']}：{t['cells']:,} 个有停车场的网格中 "
            f"{t['cells_short']:,} 处出现满位（≥{result['full_share']:.0%}），共 {t['hours_short']:,} 小时"
            if rows else f"{result['from']} 至 {result['to']} 没有供不应求的地点")  # fmt: skip
    return html.P(note, id="pk-shortage-summary"), rows


def nearest_view(answer: dict) -> tuple:
    """The note, the table rows, the markers and the map view of a nearest-lots answer."""
    lots = answer["lots"]
    rows = [{"name": x["name"] or x["code"], "free": x["free"], "capacity": x["capacity"],
             "fee": x["fee"] or ("—" if x["fee_per_hour"] is None else f"{x['fee_per_hour']} 元/时"),
             "distance_m": round(x["distance_m"]), "method": METHODS[x["method"]],
             "lat": x["lat"], "lon": x["lon"]} for x in lots]  # fmt: skip
    note = html.P(f"{answer['note']}（按各停车场最新读数；{len(lots)} 个有空位）",
                  id="pk-nearest-note", className="hint")  # fmt: skip
    origin = dl.CircleMarker(center=[answer["lat"], answer["lon"]], radius=7, color="#000000",
                             fillColor="#ffeb3b", fillOpacity=1,
                             children=dl.Tooltip("查找起点"))  # fmt: skip
    marks = [dl.CircleMarker(center=[x["lat"], x["lon"]], radius=9, color="#1b5e20", weight=3,
                             fillColor="#66bb6a", fillOpacity=0.9,
                             children=dl.Tooltip(f"{i + 1}. {r['name']}：空位 {r['free']}，"
                                                 f"{r['distance_m']} 米（{r['method']}）"))
             for i, (x, r) in enumerate(zip(lots, rows, strict=True))]  # fmt: skip
    lats = [answer["lat"], *(x["lat"] for x in lots)]
    lons = [answer["lon"], *(x["lon"] for x in lots)]
    view = {"bounds": [[min(lats), min(lons)], [max(lats), max(lons)]]} if lots else None
    return note, rows, [origin, *marks], view


def origin_of(trigger, origin, address) -> tuple[float, float] | tuple[None, None]:
    """(lon, lat) to search from: a picked map point, or the first hit of the address."""
    if trigger in (ORIGIN, MAP_CLICK):
        if not isinstance(origin, dict):
            raise BadRequest("请在地图上点击一个位置")
        return origin.get("lng"), origin.get("lat")
    with runtime().reads.connect() as conn:
        hits = search(conn, current_user(), address if address is not None else "", limit=1)
    if not hits:
        raise BadRequest("没有找到这个地址")
    return hits[0]["lon"], hits[0]["lat"]


def find_nearest(lon, lat) -> dict:
    """The nearest lots with free spaces (analytics.parking.nearest, as /api/parking/nearest)."""
    user = current_user()
    check_analytics(user)
    with runtime().reads.connect() as conn:
        return parking.nearest(conn, user, {"lon": lon, "lat": lat, "n": NEAREST_N})


def register(app, settings) -> None:
    """The run (measures, the day's heat, shortage), stepping and playing, nearest lots, zoom."""

    @app.callback(Output(DAY, "date"), Input(RUN, "id"))
    def _latest(_id):
        with runtime().reads.connect() as conn:
            return parking.latest_day(conn).isoformat()

    @app.callback(Output(SUMMARY, "children"), Output(PROFILE, "figure"),
                  Output(RANKING, "figure"), Output(LOT_TABLE, "data"), Output(EXPORTS, "children"),
                  Input(RUN, "n_clicks"), State(DAY, "date"), State(WINDOW, "value"),
                  State(ids.AREA_VALUE, "data"), prevent_initial_call=True)  # fmt: skip
    def _measures(_n, raw_day, window, area):
        try:
            with runtime().reads.connect() as conn:
                day = day_of(raw_day, parking.latest_day(conn))
            start, stop = window_of(day, window)
            params = {"from": start, "to": stop, "area": area_of(area)}
            return measures_view(params, run("parking", params)["result"])
        except OneMapError as exc:
            return error_view(exc), empty_figure(), empty_figure(), [], []

    @app.callback(Output(DAY_STORE, "data"), Output(MOMENT, "max"), Output(MOMENT, "marks"),
                  Output(MOMENT, "value"), Output(MOMENT_TEXT, "children"),
                  Input(RUN, "n_clicks"), State(DAY, "date"), State(STEP, "value"),
                  State(ids.AREA_VALUE, "data"), State(MOMENT, "value"), State(MOMENT, "max"),
                  prevent_initial_call=True)  # fmt: skip
    def _day(_n, raw_day, step, area, index, top):
        try:
            frames = day_frames(raw_day, step, area)
        except OneMapError as exc:
            return None, 23, {}, 0, exc.message
        n = len(frames["moments"])
        per_hour = n // 24
        marks = {i * per_hour: f"{i}时" for i in range(0, 24, 6)}
        try:  # keep the same time of day when the step changes
            share = int(index) / (int(top) + 1)
        except (TypeError, ValueError, ZeroDivisionError):
            share = 8 / 24
        return frames, n - 1, marks, min(n - 1, max(0, int(share * n))), f"{frames['day']}"

    @app.callback(Output(SHORTAGE, "children"), Output(SHORTAGE_TABLE, "data"),
                  Input(RUN, "n_clicks"), State(DAY, "date"), State(WINDOW, "value"),
                  State(ids.AREA_VALUE, "data"), prevent_initial_call=True)  # fmt: skip
    def _shortage(_n, raw_day, window, area):
        if SHORTAGE_ID not in ANALYSES:
            raise PreventUpdate
        try:
            with runtime().reads.connect() as conn:
                day = day_of(raw_day, parking.latest_day(conn))
            start, stop = window_of(day, window)
            return shortage_view(run(SHORTAGE_ID, {"from": start, "to": stop,
                                                   "area": area_of(area)})["result"])  # fmt: skip
        except OneMapError as exc:
            return error_view(exc), []

    app.clientside_callback(
        ClientsideFunction("onemap_parking", "frame"),
        Output(HEAT_POINTS, "data"), Output(LOTS_LAYER, "data"),
        Output(MOMENT_TEXT, "children", allow_duplicate=True),
        Input(MOMENT, "value"), Input(DAY_STORE, "data"), prevent_initial_call=True,
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction("onemap_parking", "drawHeat"),
        Output(HEAT_DRAWN, "data"), Input(HEAT_POINTS, "data"),
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction("onemap_parking", "togglePlay"),
        Output(TICK, "disabled"), Output(PLAY, "children"),
        Input(PLAY, "n_clicks"), State(TICK, "disabled"), prevent_initial_call=True,
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction("onemap_parking", "advance"),
        Output(MOMENT, "value", allow_duplicate=True),
        Input(TICK, "n_intervals"), State(MOMENT, "value"), State(MOMENT, "max"),
        prevent_initial_call=True,
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction("onemap_parking", "armPick"),
        Output(PICK_HINT, "children"), Input(PICK, "n_clicks"), prevent_initial_call=True,
    )  # fmt: skip

    @app.callback(Output(NEAREST, "children"), Output(NEAREST_TABLE, "data"),
                  Output(NEAREST_LAYER, "children"),
                  Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input(ORIGIN, "data"), Input(ADDRESS_GO, "n_clicks"),
                  Input(ADDRESS, "n_submit"), Input(MAP_CLICK, "data"), State(ADDRESS, "value"),
                  State(ids.PANEL_TABS, "value"), prevent_initial_call=True)  # fmt: skip
    def _nearest(origin, _go, _submit, clicked, address, tab):
        if not acted():  # the tab was just built: nothing clicked yet
            raise PreventUpdate
        if ctx.triggered_id == MAP_CLICK:  # a plain map click counts while this tab is open
            if tab != "parking":
                raise PreventUpdate
            origin = clicked.get("latlng") if isinstance(clicked, dict) else None
        try:
            lon, lat = origin_of(ctx.triggered_id, origin, address)
            note, rows, marks, view = nearest_view(find_nearest(lon, lat))
        except OneMapError as exc:
            return error_view(exc), [], [], no_update
        return note, rows, marks, view or no_update

    @app.callback(Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input(LOT_TABLE, "active_cell"), Input(SHORTAGE_TABLE, "active_cell"),
                  Input(NEAREST_TABLE, "active_cell"), State(LOT_TABLE, "derived_viewport_data"),
                  State(SHORTAGE_TABLE, "derived_viewport_data"),
                  State(NEAREST_TABLE, "derived_viewport_data"), prevent_initial_call=True)  # fmt: skip
    def _zoom(lot_cell, short_cell, near_cell, lot_rows, short_rows, near_rows):
        picked = {LOT_TABLE: (lot_cell, lot_rows), SHORTAGE_TABLE: (short_cell, short_rows),
                  NEAREST_TABLE: (near_cell, near_rows)}.get(ctx.triggered_id)  # fmt: skip
        view = row_view(*picked) if picked else None
        if view is None:
            raise PreventUpdate
        return view
