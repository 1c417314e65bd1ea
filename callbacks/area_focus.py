"""Area focus (区域聚焦): choose a district, street or community; zoom there and outline it."""

from __future__ import annotations

from dash import Input, Output, dcc, html, no_update

from callbacks import ids
from callbacks.ui import DROPDOWN_LABELS, store
from geodata.areas import is_area_code
from geodata.queries import area as area_row
from geodata.queries import child_areas, districts_with_streets
from runtime import runtime

OUTLINE_STYLE = {"color": "#e65100", "weight": 3, "fill": False, "dashArray": "6 4"}


def selector(area: str | None = None, outline: dict | None = None) -> html.Div:
    """A searchable list of districts, their streets and communities (set to the URL's area,
    named from its outline until the whole list comes, once the map is drawn)."""
    named = [{"label": f["properties"]["name"], "value": f["properties"]["code"]}
             for f in (outline or {}).get("features", [])]  # fmt: skip
    return html.Div(
        className="area-selector",
        children=[
            dcc.Dropdown(
                labels=DROPDOWN_LABELS,
                id=ids.AREA_SELECT,
                options=named,
                value=area,
                placeholder="选择区县 / 街道 / 社区…",
                clearable=True,
                optionHeight=30,
                maxHeight=420,
            ),
            store(ids.AREA_VALUE, area or None),
        ],
    )


def area_options(conn) -> list[dict]:
    """Hierarchical options: 区县, 区县 / 街道, 区县 / 街道 / 社区."""
    options = []
    for d in districts_with_streets(conn):
        options.append({"label": d["name"], "value": d["code"]})
        for s in child_areas(conn, d["code"]):
            options.append({"label": f"{d['name']} / {s['name']}", "value": s["code"]})
            for c in child_areas(conn, s["code"]):
                options.append({"label": f"{d['name']} / {s['name']} / {c['name']}",
                                "value": c["code"]})  # fmt: skip
    return options


def focus(conn, code: str | None) -> tuple[dict | None, dict | None]:
    """Outline (GeoJSON) and view request for an area code (None clears)."""
    if not code or not isinstance(code, str) or not is_area_code(code):
        return {"type": "FeatureCollection", "features": []}, None
    row = area_row(conn, code)
    if row is None:
        return {"type": "FeatureCollection", "features": []}, None
    feature = {"type": "Feature", "geometry": row["geometry"],
               "properties": {"code": row["code"], "name": row["name"]}}  # fmt: skip
    bounds = [[row["miny"], row["minx"]], [row["maxy"], row["maxx"]]]
    return {"type": "FeatureCollection", "features": [feature]}, {"bounds": bounds}


def register(app, settings) -> None:
    """Options once the map is drawn, and focusing on a chosen area."""

    @app.callback(Output(ids.AREA_SELECT, "options"), Input(ids.MAP_DRAWN, "data"),
                  prevent_initial_call=True)  # fmt: skip
    def _options(_drawn):  # once the first view is drawn: the map comes first
        with runtime().reads.connect() as conn:
            return area_options(conn)

    @app.callback(Output(ids.AREA_VALUE, "data"), Output(ids.AREA_OUTLINE, "data"),
                  Output(ids.VIEW_REQUEST, "data", allow_duplicate=True),
                  Input(ids.AREA_SELECT, "value"), prevent_initial_call=True)  # fmt: skip
    def _focus(code):
        with runtime().reads.connect() as conn:
            outline, view = focus(conn, code)
        return (code if view else None), outline, no_update if view is None else view
