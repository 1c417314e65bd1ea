"""The map page's first layout (handler tier): it carries the first map state and only what is
shown, and the parts built later (layer details, analysis tabs) come through their callbacks."""

from __future__ import annotations

import json

import pytest
from dash.exceptions import PreventUpdate

from auth.accounts import User
from auth.roles import ROLES
from callbacks import side_panel
from callbacks.layer_tree import show_details
from layers.registry import REGISTRY
from tests.conftest import auth
from tests.test_handlers import registered_output

QUERY = "layers=road,component_02,case&o.road=0.4&f.component_02.class_code=0201,0202&f.case.reported_at_from=2026-01-01"


def layout(client, headers, query: str = "") -> dict:
    """The layout Dash fetches for the map page at `/?query`."""
    resp = client.get("/_dash-layout", headers={**headers, "Referer": f"http://localhost/?{query}"})
    assert resp.status_code == 200
    return resp.get_json()


def components(node, found: list) -> list:
    """Every component (type, props) of a layout tree."""
    if isinstance(node, list):
        for child in node:
            components(child, found)
    elif isinstance(node, dict) and "props" in node:
        found.append(node)
        for value in node["props"].values():
            components(value, found)
    return found


def by_type(tree, kind: str) -> list:
    """The props of the components with an id of a pattern type (e.g. layer-on)."""
    return [c["props"] for c in components(tree, [])
            if isinstance(c["props"].get("id"), dict) and c["props"]["id"].get("type") == kind]  # fmt: skip


def prop(tree, component_id: str, name: str):
    """A prop of the component with a string id."""
    return next(
        c["props"].get(name) for c in components(tree, []) if c["props"].get("id") == component_id
    )


def test_first_state_is_what_the_state_callback_answers(client, role_tokens):
    headers = auth(role_tokens, "leader")
    tree = layout(client, headers, QUERY)
    inputs = [(c["id"], "value", c["value"]) for c in by_type(tree, "layer-on")]
    opacities = [(c["id"], "value", c["value"]) for c in by_type(tree, "layer-opacity")]
    filters = [(c["id"], "value", c.get("value")) for c in by_type(tree, "layer-filter")]
    ranges = by_type(tree, "layer-range")
    body = {"output": "map-state.data", "outputs": {"id": "map-state", "property": "data"},
            "inputs": [[{"id": i, "property": p, "value": v} for i, p, v in inputs],
                       [{"id": i, "property": p, "value": v} for i, p, v in opacities],
                       [{"id": i, "property": p, "value": v} for i, p, v in filters],
                       [{"id": r["id"], "property": "start_date", "value": r.get("start_date")} for r in ranges],
                       [{"id": r["id"], "property": "end_date", "value": r.get("end_date")} for r in ranges],
                       {"id": "area-value", "property": "data", "value": prop(tree, "area-value", "data")}],
            "state": [[{"id": i, "property": "id", "value": i} for i, _, _ in group]
                      for group in (inputs, opacities, filters)]
                     + [[{"id": r["id"], "property": "id", "value": r["id"]} for r in ranges]],
            "changedPropIds": ["area-value.data"]}  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=headers)
    assert resp.status_code == 200, resp.data[:300]
    answered = resp.get_json()["response"]["map-state"]["data"]
    first = prop(tree, "map-state", "data")
    assert first == answered
    assert first["layers"]["road"]["opacity"] == 0.4
    assert first["layers"]["component_02"]["filters"] == {"class_code": "0201,0202"}
    assert first["layers"]["case"]["filters"] == {"reported_at_from": "2026-01-01"}


def test_only_switched_on_layers_carry_details(client, role_tokens):
    tree = layout(client, auth(role_tokens, "leader"), QUERY)
    shown = {d["id"]["layer"] for d in by_type(tree, "layer-details") if d.get("children")}
    assert shown == {"road", "component_02", "case"}
    assert {o["id"]["layer"] for o in by_type(tree, "layer-opacity")} == shown
    assert len(by_type(tree, "layer-on")) > 10  # every layer still has its switch


def test_analysis_tabs_are_empty_until_opened(client, role_tokens):
    headers = auth(role_tokens, "planner")
    tree = layout(client, headers)
    bodies = by_type(tree, "panel-body")
    assert {b["id"]["tab"] for b in bodies} == set(side_panel.LAZY_TABS)
    assert all(not b.get("children") for b in bodies)
    ids = {
        c["props"].get("id") for c in components(tree, []) if isinstance(c["props"].get("id"), str)
    }
    assert not ids & {"al-interval", "ca-run", "pk-run", "dr-code", "an-run", "an-draw"}
    outputs = [("panel-body", "children"), ("panel-tools", "children")]
    body = {"output": next(k for k in client.callback_keys if "panel-body" in k),
            "outputs": [[{"id": b["id"], "property": "children"} for b in bodies],
                        [{"id": {"type": "panel-tools", "tab": "analysis"}, "property": "children"}]],
            "inputs": [{"id": "panel-tabs", "property": "value", "value": "analysis"}],
            "state": [[{"id": b["id"], "property": "children", "value": None} for b in bodies],
                      {"id": "clicked-object", "property": "data", "value": None}],
            "changedPropIds": ["panel-tabs.value"]}  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=headers)
    assert resp.status_code == 200, (outputs, resp.data[:300])
    built = json.dumps(resp.get_json()["response"], ensure_ascii=False)
    assert '"an-run"' in built and '"an-draw"' in built and '"al-interval"' not in built


