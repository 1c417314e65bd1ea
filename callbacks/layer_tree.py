"""Layer tree (图层目录): themes, checkboxes, opacity, registry filters and legends; URL state."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dash import ALL, MATCH, ClientsideFunction, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from auth.access import layer_allowed
from auth.accounts import User
from auth.web import current_user
from callbacks import ids
from callbacks.ui import CODE_NAMES, DROPDOWN_LABELS, output_id_field
from layers.registry import GROUPS, REGISTRY, Layer

DEFAULT_ON = ("road", "green_space", "component_01")


def layer_id(kind: str, layer: str, field: str | None = None) -> dict:
    """Pattern-matching id of a control in the tree."""
    return {"type": kind, "layer": layer} if field is None else {
        "type": kind, "layer": layer, "field": field}  # fmt: skip


def control_ids(layers: list[Layer]) -> tuple[list, list, list]:
    """Ids (without their type) of the layer switches, the code-list filters and the date ranges,
    in the order the tree lays them out."""
    on_ids = [{"layer": x.id} for x in layers]
    f_ids = [{"layer": x.id, "field": f.name} for x in layers for f in x.filterable if not f.range]
    r_ids = [{"layer": x.id, "field": f.name} for x in layers for f in x.filterable if f.range]
    return on_ids, f_ids, r_ids


def control_key(control_id: dict) -> tuple:
    """(layer, field) of a control id, how initial values are keyed."""
    return control_id["layer"], control_id.get("field")


def initial_values(layers: list[Layer], search: str) -> dict:
    """Control values for a page URL, so the first map state needs no extra round trip."""
    on_ids, f_ids, r_ids = control_ids(layers)
    c = query_to_controls(search, on_ids, on_ids, f_ids, r_ids)
    return {
        "on": {i["layer"]: v for i, v in zip(on_ids, c["on"], strict=True)},
        "opacity": {i["layer"]: v for i, v in zip(on_ids, c["opacity"], strict=True)},
        "filter": {control_key(i): v for i, v in zip(f_ids, c["filters"], strict=True)},
        "start": {control_key(i): v for i, v in zip(r_ids, c["start"], strict=True)},
        "end": {control_key(i): v for i, v in zip(r_ids, c["end"], strict=True)},
        "area": c["area"] if c["area"] and c["area"].isdigit() else None,
        "view": c["view"],
    }


def initial_state(layers: list[Layer], init: dict) -> dict:
    """The map state of the controls as `tree` sets them (what the state callback would answer),
    so the page draws its first tiles without a round trip to the server."""
    on_ids, f_ids, r_ids = control_ids(layers)
    return build_state([init["on"][i["layer"]] for i in on_ids],
                       [init["opacity"][i["layer"]] for i in on_ids], on_ids, on_ids,
                       [init["filter"][control_key(i)] for i in f_ids], f_ids,
                       [init["start"][control_key(i)] for i in r_ids],
                       [init["end"][control_key(i)] for i in r_ids], r_ids, init["area"])  # fmt: skip


def tree(layers: list[Layer], init: dict) -> html.Div:
    """Layers grouped by theme, in registry order, set as the page URL says."""
    groups = []
    for group in GROUPS:
        members = [x for x in layers if x.group == group]
        if members:
            items = [layer_item(x, init) for x in members]
            groups.append(html.Details([html.Summary(group), *items],
                                       open=group in ("基础", "部件", "案件"), className="layer-group"))  # fmt: skip
    return html.Div([html.H2("专题图层"), *groups], className="layer-tree")


def layer_item(layer: Layer, init: dict) -> html.Div:
    """One layer: checkbox, and the details of a switched-on layer (shown only while it is on)."""
    return html.Div(
        className="layer-item",
        children=[
            dcc.Checklist(
                id=layer_id("layer-on", layer.id),
                options=[{"label": layer.title, "value": layer.id}],
                value=init["on"][layer.id],
                className="layer-check",
            ),
            html.Div(
                id=layer_id("layer-details", layer.id),
                className="layer-details",
                children=layer_details(layer, init) if init["on"][layer.id] else None,
            ),
        ],
    )


def layer_details(layer: Layer, init: dict) -> list:
    """Opacity, filters and legend of a layer. Built for the layers on in the page's URL, and for
    the others when first switched on (show_details): the ones off are hidden anyway, and some
    250 hidden sliders, drop-downs and legend rows made the page's first render slower."""
    return [
        dcc.Slider(
            id=layer_id("layer-opacity", layer.id),
            min=0,
            max=1,
            step=0.1,
            value=init["opacity"][layer.id],
            marks=None,
            tooltip={"placement": "bottom"},
        ),
        *[filter_control(layer, f, init) for f in layer.filterable],
        legend(layer),
    ]


