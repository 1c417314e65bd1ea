"""指挥中心大屏 (/bigscreen): a dark wall display that refreshes and rotates by itself.

Thin callbacks over `analytics.bigscreen` (the same service as GET /api/bigscreen): a timer asks
for the snapshot, and only the parts whose hash changed are sent to the browser (the others are
`no_update`); a second timer rotates through the configured views unless an operator pinned one.
When the database cannot be reached the screen keeps its figures and shows a 数据延迟 banner with
the time of the last good update; the next good refresh clears it. The map is the one-map's
vector-tile manager (assets/onemap_layers.js) with the view's layers, the hotspot cells on top,
and assets/onemap_bigscreen.js runs the clock and flies to a new alarm for a few seconds.
"""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import parse_qs

import dash_leaflet as dl
import plotly.graph_objects as go
from dash import ClientsideFunction, Input, Output, State, ctx, dcc, html, no_update
from dash_extensions.javascript import Namespace
from flask import has_request_context
from sqlalchemy.exc import InterfaceError, OperationalError

from analytics import bigscreen as bs
from auth.access import visible_layers
from auth.accounts import User
from auth.web import client_ip, current_user
from callbacks import ids
from callbacks.pages import Page
from errors import OneMapError
from layers.registry import layer_json
from runtime import runtime
from settings import Settings

LOG = logging.getLogger(__name__)
LAYER_JS = Namespace("onemap", "layers")
BASE_LAYERS = ("district", "road")  # always drawn under a view's layers (the offline basemap)
BASE_OPACITY = {"road": 0.3}  # the road net stays in the background on the dark screen
CHART_SLOTS = 3
LIMITS = {"refresh": (2, 3600), "rotate": (5, 86_400)}
HOT_STYLE = {"color": "#ff8a80", "weight": 2, "fillColor": "#ff1744", "fillOpacity": 0.75}
# KPI cards: title, unit, and whether a rise is good (True), bad (False) or neither (None).
KPI_META = {
    "cases_new": ("今日新增案件", "件", None),
    "cases_closed": ("今日结案", "件", True),
    "on_time_rate": ("按期结案率（近7日）", "%", True),
    "overdue": ("超期未结案件", "件", False),
    "alarms_active": ("未解除告警", "条", False),
    "camera_online": ("视频在线率", "%", True),
    "parking_occupancy": ("全市停车占用率", "%", None),
    "park_coverage": ("公园服务半径覆盖率", "%", True),
}
CHART_TITLES = {
    "cases_by_class": "案件类别（今日 / 近7日）",
    "cases_trend": "近30日案件趋势",
    "district_ranking": "按期结案率排名（近30日）",
    "alarms_by_kind": "近7日告警（按类型、级别）",
    "parking_by_hour": "停车占用率（今日 / 昨日，按小时）",
}
INK, MUTED, ACCENT = "#dbe9ff", "#8aa4c8", "#29b6f6"


def screen_views(settings: Settings) -> tuple[bs.View, ...]:
    """The views of this deployment (a bad config file stops the start with its error)."""
    return bs.configured_views(settings.bigscreen_config_path())


def seconds(query: dict, name: str, default: int) -> int:
    """An interval from the URL (?refresh=, ?rotate=) within its limits, else the setting."""
    low, high = LIMITS[name]
    raw = (query.get(name) or [""])[0]
    return min(max(int(raw), low), high) if raw.isdigit() else default


def view_by_id(views: tuple[bs.View, ...], view_id) -> bs.View:
    """The view of that id (an unknown or tampered id: the first view)."""
    return next((v for v in views if v.id == view_id), views[0])


def wanted_layers(view: bs.View, user: User) -> dict:
    """The map state of a view for the layer manager: base layers plus the view's, as allowed."""
    allowed = {x.id for x in visible_layers(user)}
    chosen = [lid for lid in (*BASE_LAYERS, *view.layers) if lid in allowed]
    return {"layers": {lid: {"opacity": BASE_OPACITY.get(lid, 1), "filters": {}} for lid in chosen},
            "area": None}  # fmt: skip


def screen_registry(user: User) -> list[dict]:
    """The layers the user may see; without analytics (the kiosk) no heat look is tried."""
    registry = [layer_json(x) for x in visible_layers(user)]
    if not user.role.analytics:
        registry = [{**x, "overview": None} for x in registry]
    return registry


