"""Shared UI text: Chinese labels for Dash components and names of code values."""

from dash import ctx, dcc

from geodata import catalog

DROPDOWN_LABELS = {
    "select_all": "全选", "deselect_all": "全不选", "selected_count": "已选 {num_selected} 项",
    "search": "搜索", "clear_search": "清除搜索", "clear_selection": "清除选择",
    "no_options_found": "没有匹配的选项",
}  # fmt: skip

# Fields whose values are codes with Chinese names (filters, chart labels).
CODE_NAMES = {
    "class_code": catalog.COMPONENT_MINOR, "component_class_code": catalog.COMPONENT_MINOR,
    "event_class_code": catalog.EVENT_MINOR, "kind": catalog.GREEN_KINDS,
}  # fmt: skip


def row_view(cell, rows, zoom: int = 17) -> dict | None:
    """The map view of a clicked table row (untrusted input): its `bounds`, else its lon/lat at
    `zoom`; None when the click or the row is not usable."""
    try:
        row = rows[int(cell["row"])]
        if "bounds" in row:
            (s, w), (n, e) = row["bounds"]
            return {"bounds": [[float(s), float(w)], [float(n), float(e)]]}
        return {"center": [float(row["lat"]), float(row["lon"])], "zoom": zoom}
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def acted() -> bool:
    """Whether someone did something: an input that triggered this call holds a value (a click
    counted, a point picked). Dash also calls callbacks with every triggering input empty: when
    wildcard inputs were redrawn (search hits, markers), and, regardless of prevent_initial_call,
    a tab's callbacks whose outputs lie outside it when the tab is built (side_panel.mount_panel).
    Such a call must not act."""
    return any(t.get("value") not in (None, 0, "", [], {}) for t in ctx.triggered)


def output_id_field(output, key: str):
    """A field of the id of one output of this call (Dash's outputs_list, sent by the page:
    untrusted); None when it is not there."""
    component = output.get("id") if isinstance(output, dict) else None
    return component.get(key) if isinstance(component, dict) else None


def store(component_id, data=None) -> dcc.Store:
    """A dcc.Store of `data`, without any `data` prop when there is none: a Store given a null
    `data` sets it again (to undefined) as it mounts, which fires every callback listening to it
    (for the area focus, a needless trip to the server for the map state)."""
    return dcc.Store(id=component_id, **({} if data is None else {"data": data}))