def show_details(layer_name, on, shown, user: User) -> list:
    """Details of a layer just switched on, at their defaults (PreventUpdate: nothing to build)."""
    layer = REGISTRY.get(layer_name) if isinstance(layer_name, str) else None
    if layer is None or not layer_allowed(user, layer) or not on or shown:
        raise PreventUpdate
    return layer_details(layer, initial_values([layer], ""))


def filter_control(layer: Layer, field, init: dict) -> html.Div:
    """A multi-select of the code list, or a date range."""
    key = (layer.id, field.name)
    if field.range:
        control = dcc.DatePickerRange(id=layer_id("layer-range", layer.id, field.name),
                                      start_date=init["start"].get(key), end_date=init["end"].get(key),
                                      display_format="YYYY-MM-DD", start_date_placeholder_text="起",
                                      end_date_placeholder_text="止", clearable=True)  # fmt: skip
    elif field.values:
        options = [{"label": value_label(field.name, v), "value": v} for v in field.values]
        control = dcc.Dropdown(labels=DROPDOWN_LABELS, id=layer_id("layer-filter", layer.id, field.name),
                               options=options, value=init["filter"].get(key),
                               multi=True, placeholder=f"按{field.title}筛选")  # fmt: skip
    elif field.kind == "bool":
        control = dcc.Dropdown(labels=DROPDOWN_LABELS, id=layer_id("layer-filter", layer.id, field.name),
                               value=init["filter"].get(key), options=[{"label": "是", "value": "true"},
                                        {"label": "否", "value": "false"}],
                               multi=True, placeholder=f"按{field.title}筛选")  # fmt: skip
    else:
        return html.Div()
    return html.Div([html.Label(field.title), control], className="layer-filter")


def value_label(field: str, value: str) -> str:
    """Human label of a code value (class codes get their Chinese names)."""
    names = CODE_NAMES.get(field, {})
    return f"{value} {names[value]}" if value in names else value


def legend(layer: Layer) -> html.Ul:
    """Legend rows of the layer's style."""
    shape = {"point": "dot", "line": "line", "polygon": "box"}[layer.geometry]
    return html.Ul([html.Li([html.Span(className=f"swatch {shape}", style={"background": e.color}),
                             e.label]) for e in layer.style.legend], className="legend")  # fmt: skip


def build_state(on_values, opacities, on_ids, opacity_ids, filter_values, filter_ids,
                ranges_start, ranges_end, range_ids, area) -> dict:  # fmt: skip
    """Map state from the controls: visible layers with opacity and filters, focused area."""
    opacity = {i["layer"]: v for i, v in zip(opacity_ids, opacities, strict=True)}
    layers = {i["layer"]: {"opacity": opacity.get(i["layer"], 1), "filters": {}}
              for i, v in zip(on_ids, on_values, strict=True) if v}  # fmt: skip
    for i, v in zip(filter_ids, filter_values, strict=True):
        if i["layer"] in layers and v:
            layers[i["layer"]]["filters"][i["field"]] = ",".join(v)
    for i, a, b in zip(range_ids, ranges_start, ranges_end, strict=True):
        if i["layer"] in layers:
            if a:
                layers[i["layer"]]["filters"][f"{i['field']}_from"] = a[:10]
            if b:
                layers[i["layer"]]["filters"][f"{i['field']}_to"] = b[:10]
    return {"layers": layers, "area": area or None}


def state_to_query(state: dict, zoom, center) -> str:
    """URL query that restores layers, opacity, filters, area and view."""
    params = {"layers": ",".join(state["layers"])}
    for lid, cfg in state["layers"].items():
        if cfg["opacity"] != 1:
            params[f"o.{lid}"] = cfg["opacity"]
        for key, value in cfg["filters"].items():
            params[f"f.{lid}.{key}"] = value
    if state.get("area"):
        params["area"] = state["area"]
    if zoom is not None and center:
        lat, lon = (center["lat"], center["lng"]) if isinstance(center, dict) else center
        params.update({"z": zoom, "lat": round(lat, 6), "lon": round(lon, 6)})
    return "?" + urlencode(params)