def layout(settings: Settings, user: User, query: str) -> html.Div:
    """The whole screen for this user (the kiosk: no restricted layer in its registry)."""
    views = screen_views(settings)
    q = parse_qs(query)
    first = view_by_id(views, (q.get("view") or [""])[0])
    refresh = seconds(q, "refresh", settings.bigscreen_refresh_s)
    rotate = seconds(q, "rotate", settings.bigscreen_rotate_s)
    return html.Div(
        className="bs-page",
        children=[
            dcc.Store(id=ids.BS_REGISTRY, data=screen_registry(user)),
            dcc.Store(id=ids.BS_VIEW, data={"id": first.id, "fixed": bool(q.get("view"))}),
            dcc.Store(id=ids.BS_WANTED),
            dcc.Store(id=ids.BS_SHOWN, data={}),
            dcc.Store(id=ids.BS_PIN),
            dcc.Store(id=ids.BS_ALARMS),
            dcc.Store(id=ids.BS_SYNCED),
            dcc.Store(id=ids.BS_FLOWN),
            dcc.Store(id=ids.BS_SCALE),
            dcc.Store(id=ids.BS_HOME, data=home_view(user)),
            dcc.Store(id=ids.BS_HOMED),
            dcc.Interval(id=ids.BS_TICK, interval=refresh * 1000, n_intervals=0),
            dcc.Interval(id=ids.BS_ROTATE, interval=rotate * 1000, n_intervals=0),
            header(settings, views, first),
            html.Div(id=ids.BS_BANNER, className="bs-banner bs-hidden"),
            # the browser's own watchdog (assets/onemap_bigscreen.js): shown when no refresh has
            # come back for a while, e.g. when the server cannot even check the session
            html.Div(id="bs-stale", className="bs-banner bs-hidden", **{"data-refresh": refresh}),
            html.Main(
                className="bs-main",
                children=[
                    html.Section(
                        className="bs-left",
                        children=[
                            html.Div(
                                [kpi_card(k, None) for k in first.kpis],
                                id=ids.BS_KPIS,
                                className="bs-kpis",
                            ),
                            html.Div(
                                className="bs-feed-box",
                                children=[html.H2("实时动态"), html.Ul(id=ids.BS_FEED)],
                            ),
                        ],
                    ),
                    html.Section(screen_map(settings), className="bs-centre"),
                    html.Section(
                        className="bs-right",
                        children=[chart_slot(i) for i in range(CHART_SLOTS)],
                    ),
                ],
            ),
        ],
    )


def header(settings: Settings, views, first: bs.View) -> html.Header:
    """Title, the views (the current one lit), the clock and the last update."""
    return html.Header(
        className="bs-header",
        children=[
            html.H1(f"{settings.title} · 指挥中心"),
            html.Ol(
                id=ids.BS_VIEWS,
                className="bs-views",
                children=view_tabs(views, first.id, None),
            ),
            html.Div(
                className="bs-time",
                children=[
                    html.Span(id="bs-clock", className="bs-clock"),
                    html.Span("等待数据…", id=ids.BS_UPDATED, className="bs-updated"),
                ],
            ),
        ],
    )


def view_tabs(views, current: str, pin: dict | None) -> list:
    """The view titles, the current one lit and marked when pinned."""
    return [
        html.Li(
            f"{v.title}{'（固定）' if pin and pin['view'] == v.id else ''}",
            className="bs-view bs-current" if v.id == current else "bs-view",
            **{"data-view": v.id},
        )
        for v in views
    ]


def home_view(user: User) -> dict | None:
    """The map's home: the extent of the unit grids the user may see (the managed area)."""
    if not has_request_context():
        return None
    with runtime().reads.connect() as conn:
        bounds = bs.managed_bounds(conn, user)
    return {"bounds": bounds} if bounds else None


