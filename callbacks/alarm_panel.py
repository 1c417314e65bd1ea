"""The 预警 panel of the map page: live alarms, sensor states, video linkage, closing alarms.

Thin callbacks over the same functions as /api/alarms, /api/sensors, /api/alarms/<id>,
/api/linkage and /api/alarms/<id>/close (`services.alarms`, `analytics.cameras`): the controls
are passed raw and validated there, the role and area rules are applied there, and closing an
alarm is audited there. While the tab is open a timer refreshes the list, the sensor summary
and the pulsing markers (at most MAX_ALARMS newest active alarms in the user's areas).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dash_leaflet as dl
from dash import ALL, Input, Output, State, ctx, dash_table, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics.cameras import alarm_linkage, point_linkage
from auth.accounts import User
from auth.web import client_ip, current_user
from callbacks import ids
from callbacks.ui import acted, row_view
from errors import OneMapError
from geodata import catalog
from runtime import runtime
from services import alarms

TAB = "alarms"
INTERVAL = "al-interval"
OPEN_TAB = ids.in_panel(ids.PANEL_TAB, TAB)  # the side panel's open tab, seen from here
MAP_CLICK = ids.in_panel(ids.PANEL_MAP_CLICK, TAB)
KIND = "al-kind"
LEVEL = "al-level"
SUMMARY = "al-summary"
SENSORS = "al-sensors"
TABLE = "al-table"
MARKERS = "al-markers"
MARKER = "al-marker"
CHOSEN = "al-chosen"
LINKAGE = "al-linkage"
CLOSE = "al-close"
CLOSE_NOTE = "al-close-note"
CLOSE_RESULT = "al-close-result"
CLOSED = "al-closed"
OPEN_ARCHIVE = "al-open-archive"
REFRESH_SECONDS = 30
MAX_ALARMS = 500
LEVEL_COLOURS = dict(zip(catalog.ALARM_LEVELS, ("#1e88e5", "#f9a825", "#fb8c00", "#e53935"),
                         strict=True))  # fmt: skip
ARCHIVE_FIELDS = 8


def level_class(level) -> str:
    """The CSS class of a level (ASCII: its rank in the code list)."""
    rank = catalog.ALARM_LEVELS.index(level) if level in catalog.ALARM_LEVELS else 0
    return f"al-level-{rank}"


def panel(user: User) -> html.Div:
    """Filters, badges, sensor summary, the alarm list, the linkage of the chosen alarm or point."""
    closer = user.role.name in alarms.ALARM_ROLES
    return html.Div(className="analysis-panel alarm-panel", children=[
        dcc.Interval(id=INTERVAL, interval=REFRESH_SECONDS * 1000),
        dcc.Store(id=CHOSEN), dcc.Store(id=CLOSED),
        html.Div(className="site-controls", children=[
            dcc.Dropdown(id=KIND, options=list(catalog.SENSOR_KINDS), multi=True,
                         placeholder="全部设备类型"),
            dcc.Dropdown(id=LEVEL, options=list(catalog.ALARM_LEVELS), multi=True,
                         placeholder="全部告警级别")]),
        html.Div(id=SUMMARY, className="al-summary"),
        legend(),
        html.H4("当前告警（最新在前，点击一行定位）"),
        dash_table.DataTable(
            id=TABLE, data=[], page_size=10,
            columns=[{"id": k, "name": t} for k, t in (
                ("time", "告警时间"), ("level", "级别"), ("sensor_kind", "设备类型"),
                ("sensor_name", "设备"), ("message", "内容"), ("state", "状态"))],
            style_cell={"fontSize": 11, "cursor": "pointer", "whiteSpace": "normal", "textAlign": "left"},
            style_data_conditional=[
                {"if": {"filter_query": f'{{level}} = "{lv}"', "column_id": "level"},
                 "color": "#fff", "backgroundColor": c} for lv, c in LEVEL_COLOURS.items()]),
        html.H4("物联感知设备"), html.Div(id=SENSORS),
        html.H4("告警联动"),
        dcc.Loading(html.Div(id=LINKAGE, children=html.P(
            "在列表或地图上选择告警，或在地图上点击任意位置", className="hint"))),
        html.Div(className="site-controls al-close-box", hidden=not closer, children=[
            dcc.Input(id=CLOSE_NOTE, type="text", maxLength=200, placeholder="处置说明（可选）"),
            html.Button("解除告警", id=CLOSE, n_clicks=0, disabled=True, className="primary")]),
        html.Div(id=CLOSE_RESULT),
    ])  # fmt: skip


def legend() -> html.Details:
    """Colours of the alarm levels (markers pulse)."""
    items = [html.Li([html.Span(className=f"swatch dot {level_class(lv)}",
                                style={"background": c}), lv]) for lv, c in LEVEL_COLOURS.items()]  # fmt: skip
    return html.Details(open=True, className="legend-box", children=[
        html.Summary("图例（闪烁圆点为未解除的告警）"), html.Ul(items, className="legend")])  # fmt: skip


def overlays() -> list:
    """The map layer of the pulsing alarm markers."""
    return [dl.LayerGroup(id=MARKERS)]


def engine():
    """The engine of the app running this callback."""
    return runtime().engine


def error_note(exc: OneMapError) -> html.P:
    """A refused or invalid request, said in the panel."""
    return html.P(exc.message, className="error")


def codes_arg(value):
    """A multi-select's choice as the API's comma list (anything else is passed on raw)."""
    if value in (None, [], ""):
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return value


def list_args(kinds, levels) -> dict:
    """The list request of the panel: active alarms, newest MAX_ALARMS, the chosen filters."""
    return {"kind": codes_arg(kinds), "level": codes_arg(levels), "limit": str(MAX_ALARMS)}


def clock() -> str:
    """Now on the city clock, HH:MM:SS."""
    return datetime.now(ZoneInfo(catalog.CITY_TIMEZONE)).strftime("%H:%M:%S")


def summary_view(result: dict) -> html.Div:
    """Badges: active alarms in all and by level, and when the list was read."""
    badges = [html.Span(f"{lv} {n}", className=f"al-badge {level_class(lv)}",
                        style={"background": LEVEL_COLOURS[lv]}) for lv, n in result["by_level"].items()]  # fmt: skip
    shown = len(result["alarms"])
    more = f"（显示最新 {shown} 条）" if shown < result["total"] else ""
    return html.Div([html.B(f"未解除告警 {result['total']} 条{more}", id="al-total"), " ", *badges,
                     html.Span(f" 更新于 {clock()}", className="hint-inline")])  # fmt: skip


def table_rows(result: dict) -> list[dict]:
    """Rows of the alarm table (position and id kept for zooming and choosing)."""
    return [{"id": a["id"], "time": a["raised_at"][:16].replace("T", " "), "level": a["level"],
             "sensor_kind": a["sensor_kind"], "sensor_name": f"{a['sensor_name'] or ''} {a['sensor_code']}",
             "message": a["message"], "state": a["state"], "lat": a["lat"], "lon": a["lon"]}
            for a in result["alarms"]]  # fmt: skip


def markers(result: dict) -> list:
    """One pulsing div marker per listed alarm, coloured by level; a click chooses it."""
    return [dl.DivMarker(id={"type": MARKER, "index": a["id"]}, position=[a["lat"], a["lon"]],
                         iconOptions={"className": f"al-pulse {level_class(a['level'])}",
                                      "iconSize": [20, 20], "html": ""}, zIndexOffset=1000,
                         title=f"{a['level']} · {a['sensor_kind']} · {a['raised_at'][:16].replace('T', ' ')}")
            for a in result["alarms"]]  # fmt: skip


def sensor_view(result: dict) -> html.Table:
    """Counts of sensors by kind and live state (正常 / 告警)."""
    counts = {k: {"正常": 0, "告警": 0} for k in catalog.SENSOR_KINDS}
    for s in result["sensors"]:
        counts.setdefault(s["kind"], {"正常": 0, "告警": 0})[s["state"]] += 1
    head = html.Tr([html.Th(t) for t in ("设备类型", "正常", "告警", "合计")])
    rows = [html.Tr([html.Td(k), html.Td(c["正常"]), html.Td(c["告警"], className="al-alarming"
                     if c["告警"] else None), html.Td(c["正常"] + c["告警"])]) for k, c in counts.items()]  # fmt: skip
    return html.Table([head, *rows], className="attr-table al-sensor-table", id="al-sensor-table")


def alarm_head(alarm: dict) -> html.Div:
    """The chosen alarm: level, sensor, time, state and message."""
    return html.Div(className="al-head", id="al-head", children=[
        html.Span(alarm["level"], className=f"al-badge {level_class(alarm['level'])}",
                  style={"background": LEVEL_COLOURS.get(alarm["level"], "#999")}),
        f" {alarm['sensor_kind']} · {alarm['sensor_name'] or ''} {alarm['sensor_code']}",
        html.Br(),
        f"{alarm['raised_at'][:19].replace('T', ' ')} · {alarm['state']} · {alarm['message']}",
    ])  # fmt: skip


def place_view(place: dict) -> html.Table:
    """Where it is: nearest address, unit grid, community, street, district, responsible unit."""
    near = place.get("nearest_address")
    rows = [("最近地址", f"{near['address']}（{near['distance_m']:.0f} 米）" if near else "—"),
            ("单元网格", place.get("grid_code") or "—"),
            ("社区", (place.get("community") or {}).get("name", "—")),
            ("街道", (place.get("street") or {}).get("name", "—")),
            ("区县", (place.get("district") or {}).get("name", "—")),
            ("责任单位", place.get("responsible_unit") or "—")]  # fmt: skip
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows],
                      className="attr-table", id="al-place")  # fmt: skip


def camera_view(cameras, reason) -> html.Div:
    """The cameras seeing the place, nearest first, with stream links; or why none are shown."""
    if cameras is None:
        return html.P(
            reason or "当前角色不能查看视频监控", className="hint", id="al-cameras-hidden"
        )
    if not cameras:
        return html.P("没有摄像头能看到此处", className="hint", id="al-cameras-none")
    items = [html.Li([
        html.Span("在线" if c["online"] else "离线", className="status" + ("" if c["online"] else " al-offline")),
        f" {c['name'] or c['code']} · {c['distance_m']:.0f} 米 ",
        html.A("视频流", href=c["stream_url"], target="_blank", rel="noopener noreferrer")
        if c.get("stream_url") else html.Span("无视频流", className="hint-inline"),
    ]) for c in cameras]  # fmt: skip
    return html.Ul(items, className="case-list", id="al-cameras")


def archive_view(data: dict | None, reason) -> html.Div:
    """A short archive of the watched or nearest component, with a button to open it in 档案."""
    if data is None:
        return html.P(reason or "没有关联的部件", className="hint", id="al-archive-none")
    attrs, titles = data["attributes"], data["titles"]
    shown = [(titles.get(k, k), v) for k, v in attrs.items() if v is not None and k in titles]
    rows = [html.Tr([html.Th(t), html.Td(str(v))]) for t, v in shown[:ARCHIVE_FIELDS]]
    return html.Div(id="al-archive", children=[
        html.B(f"{data['layer_title']} · {attrs.get('code') or data['id']}"),
        html.Table(rows, className="attr-table"),
        html.Span(f"相关案件 {len(data.get('related_cases') or [])} 件 "),
        html.Button("在档案中打开", className="link-button",
                    id={"type": OPEN_ARCHIVE, "layer": data["layer"], "id": data["id"]}),
    ])  # fmt: skip


def linkage_view(body: dict) -> html.Div:
    """Everything the linkage answers: the alarm, the place, the cameras, the component archive."""
    n = "" if body["cameras"] is None else f"（{len(body['cameras'])}）"
    return html.Div(className="al-linkage", children=[
        alarm_head(body["alarm"]) if body.get("alarm") else html.P(
            f"地图点 {body['place']['lon']:.6f}, {body['place']['lat']:.6f}", id="al-head"),
        html.H4("位置"), place_view(body["place"]),
        html.H4(f"可视摄像头{n}（由近及远）"), camera_view(body["cameras"], body["cameras_reason"]),
        html.H4("关联部件档案"), archive_view(body["archive"], body["archive_reason"]),
    ])  # fmt: skip


def linkage_of(chosen) -> dict:
    """The linkage of the chosen alarm ({alarm}) or point ({lon, lat}); untrusted, audited."""
    if not isinstance(chosen, dict):
        raise PreventUpdate
    with engine().begin() as conn:  # camera stream links and restricted archives are audited
        if "alarm" in chosen:
            return alarm_linkage(conn, current_user(), chosen["alarm"], ip=client_ip())
        return point_linkage(conn, current_user(), chosen.get("lon"), chosen.get("lat"),
                             ip=client_ip())  # fmt: skip


def chosen_of(trigger, cell, rows, clicked, tab) -> tuple[dict, dict | None]:
    """(what was chosen, the view to zoom to) from a table row, a marker or a map click."""
    if trigger == TABLE:
        view = row_view(cell, rows, zoom=18)
        if view is None:
            raise PreventUpdate
        return {"alarm": rows[int(cell["row"])].get("id")}, view
    if isinstance(trigger, dict) and trigger.get("type") == MARKER:
        return {"alarm": trigger.get("index")}, None
    latlng = clicked.get("latlng") if isinstance(clicked, dict) else None
    if trigger == MAP_CLICK and tab == TAB and isinstance(latlng, dict):
        return {"lon": latlng.get("lng"), "lat": latlng.get("lat")}, None
    raise PreventUpdate


def register(app, settings) -> None:
    """Refresh (timer, filters, tab), choosing, linkage, opening the archive, closing."""

    @app.callback(Output(SUMMARY, "children"), Output(TABLE, "data"), Output(MARKERS, "children"),
                  Input(INTERVAL, "n_intervals"), Input(KIND, "value"), Input(LEVEL, "value"),
                  Input(OPEN_TAB, "data"), Input(CLOSED, "data"))  # fmt: skip
    def _refresh(_n, kinds, levels, tab, _closed):
        if tab != TAB:  # markers only while the tab is open; the timer idles
            if ctx.triggered_id == INTERVAL:
                raise PreventUpdate
            return no_update, no_update, []
        try:
            with engine().connect() as conn:
                result = alarms.list_alarms(conn, current_user(), list_args(kinds, levels))
        except OneMapError as exc:
            return error_note(exc), [], []
        return summary_view(result), table_rows(result), markers(result)

    @app.callback(Output(SENSORS, "children"), Input(INTERVAL, "n_intervals"),
                  Input(OPEN_TAB, "data"), Input(CLOSED, "data"))  # fmt: skip
    def _sensors(_n, tab, _closed):
        if tab != TAB:
            raise PreventUpdate
        try:
            with engine().connect() as conn:
                return sensor_view(alarms.sensor_states(conn, current_user(), {"limit": "20000"}))
        except OneMapError as exc:
            return error_note(exc)

    @app.callback(Output(CHOSEN, "data"), Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input(TABLE, "active_cell"), Input({"type": MARKER, "index": ALL}, "n_clicks"),
                  Input(MAP_CLICK, "data"), State(TABLE, "derived_viewport_data"),
                  State(ids.PANEL_TABS, "value"), prevent_initial_call=True)  # fmt: skip
    def _choose(cell, _clicks, clicked, rows, tab):
        trigger = ctx.triggered_id
        if isinstance(trigger, dict) and not acted():
            raise PreventUpdate  # markers redrawn, not clicked
        try:
            chosen, view = chosen_of(trigger, cell, rows, clicked, tab)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            raise PreventUpdate from None
        return chosen, view or no_update

    @app.callback(Output(LINKAGE, "children"), Output(CLOSE, "disabled"),
                  Input(CHOSEN, "data"), Input(CLOSED, "data"), prevent_initial_call=True)  # fmt: skip
    def _linkage(chosen, _closed):
        try:
            body = linkage_of(chosen)
        except OneMapError as exc:
            return error_note(exc), True
        return linkage_view(body), not (body.get("alarm") or {}).get("active")

    @app.callback(Output(ids.CLICKED_STORE, "data", allow_duplicate=True),
                  Input({"type": OPEN_ARCHIVE, "layer": ALL, "id": ALL}, "n_clicks"),
                  prevent_initial_call=True)  # fmt: skip
    def _open_archive(_clicks):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not acted():
            raise PreventUpdate
        return {"layer": trigger.get("layer"), "id": trigger.get("id")}  # the 档案 tab checks it

    @app.callback(Output(CLOSE_RESULT, "children"), Output(CLOSED, "data"),
                  Input(CLOSE, "n_clicks"), State(CHOSEN, "data"), State(CLOSE_NOTE, "value"),
                  prevent_initial_call=True)  # fmt: skip
    def _close(n, chosen, note):
        if not n:
            raise PreventUpdate
        if not isinstance(chosen, dict) or "alarm" not in chosen:
            return html.P("请先在列表或地图上选择一条告警", className="error"), no_update
        try:
            with engine().begin() as conn:
                done = alarms.close_alarm(
                    conn, current_user(), chosen["alarm"], note, ip=client_ip()
                )
        except OneMapError as exc:
            return error_note(exc), no_update
        alarm = done["alarm"]
        said = "已解除" if done["changed"] else "该告警此前已解除"
        return (html.P(f"告警 {alarm['id']} {said}（{(alarm['cleared_at'] or '')[:19].replace('T', ' ')}）",
                       className="al-done", id="al-close-done"),
                {"id": alarm["id"], "changed": done["changed"], "at": clock()})  # fmt: skip