def query_to_controls(search: str, on_ids, opacity_ids, filter_ids, range_ids) -> dict:
    """Control values restored from a shared URL (defaults when the URL says nothing)."""
    q = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}
    on = set(q["layers"].split(",")) if "layers" in q else set(DEFAULT_ON)
    return {
        "on": [[i["layer"]] if i["layer"] in on else [] for i in on_ids],
        "opacity": [_float(q.get(f"o.{i['layer']}"), 1.0) for i in opacity_ids],
        "filters": [_split(q.get(f"f.{i['layer']}.{i['field']}")) for i in filter_ids],
        "start": [q.get(f"f.{i['layer']}.{i['field']}_from") for i in range_ids],
        "end": [q.get(f"f.{i['layer']}.{i['field']}_to") for i in range_ids],
        "area": q.get("area"),
        "view": _view(q),
    }


def _float(raw, default: float) -> float:
    """A float from the URL, or the default."""
    try:
        return min(1.0, max(0.0, float(raw)))
    except (TypeError, ValueError):
        return default


def _split(raw) -> list[str]:
    """Comma-separated URL values."""
    return [v for v in (raw or "").split(",") if v]


def _view(q: dict) -> dict | None:
    """The map view named in the URL, if complete and sane."""
    try:
        z, lat, lon = int(q["z"]), float(q["lat"]), float(q["lon"])
    except (KeyError, ValueError):
        return None
    if not (0 <= z <= 22 and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return {"center": [lat, lon], "zoom": z}


def register(app) -> None:
    """State from controls, URL from state, and the tile layers (the layout restores the URL)."""
    on = Input(layer_id("layer-on", ALL), "value")
    id_states = [State(layer_id("layer-on", ALL), "id"), State(layer_id("layer-opacity", ALL), "id"),
           State({"type": "layer-filter", "layer": ALL, "field": ALL}, "id"),
           State({"type": "layer-range", "layer": ALL, "field": ALL}, "id")]  # fmt: skip

    @app.callback(
        Output(ids.STATE_STORE, "data"),
        on, Input(layer_id("layer-opacity", ALL), "value"),
        Input({"type": "layer-filter", "layer": ALL, "field": ALL}, "value"),
        Input({"type": "layer-range", "layer": ALL, "field": ALL}, "start_date"),
        Input({"type": "layer-range", "layer": ALL, "field": ALL}, "end_date"),
        Input(ids.AREA_VALUE, "data"), *id_states,
        prevent_initial_call=True,  # the layout carries the first state (initial_state)
    )  # fmt: skip
    def _state(on_v, op_v, f_v, r_a, r_b, area, on_ids, op_ids, f_ids, r_ids):
        return build_state(on_v, op_v, on_ids, op_ids, f_v, f_ids, r_a, r_b, r_ids, area)

    @app.callback(Output(layer_id("layer-details", MATCH), "children"),
                  Input(layer_id("layer-on", MATCH), "value"),
                  State(layer_id("layer-details", MATCH), "children"), prevent_initial_call=True)  # fmt: skip
    def _details(on, shown):
        layer = output_id_field(ctx.outputs_list, "layer")
        return show_details(layer, on, shown, current_user())

    @app.callback(Output(ids.URL, "search"), Input(ids.STATE_STORE, "data"),
                  Input(ids.MAP, "zoom"), Input(ids.MAP, "center"), prevent_initial_call=True)  # fmt: skip
    def _url(state, zoom, center):
        if not state:
            raise PreventUpdate
        return state_to_query(state, zoom, center)

    app.clientside_callback(
        ClientsideFunction(namespace="onemap", function_name="syncLayers"),
        Output(ids.LAYERS_SYNCED, "data"), Input(ids.STATE_STORE, "data"), State(ids.REGISTRY_STORE, "data"),
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction(namespace="onemap", function_name="whenDrawn"),
        Output(ids.MAP_DRAWN, "data"), Input(ids.LAYERS_SYNCED, "data"), State(ids.MAP_DRAWN, "data"),
    )  # fmt: skip
    app.clientside_callback(
        ClientsideFunction(namespace="onemap", function_name="applyView"),
        Output(ids.VIEW_APPLIED, "data"), Input(ids.VIEW_REQUEST, "data"),
    )  # fmt: skip