def screen_map(settings: Settings) -> dl.Map:
    """The city map: vector-tile host, hotspot cells, no controls to touch."""
    return dl.Map(
        id=ids.BS_MAP,
        center=[settings.map_center_lat, settings.map_center_lon],
        zoom=settings.map_zoom,
        minZoom=3,
        maxZoom=20,
        preferCanvas=True,
        zoomControl=False,
        attributionControl=False,
        className="bs-map",
        children=[
            dl.LayerGroup(id=ids.BS_VT_HOST, eventHandlers={"add": LAYER_JS("attach")}),
            dl.Pane(  # above the vector tiles' pane
                dl.GeoJSON(id=ids.BS_HOT, style=HOT_STYLE, interactive=False),
                name="bs-hot",
                style={"zIndex": 640},
            ),
        ],
    )


def chart_slot(i: int) -> html.Div:
    """One chart place of the right column."""
    return html.Div(
        className="bs-chart",
        children=[
            html.H2(id=f"bs-chart-title-{i}"),
            html.Div(id=f"bs-chart-{i}", className="bs-chart-body"),
        ],
    )


# --- rendering --------------------------------------------------------------------------------


def number(value, unit: str) -> str:
    """A KPI value as shown (— when unknown)."""
    if value is None:
        return "—"
    return f"{value:,.1f}" if unit == "%" else f"{value:,.0f}"


def delta_text(kpi: dict, unit: str) -> tuple[str, str]:
    """The change line of a card and its class (up, down, flat, none)."""
    delta = kpi.get("delta")
    if delta is None:
        return f"{kpi.get('basis', '')} —", "none"
    arrow = "▲" if delta > 0 else "▼" if delta < 0 else "＝"
    shown = f"{abs(delta):.1f} 个百分点" if unit == "%" else f"{abs(delta):,.0f}"
    return f"{kpi['basis']} {arrow} {shown}", "up" if delta > 0 else "down" if delta < 0 else "flat"


def kpi_card(kpi_id: str, kpi: dict | None) -> html.Div:
    """One KPI card: title, large value and unit, change against the earlier figure."""
    title, unit, good = KPI_META[kpi_id]
    kpi = kpi or {"value": None, "delta": None, "basis": "暂无数据"}
    change, direction = delta_text(kpi, unit)
    tone = "" if good is None or direction in ("none", "flat") else (
        "good" if (direction == "up") == good else "bad")  # fmt: skip
    note = f"（{kpi['as_of'][11:16]}）" if kpi.get("as_of") else ""
    return html.Div(
        className="bs-kpi",
        id=f"bs-kpi-{kpi_id}",
        children=[
            html.Div(title + note, className="bs-kpi-title"),
            html.Div(
                [
                    html.Span(number(kpi["value"], unit), className="bs-kpi-value"),
                    html.Span(unit, className="bs-kpi-unit"),
                ]
            ),
            html.Div(change, className=f"bs-kpi-change {direction} {tone}".strip()),
        ],
    )


def dark_layout(fig: go.Figure, scale: float) -> go.Figure:
    """The charts' dark look, type sized for the screen."""
    size = 13 * scale
    fig.update_layout(
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        font={"color": INK, "size": size, "family": "sans-serif"},
        margin={"l": 8 * scale, "r": 8 * scale, "t": 8 * scale, "b": 8 * scale},
        legend={"orientation": "h", "y": 1.12, "x": 0, "font": {"size": size}},
        bargap=0.25, uirevision="bigscreen",
    )  # fmt: skip
    fig.update_xaxes(gridcolor="rgba(138,164,200,0.15)", automargin=True, color=MUTED)
    fig.update_yaxes(gridcolor="rgba(138,164,200,0.15)", automargin=True, color=MUTED)
    return fig