def test_opening_a_tab_builds_it_once_and_refuses_nonsense():
    user = User(0, "t", ROLES["planner"], ())
    tabs = list(side_panel.LAZY_TABS)
    body, tools = side_panel.mount_panel("cases", tabs, [None] * len(tabs), ["analysis"], user)
    assert body[tabs.index("cases")] is not None and tools == [side_panel.no_update]
    assert all(b is side_panel.no_update for t, b in zip(tabs, body, strict=True) if t != "cases")
    built = [None] * len(tabs)
    built[tabs.index("cases")] = ["already"]
    for tab, bodies in (("cases", built), ("stats", [None] * len(tabs)), (["cases"], [None]),
                        ("cases", "x"), ("cases", [None])):  # fmt: skip
        with pytest.raises(PreventUpdate):
            side_panel.mount_panel(tab, tabs, bodies, ["analysis"], user)


def test_details_are_built_for_allowed_layers_only():
    leader, kiosk = User(0, "l", ROLES["leader"], ()), User(0, "k", ROLES["kiosk"], ())
    details = show_details("unit_grid", ["unit_grid"], None, leader)
    assert details[0].id == {"type": "layer-opacity", "layer": "unit_grid"}
    restricted = next(x.id for x in REGISTRY.values() if x.restricted)
    assert not kiosk.role.restricted_layers
    for args in (("unit_grid", [], None, leader), ("unit_grid", ["unit_grid"], ["x"], leader),
                 ("nope", ["nope"], None, leader), ({"a": 1}, ["x"], None, leader),
                 (restricted, [restricted], None, kiosk)):  # fmt: skip
        with pytest.raises(PreventUpdate):
            show_details(*args)


def test_statistics_bars_are_proportional():
    layer = REGISTRY["component_01"]
    by = next(f for f in layer.filterable if f.values)
    card = side_panel.stats_card(layer, by, {"area_name": None, "total": 40, "groups": [
        {"value": "0101", "count": 30}, {"value": "0102", "count": 10}]})  # fmt: skip
    rows = card.children[1].children
    widths = [r.children[1].children.style["width"] for r in rows]
    assert widths == ["100.0%", "33.3%"]
    assert [r.children[2].children for r in rows] == ["30", "10"]
    assert [r.children[2].title for r in rows] == ["75.0%", "25.0%"]


def test_building_a_tab_runs_no_analysis(client, role_tokens):
    """Dash calls a tab's callbacks whose outputs lie outside it when the tab is built, with the
    inputs at their start values and despite prevent_initial_call; siting must not run then."""
    headers = auth(role_tokens, "planner")
    key = next(k for k in client.callback_keys if "an-sites.children" in k)

    def sites(n_clicks: int):
        body = {"output": key,
                "outputs": [{"id": "an-sites", "property": "children"},
                            {"id": "an-site-markers", "property": "children"}],
                "inputs": [{"id": "an-site-run", "property": "n_clicks", "value": n_clicks}],
                "state": [{"id": "an-site-k", "property": "value", "value": 1},
                          {"id": "an-site-size", "property": "value", "value": 5000},
                          {"id": "an-rules", "property": "value", "value": "5000:500"},
                          {"id": "area-value", "property": "data", "value": None}],
                "changedPropIds": ["an-site-run.n_clicks"]}  # fmt: skip
        return client.post("/_dash-update-component", json=body, headers=headers)

    assert sites(0).status_code == 204  # as Dash asks when the 分析 tab is built
    # the same for the drainage analyses (all four buttons at 0), while a press runs one
    buttons = ("dr-trace", "dr-catchment", "dr-quality", "dr-risk")
    outputs = [("dr-result", "children"), ("dr-table", "columns"), ("dr-table", "data"),
               ("dr-overlay", "data"), ("view-request", "data")]  # fmt: skip

    def drainage(pressed: str | None):
        body = {"output": registered_output(client, outputs),
                "outputs": [{"id": i, "property": p} for i, p in outputs],
                "inputs": [{"id": b, "property": "n_clicks", "value": int(b == pressed)}
                           for b in buttons],
                "state": [{"id": "dr-code", "property": "value", "value": None},
                          {"id": "dr-direction", "property": "value", "value": "down"},
                          {"id": "area-value", "property": "data", "value": None}],
                "changedPropIds": [f"{b}.n_clicks" for b in buttons]}  # fmt: skip
        return client.post("/_dash-update-component", json=body, headers=headers)

    assert drainage(None).status_code == 204
    pressed = drainage("dr-quality")
    assert pressed.status_code == 200 and "dr-result" in pressed.get_json()["response"]


def test_a_tab_built_later_knows_the_object_clicked_before():
    user = User(0, "t", ROLES["operator"], ())
    tabs = list(side_panel.LAZY_TABS)
    clicked = {"layer": "drain_well", "id": 5}
    body, _ = side_panel.mount_panel("drainage", tabs, [None] * len(tabs), [], user, clicked)
    stores = [c for c in body[tabs.index("drainage")] if getattr(c, "id", None) ==
              {"type": "panel-object", "tab": "drainage"}]  # fmt: skip
    assert [s.data for s in stores] == [clicked]
    body, _ = side_panel.mount_panel("drainage", tabs, [None] * len(tabs), [], user, "junk")
    stores = [c for c in body[tabs.index("drainage")] if getattr(c, "id", None) ==
              {"type": "panel-object", "tab": "drainage"}]  # fmt: skip
    assert not hasattr(stores[0], "data") or stores[0].data is None