def chart_figure(chart_id: str, rows, scale: float) -> go.Figure:
    """The figure of one chart from its rows."""
    fig = go.Figure()
    if chart_id == "cases_by_class":
        rows = rows[:8][::-1]
        names = [r["name"] for r in rows]
        fig.add_bar(y=names, x=[r["week"] for r in rows], orientation="h", name="近7日",
                    marker_color="#3d5a80")  # fmt: skip
        fig.add_bar(y=names, x=[r["today"] for r in rows], orientation="h", name="今日",
                    marker_color=ACCENT)  # fmt: skip
        fig.update_layout(barmode="overlay")
    elif chart_id == "cases_trend":
        days = [r["day"] for r in rows]
        fig.add_scatter(x=days, y=[r["new"] for r in rows], name="新增", mode="lines",
                        line={"color": ACCENT, "width": 2 * scale})  # fmt: skip
        fig.add_scatter(x=days, y=[r["closed"] for r in rows], name="结案", mode="lines",
                        line={"color": "#66bb6a", "width": 2 * scale})  # fmt: skip
        fig.update_xaxes(type="date", tickformat="%m-%d")
    elif chart_id == "district_ranking":
        ranked = (rows or {}).get("rows", [])[:10][::-1]
        fig.add_bar(y=[r["name"] for r in ranked], x=[r["rate"] for r in ranked],
                    orientation="h", marker_color="#ffb74d",
                    text=[f"{r['rate']:.1f}%" for r in ranked], textposition="inside")  # fmt: skip
        fig.update_xaxes(range=[0, 100])
    elif chart_id == "alarms_by_kind":
        for level, colour in (("提示", "#90caf9"), ("一般", "#ffd54f"), ("严重", "#ff8a65"),
                              ("紧急", "#e53935")):  # fmt: skip
            part = [r for r in rows if r["level"] == level]
            fig.add_bar(x=[r["kind"] for r in part], y=[r["n"] for r in part], name=level,
                        marker_color=colour)  # fmt: skip
        fig.update_layout(barmode="stack")
    elif chart_id == "parking_by_hour":
        for day, colour in (("昨日", "#78909c"), ("今日", ACCENT)):
            part = [r for r in rows if r["day"] == day]
            fig.add_scatter(x=[r["hour"] for r in part], y=[r["pct"] for r in part], name=day,
                            mode="lines", line={"color": colour, "width": 2 * scale})  # fmt: skip
        fig.update_xaxes(range=[0, 23], dtick=3)
    return dark_layout(fig, scale)


def graph(figure: go.Figure | None) -> dcc.Graph | None:
    """A new chart component (None for an empty slot): a changed chart replaces the old one,
    which Plotly purges, rather than morphing it (morphing one chart type into another kept memory
    growing on rotation)."""
    if figure is None:
        return None
    return dcc.Graph(figure=figure, style={"height": "100%"},
                     config={"displayModeBar": False, "staticPlot": True, "responsive": True})  # fmt: skip


def feed_item(item: dict, fresh: bool) -> html.Li:
    """One line of the live feed (new since the last refresh: highlighted)."""
    kind = "告警" if item["kind"] == "alarm" else "案件"
    level = f"〔{item['level']}〕" if item.get("level") else ""
    return html.Li(
        className=f"bs-item bs-{item['kind']}{' bs-new' if fresh else ''}",
        **{"data-key": item["key"]},
        children=[
            html.Span(item["at"][11:16], className="bs-item-time"),
            html.Span(kind, className="bs-item-kind"),
            html.Span(f"{level}{item['title']}", className="bs-item-title"),
            html.Span(item["place"] or item["state"] or "", className="bs-item-place"),
        ],
    )


# --- pinning a view from the one-map page -----------------------------------------------------

PIN_SELECT, PIN_STATUS, ROTATE_VALUE = "bs-pin-select", "bs-pin-status", "rotate"


def pin_control(settings: Settings, user: User) -> html.Div:
    """The header control of the one-map page that pins a big-screen view (operators, admins;
    hidden for the other roles, whose requests the service refuses anyway)."""
    views = screen_views(settings)
    current = None
    if has_request_context() and user.role.name in bs.PIN_ROLES:
        with runtime().engine.connect() as conn:  # the pin is not versioned: read the primary
            current = bs.pinned(conn, views)
    options = [{"label": "大屏：轮播", "value": ROTATE_VALUE}] + [
        {"label": f"大屏固定：{v.title}", "value": v.id} for v in views
    ]
    return html.Div(
        className="bs-pin",
        style={} if user.role.name in bs.PIN_ROLES else {"display": "none"},
        children=[
            dcc.Dropdown(
                id=PIN_SELECT,
                options=options,
                clearable=False,
                searchable=False,
                value=current["view"] if current else ROTATE_VALUE,
                style={"minWidth": "11rem"},
            ),
            html.Span(id=PIN_STATUS, className="bs-pin-status"),
        ],
    )


def register_pin(app, settings: Settings) -> None:
    """The pin control's callback: the same service as POST /api/bigscreen/pin."""

    @app.callback(Output(PIN_STATUS, "children"), Input(PIN_SELECT, "value"),
                  prevent_initial_call=True)  # fmt: skip
    def _pin(value):
        view = None if value in (None, ROTATE_VALUE) else value
        try:
            with runtime().engine.begin() as conn:
                done = bs.pin_view(conn, current_user(), view, screen_views(settings),
                                   ip=client_ip())  # fmt: skip
        except OneMapError as exc:
            return str(exc)
        return "大屏已恢复轮播" if done["pinned"] is None else "大屏已固定"


# --- refresh ----------------------------------------------------------------------------------


def take_snapshot(settings: Settings, user: User) -> tuple[dict, dict | None]:
    """The service's snapshot and the pinned view, in one short transaction."""
    views = screen_views(settings)
    with runtime().engine.begin() as conn:
        return bs.snapshot(conn, user, views, settings.bigscreen_day), bs.pinned(conn, views)


def render(snap: dict, view: bs.View, shown: dict, scale: float) -> tuple[dict, dict]:
    """The outputs whose content changed since `shown` (others no_update) and the new `shown`."""
    out, now = {}, {}
    kpis = bs.kpi_values(snap)
    cards = [(k, kpis.get(k)) for k in view.kpis]
    now["kpis"] = bs.digest([view.id, cards])
    out["kpis"] = [kpi_card(k, v) for k, v in cards] if now["kpis"] != shown.get("kpis") else None
    charts = bs.chart_values(snap)
    for i in range(CHART_SLOTS):
        chart = view.charts[i] if i < len(view.charts) else None
        now[f"chart{i}"] = bs.digest([chart, charts.get(chart), scale])
        if now[f"chart{i}"] != shown.get(f"chart{i}"):
            out[f"chart{i}"] = (
                (CHART_TITLES[chart], chart_figure(chart, charts.get(chart) or [], scale))
                if chart else ("", None)  # a view with fewer charts: the slot stays empty
            )  # fmt: skip
    hot = snap["parts"].get("hotspots") if view.hotspots else None
    now["hot"] = hot["hash"] if hot else "none"
    if now["hot"] != shown.get("hot"):
        out["hot"] = hot["data"] if hot else {"type": "FeatureCollection", "features": []}
    feed = snap["parts"]["feed"]
    now["feed"], now["keys"] = feed["hash"], [i["key"] for i in feed["data"]]
    if now["feed"] != shown.get("feed"):
        seen = set(shown.get("keys") or [])
        out["feed"] = [feed_item(i, bool(seen) and i["key"] not in seen) for i in feed["data"]]
        out["alarms"] = {"first": not seen, "items": [
            {"key": i["key"], "lat": i["lat"], "lon": i["lon"], "level": i["level"]}
            for i in feed["data"] if i["kind"] == "alarm" and i["key"] not in seen]}  # fmt: skip
    return out, now


def updated_text(snap: dict) -> str:
    """The time of this update (and the data day when the screen replays older data)."""
    taken = datetime.now(bs.city_zone()).strftime("%H:%M:%S")
    if snap["mode"] == "latest":
        return f"更新于 {taken} · 数据截至 {snap['now'][:16].replace('T', ' ')}"
    return f"更新于 {taken}"


def register(app, settings: Settings) -> None:
    """The screen's timers: refresh (only changed parts), rotation, layer sync, clock and fly."""
    slots = [Output(f"bs-chart-title-{i}", "children") for i in range(CHART_SLOTS)]
    figures = [Output(f"bs-chart-{i}", "children") for i in range(CHART_SLOTS)]

    @app.callback(
        Output(ids.BS_KPIS, "children"), *slots, *figures, Output(ids.BS_HOT, "data"),
        Output(ids.BS_FEED, "children"), Output(ids.BS_ALARMS, "data"),
        Output(ids.BS_UPDATED, "children"), Output(ids.BS_BANNER, "children"),
        Output(ids.BS_BANNER, "className"), Output(ids.BS_SHOWN, "data"), Output(ids.BS_PIN, "data"),
        Input(ids.BS_TICK, "n_intervals"), Input(ids.BS_VIEW, "data"), Input(ids.BS_SCALE, "data"),
        State(ids.BS_SHOWN, "data"), State(ids.BS_PIN, "data"),
    )  # fmt: skip
    def _refresh(_tick, view_state, scale, shown, pin):
        shown = shown if isinstance(shown, dict) else {}
        views = screen_views(settings)
        view = view_by_id(
            views, (view_state or {}).get("id") if isinstance(view_state, dict) else None
        )
        scale = min(max(float(scale), 0.5), 4.0) if isinstance(scale, (int, float)) else 1.0
        try:
            snap, new_pin = take_snapshot(settings, current_user())
        except (OperationalError, InterfaceError):
            LOG.warning("big screen refresh: database unreachable", exc_info=True)
            return delayed(shown, "数据库暂时无法连接")
        except Exception:  # the screen must never blank: keep the figures, say it is late
            LOG.exception("big screen refresh failed")
            return delayed(shown, "数据更新出错")
        out, state = render(snap, view, shown, scale)
        state["last"] = updated_text(snap)
        titles = [out[f"chart{i}"][0] if f"chart{i}" in out else no_update
                  for i in range(CHART_SLOTS)]  # fmt: skip
        figs = [graph(out[f"chart{i}"][1]) if f"chart{i}" in out else no_update
                for i in range(CHART_SLOTS)]  # fmt: skip
        return (out.get("kpis") or no_update, *titles, *figs,
                out.get("hot", no_update), out.get("feed") or no_update,
                out.get("alarms") or no_update, state["last"], "", "bs-banner bs-hidden", state,
                new_pin if new_pin != pin else no_update)  # fmt: skip

    def delayed(shown: dict, why: str) -> tuple:
        """Everything kept as it is, the 数据延迟 banner up with the last good update."""
        last = shown.get("last") or "尚无成功更新"
        banner = f"数据延迟：{why}，大屏显示的是上次成功更新的数据（{last}），恢复后自动更新"
        keep = [no_update] * (1 + 2 * CHART_SLOTS + 3)
        return (*keep, no_update, banner, "bs-banner", no_update, no_update)

    @app.callback(
        Output(ids.BS_VIEW, "data"), Output(ids.BS_VIEWS, "children"), Output(ids.BS_WANTED, "data"),
        Input(ids.BS_ROTATE, "n_intervals"), Input(ids.BS_PIN, "data"), State(ids.BS_VIEW, "data"),
    )  # fmt: skip
    def _rotate(n, pin, view_state):
        views = screen_views(settings)
        rotated = ctx.triggered_id == ids.BS_ROTATE
        state = view_state if isinstance(view_state, dict) else {}
        current = view_by_id(views, state.get("id"))
        pinned_id = pin.get("view") if isinstance(pin, dict) else None
        if pinned_id in {v.id for v in views}:
            nxt = view_by_id(views, pinned_id)
        elif state.get("fixed") or not rotated:
            nxt = current
        else:
            nxt = views[(views.index(current) + 1) % len(views)]
        new_state = {"id": nxt.id, "fixed": bool(state.get("fixed"))}
        return (new_state if new_state != state else no_update,
                view_tabs(views, nxt.id, pin if isinstance(pin, dict) else None),
                wanted_layers(nxt, current_user()))  # fmt: skip

    app.clientside_callback(
        ClientsideFunction(namespace="bigscreen", function_name="syncLayers"),
        Output(ids.BS_SYNCED, "data"), Input(ids.BS_WANTED, "data"), State(ids.BS_REGISTRY, "data"),
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction(namespace="bigscreen", function_name="flyToAlarms"),
        Output(ids.BS_FLOWN, "data"), Input(ids.BS_ALARMS, "data"), prevent_initial_call=True,
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction(namespace="onemap", function_name="applyView"),
        Output(ids.BS_HOMED, "data"), Input(ids.BS_HOME, "data"),
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction(namespace="bigscreen", function_name="scale"),
        Output(ids.BS_SCALE, "data"), Input(ids.BS_SYNCED, "data"),
    )  # fmt: skip


PAGE = Page(path="/bigscreen", title="指挥中心大屏", layout=layout, register=register)
