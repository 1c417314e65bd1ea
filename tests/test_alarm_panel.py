"""The 预警 panel through the Dash callback tier: the list, filters, linkage, cameras, closing.

Expected values come from independent SQL on the demo city and, for the cameras that see a
point, from pyproj's geodesic bearing and distance (not the sector polygon under test).
"""

from __future__ import annotations

import json

import pytest
from pyproj import Geod
from sqlalchemy import text

from auth.accounts import User
from auth.roles import ROLES
from callbacks import alarm_panel
from tests.conftest import auth, district_token
from tests.test_handlers import callback, prop_id, registered_output

# what the tab's callbacks see of the side panel's open tab and of map clicks (copies in the tab)
OPEN_TAB = {"type": "panel-tab", "tab": "alarms"}
MAP_CLICK = {"type": "panel-map-click", "tab": "alarms"}

GEOD = Geod(ellps="GRS80")
REFRESH = [("al-summary", "children"), ("al-table", "data"), ("al-markers", "children")]
CHOOSE = [("al-chosen", "data"), ("view-request", "data")]
LINKAGE = [("al-linkage", "children"), ("al-close", "disabled")]
CLOSE = [("al-close-result", "children"), ("al-closed", "data")]
ACTIVE_SQL = """SELECT a.id FROM alarm a JOIN sensor s ON s.id = a.sensor_id
    WHERE a.state <> '已解除' {extra} ORDER BY a.raised_at DESC, a.id DESC"""


def refresh(client, headers, kinds=None, levels=None, tab="alarms", trigger="al-interval") -> dict:
    """The list, badges and markers as the timer (or another trigger) asks for them."""
    inputs = [("al-interval", "n_intervals", 1), ("al-kind", "value", kinds),
              ("al-level", "value", levels), (OPEN_TAB, "data", tab), ("al-closed", "data", None)]  # fmt: skip
    body = {"output": registered_output(client, REFRESH),
            "outputs": [{"id": i, "property": p} for i, p in REFRESH],
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs], "state": [],
            "changedPropIds": [next(prop_id(i, p) for i, p, _ in inputs if i == trigger)]}  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=headers)
    assert resp.status_code in (200, 204), resp.data[:300]
    return (resp.get_json() or {}).get("response", {})


def linkage(client, headers, chosen) -> dict:
    """The linkage view (and the close button's state) of a chosen alarm or point."""
    out = callback(
        client, headers, LINKAGE, [("al-chosen", "data", chosen), ("al-closed", "data", None)]
    )
    return out.get("response", {})


def close(client, headers, chosen, note=None) -> str:
    """Press 解除告警 for the chosen alarm; the panel's answer as text."""
    out = callback(client, headers, CLOSE, [("al-close", "n_clicks", 1)],
                   [("al-chosen", "data", chosen), ("al-close-note", "value", note)])  # fmt: skip
    return str(out["response"]["al-close-result"]["children"])


def choose(client, headers, *, cell=None, rows=(), marker=None, click=None, tab="alarms"):
    """The choose callback (table cell, marker click or map click), as the browser posts it."""
    markers = [{"id": {"type": "al-marker", "index": marker or 1}, "property": "n_clicks",
                "value": 1 if marker else None}]  # fmt: skip
    changed = ("al-table.active_cell" if cell is not None else
               json.dumps(markers[0]["id"], separators=(",", ":"), sort_keys=True) + ".n_clicks"
               if marker else prop_id(MAP_CLICK, "data"))  # fmt: skip
    body = {"output": registered_output(client, CHOOSE),
            "outputs": [{"id": i, "property": p} for i, p in CHOOSE],
            "inputs": [{"id": "al-table", "property": "active_cell", "value": cell}, markers,
                       {"id": MAP_CLICK, "property": "data", "value": click}],
            "state": [{"id": "al-table", "property": "derived_viewport_data", "value": list(rows)},
                      {"id": "panel-tabs", "property": "value", "value": tab}],
            "changedPropIds": [changed]}  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=headers)
    assert resp.status_code in (200, 204), resp.data[:300]
    return (resp.get_json() or {}).get("response")


def ids_of(engine, extra: str = "", params=None) -> list[int]:
    """Active alarm ids newest first (independent SQL)."""
    with engine.connect() as conn:
        return list(conn.execute(text(ACTIVE_SQL.format(extra=extra)), params or {}).scalars())


def marker_classes(resp) -> list[str]:
    """The CSS classes of the drawn markers."""
    return [m["props"]["iconOptions"]["className"] for m in resp["al-markers"]["children"]]


@pytest.fixture(scope="module")
def demo_alarms(demo_engine) -> list[int]:
    """The demo's active alarms; the panel tests need some."""
    found = ids_of(demo_engine)
    assert found, "the demo city has no active alarm"
    return found


def test_the_list_is_the_services_answer_newest_first(
    client, role_tokens, demo_engine, demo_alarms
):
    headers = auth(role_tokens, "operator")
    resp = refresh(client, headers)
    rows = resp["al-table"]["data"]
    assert [r["id"] for r in rows] == demo_alarms[: alarm_panel.MAX_ALARMS]
    api = client.get("/api/alarms", query_string={"limit": 500}, headers=headers).get_json()
    assert [r["id"] for r in rows] == [a["id"] for a in api["alarms"]]
    assert f"未解除告警 {len(demo_alarms)} 条" in str(resp["al-summary"]["children"])
    classes = marker_classes(resp)
    assert len(classes) == len(rows) and all("al-pulse" in c for c in classes)
    with demo_engine.connect() as conn:
        levels = dict(conn.execute(text("SELECT id, level FROM alarm")).all())
    colours = {f"al-level-{i}": lv for i, lv in enumerate(("提示", "一般", "严重", "紧急"))}
    assert [colours[c.split()[1]] for c in classes] == [levels[r["id"]] for r in rows]
    assert [r["level"] for r in rows] == [levels[r["id"]] for r in rows]


def test_filters_by_kind_and_level(client, role_tokens, demo_engine, demo_alarms):
    headers = auth(role_tokens, "leader")
    rows = refresh(client, headers, ["液位"], ["严重", "紧急"])["al-table"]["data"]
    expected = ids_of(demo_engine, "AND s.kind = '液位' AND a.level IN ('严重', '紧急')")
    assert [r["id"] for r in rows] == expected
    rows = refresh(client, headers, ["井盖位移", "液位"], [])["al-table"]["data"]
    assert [r["id"] for r in rows] == demo_alarms


def test_a_district_user_sees_only_alarms_in_the_street(client, demo_engine, demo_alarms):
    with demo_engine.connect() as conn:  # the street holding the newest alarm's sensor
        street = conn.execute(text(
            "SELECT aa.code FROM alarm a JOIN sensor s ON s.id = a.sensor_id JOIN admin_area aa "
            "ON aa.level = 'street' AND ST_Intersects(aa.geom, s.geom) WHERE a.id = :id LIMIT 1"),
            {"id": demo_alarms[0]}).scalar()  # fmt: skip
    headers = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    rows = refresh(client, headers)["al-table"]["data"]
    expected = ids_of(demo_engine, "AND ST_Intersects(s.geom, (SELECT geom FROM admin_area "
                                   "WHERE code = :street))", {"street": street})  # fmt: skip
    assert [r["id"] for r in rows] == expected and 0 < len(rows) <= len(demo_alarms)


def test_markers_only_while_the_tab_is_open(client, role_tokens):
    resp = refresh(client, auth(role_tokens, "operator"), tab="stats", trigger=OPEN_TAB)
    assert resp["al-markers"]["children"] == []
    assert "al-table" not in resp  # the list is left as it was
    assert refresh(client, auth(role_tokens, "operator"), tab="stats") == {}  # the timer idles


def test_sensor_summary_counts_kinds_and_states(client, role_tokens, demo_engine):
    out = callback(client, auth(role_tokens, "kiosk"), [("al-sensors", "children")],
                   [("al-interval", "n_intervals", 1), (OPEN_TAB, "data", "alarms"),
                    ("al-closed", "data", None)])  # fmt: skip
    table = out["response"]["al-sensors"]["children"]["props"]["children"]
    shown = {r["props"]["children"][0]["props"]["children"]:
             [c["props"]["children"] for c in r["props"]["children"][1:]] for r in table[1:]}  # fmt: skip
    with demo_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.kind, count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM alarm a WHERE "
            "a.sensor_id = s.id AND a.state <> '已解除')), count(*) FROM sensor s GROUP BY s.kind")).all()  # fmt: skip
    for kind, quiet, total in rows:
        assert shown[kind] == [quiet, total - quiet, total]


def test_choosing_a_row_zooms_and_a_marker_or_map_click_chooses(client, role_tokens):
    headers = auth(role_tokens, "operator")
    rows = refresh(client, headers)["al-table"]["data"]
    out = choose(client, headers, cell={"row": 1, "column": 0}, rows=rows[:10])
    assert out["al-chosen"]["data"] == {"alarm": rows[1]["id"]}
    assert out["view-request"]["data"] == {"center": [rows[1]["lat"], rows[1]["lon"]], "zoom": 18}
    out = choose(client, headers, marker=rows[2]["id"])
    assert out["al-chosen"]["data"] == {"alarm": rows[2]["id"]} and "view-request" not in out
    click = {"latlng": {"lat": 36.65, "lng": 117.02}}
    assert choose(client, headers, click=click)["al-chosen"]["data"] == {
        "lon": 117.02,
        "lat": 36.65,
    }
    assert choose(client, headers, click=click, tab="search") is None  # another tab: not ours
    assert choose(client, headers, cell={"row": "x"}, rows=rows[:10]) is None
    assert choose(client, headers, cell={"row": 99}, rows=rows[:10]) is None


def seen_by_geodesy(conn, lon: float, lat: float) -> tuple[set[str], set[str]]:
    """(cameras surely seeing the point, cameras within 1 m / 0.5° of a sector edge)."""
    rows = conn.execute(text(
        "SELECT code, direction_deg, fov_deg, range_m, ST_X(geom), ST_Y(geom) FROM camera WHERE "
        "range_m > 0 AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4490)::geography, "
        "range_m + 50)"), {"x": lon, "y": lat}).all()  # fmt: skip
    sure, edge = set(), set()
    for code, direction, fov, reach, cx, cy in rows:
        bearing, _, dist = GEOD.inv(cx, cy, lon, lat)
        all_round = direction is None or fov is None or fov >= 360
        off = 0.0 if all_round else abs((bearing - direction + 180) % 360 - 180) - fov / 2
        if abs(dist - reach) < 1 or (not all_round and abs(off) < 0.5):
            edge.add(code)
        elif dist < reach and off < 0:
            sure.add(code)
    return sure, edge


def test_linkage_of_an_alarm_place_cameras_and_archive(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:  # a watched manhole cover inside exactly one grid
        row = conn.execute(text("""
            SELECT a.id, ST_X(s.geom) lon, ST_Y(s.geom) lat, c.code component, g.code grid,
                   g.responsible_unit, aa.name community
            FROM alarm a JOIN sensor s ON s.id = a.sensor_id JOIN component c ON c.id = s.linked_id
            JOIN unit_grid g ON ST_Covers(g.geom, s.geom)
            JOIN admin_area aa ON aa.code = g.community_code
            WHERE a.state <> '已解除' AND s.linked_layer = 'component'
              AND (SELECT count(*) FROM unit_grid g2 WHERE ST_Intersects(g2.geom, s.geom)) = 1
            ORDER BY a.raised_at DESC LIMIT 1""")).mappings().first()  # fmt: skip
        sure, edge = seen_by_geodesy(conn, row["lon"], row["lat"])
        resp = linkage(client, auth(role_tokens, "leader"), {"alarm": row["id"]})
        view = str(resp["al-linkage"]["children"])
        for value in (row["grid"], row["community"], row["responsible_unit"], row["component"]):
            assert value in view
        assert resp["al-close"]["disabled"] is False  # active: may be closed (by whom may)
        api = client.get(f"/api/alarms/{row['id']}", headers=auth(role_tokens, "leader")).get_json()
        shown = [c["code"] for c in api["cameras"]]
        assert sure <= set(shown) <= sure | edge
        for cam in api["cameras"]:
            assert cam["stream_url"] in view
        assert view.count("'target': '_blank'") == len(api["cameras"])


def test_a_point_in_front_of_a_camera_lists_it_with_its_stream(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:  # half its range straight ahead: seen by construction
        cam = conn.execute(text(
            "SELECT code, name, stream_url, direction_deg, range_m, ST_X(geom) x, ST_Y(geom) y "
            "FROM camera WHERE direction_deg IS NOT NULL AND fov_deg BETWEEN 20 AND 180 AND "
            "range_m >= 40 AND stream_url IS NOT NULL ORDER BY code LIMIT 1")).mappings().first()  # fmt: skip
        lon, lat, _ = GEOD.fwd(cam["x"], cam["y"], cam["direction_deg"], cam["range_m"] / 2)
        sure, edge = seen_by_geodesy(conn, lon, lat)
    headers = auth(role_tokens, "operator")
    chosen = choose(client, headers, click={"latlng": {"lat": lat, "lng": lon}})["al-chosen"][
        "data"
    ]
    resp = linkage(client, headers, chosen)
    view = str(resp["al-linkage"]["children"])
    assert (
        cam["code"] in sure and cam["stream_url"] in view and f"{cam['range_m'] / 2:.0f} 米" in view
    )
    api = client.get(
        "/api/linkage", query_string={"lon": lon, "lat": lat}, headers=headers
    ).get_json()
    assert sure <= {c["code"] for c in api["cameras"]} <= sure | edge
    distances = [c["distance_m"] for c in api["cameras"]]
    assert distances == sorted(distances)
    positions = [view.index(c["stream_url"]) for c in api["cameras"]]
    assert positions == sorted(positions)  # nearest first in the panel too
    assert resp["al-close"]["disabled"] is True  # a point is not an alarm


@pytest.mark.parametrize("role", ["planner", "district", "kiosk"])
def test_cameras_are_hidden_from_roles_without_them(client, role_tokens, demo_engine, demo_alarms,
                                                    role):  # fmt: skip
    headers = auth(role_tokens, role)
    visible = refresh(client, headers)["al-table"]["data"]
    alarm_id = visible[0]["id"] if visible else demo_alarms[0]
    view = str(linkage(client, headers, {"alarm": alarm_id})["al-linkage"]["children"])
    if not visible:  # a district user whose street has no alarm: refused, readable
        assert "没有告警" in view
        return
    api = client.get(f"/api/alarms/{alarm_id}", headers=headers).get_json()
    assert api["cameras"] is None and api["cameras_reason"] in view
    assert "al-cameras-hidden" in view and "rtsp" not in view and "单元网格" in view


def fresh_alarm(engine) -> int:
    """A new active alarm on a demo sensor (raised a minute ago); its id."""
    with engine.begin() as conn:
        return conn.execute(text(
            "INSERT INTO alarm (sensor_id, raised_at, level, message) SELECT id, "
            "now() - interval '1 minute', '严重', '测试告警' FROM sensor ORDER BY id LIMIT 1 "
            "RETURNING id")).scalar()  # fmt: skip


def audits(engine, alarm_id: int) -> list[tuple]:
    """Audit entries of closing the alarm (independent SQL)."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT username, action, detail->>'note' FROM audit_log "
                                 "WHERE target = :t ORDER BY id"), {"t": f"alarm/{alarm_id}"}).all()  # fmt: skip


def state_of(engine, alarm_id: int) -> tuple:
    """(state, cleared) of an alarm."""
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT state, cleared_at IS NOT NULL FROM alarm WHERE id = :i"),
                                  {"i": alarm_id}).one())  # fmt: skip


def test_closing_is_audited_and_refused_to_a_leader(client, role_tokens, demo_engine):
    alarm_id = fresh_alarm(demo_engine)
    refused = close(client, auth(role_tokens, "leader"), {"alarm": alarm_id})
    assert "只有系统管理员和指挥中心值班员可以解除告警" in refused
    assert (
        state_of(demo_engine, alarm_id) == ("未处理", False) and audits(demo_engine, alarm_id) == []
    )
    out = callback(client, auth(role_tokens, "operator"), CLOSE, [("al-close", "n_clicks", 1)],
                   [("al-chosen", "data", {"alarm": alarm_id}),
                    ("al-close-note", "value", "已现场处理")])["response"]  # fmt: skip
    assert f"告警 {alarm_id} 已解除" in str(out["al-close-result"]["children"])
    assert out["al-closed"]["data"]["id"] == alarm_id
    assert state_of(demo_engine, alarm_id) == ("已解除", True)
    assert audits(demo_engine, alarm_id) == [("t_operator", "alarm_close", "已现场处理")]
    again = close(client, auth(role_tokens, "admin"), {"alarm": alarm_id})
    assert "此前已解除" in again and len(audits(demo_engine, alarm_id)) == 1
    rows = refresh(client, auth(role_tokens, "operator"))["al-table"]["data"]
    assert alarm_id not in [r["id"] for r in rows]
    resp = linkage(client, auth(role_tokens, "operator"), {"alarm": alarm_id})
    assert resp["al-close"]["disabled"] is True and "已解除" in str(resp["al-linkage"]["children"])


def test_the_close_button_is_only_shown_to_those_who_may_close():
    def box(role: str):
        div = alarm_panel.panel(User(id=0, username="x", role=ROLES[role], areas=()))
        return next(
            c for c in div.children if "al-close-box" in (getattr(c, "className", "") or "")
        )

    assert box("operator").hidden is False and box("admin").hidden is False
    assert box("leader").hidden is True and box("planner").hidden is True


@pytest.mark.parametrize(("kinds", "levels", "said"), [
    (["暴雨"], None, "参数 kind 只能是"), (None, ["红色"], "参数 level 只能是"),
    ({"x": 1}, None, "参数 kind 必须是文本"), (None, [1, 2], "参数 level 必须是文本"),
    ("液位,井盖位移,沙尘", None, "参数 kind 只能是"),
])  # fmt: skip
def test_bad_filters_are_said_in_the_panel(client, role_tokens, kinds, levels, said):
    resp = refresh(client, auth(role_tokens, "operator"), kinds, levels)
    assert said in str(resp["al-summary"]["children"])
    assert resp["al-table"]["data"] == [] and resp["al-markers"]["children"] == []


@pytest.mark.parametrize(("chosen", "said"), [
    ({"alarm": "abc"}, "参数 id"), ({"alarm": 2**70}, "参数 id"), ({"alarm": None}, "参数 id"),
    ({"alarm": 987654321}, "没有告警 987654321"), ({"lon": "x", "lat": 36.6}, "参数 lon"),
    ({"lon": 117.0, "lat": 95}, "参数 lat"), ({}, "参数 lon"),
])  # fmt: skip
def test_bad_choices_are_said_in_the_panel(client, role_tokens, chosen, said):
    resp = linkage(client, auth(role_tokens, "operator"), chosen)
    assert said in str(resp["al-linkage"]["children"]) and resp["al-close"]["disabled"] is True


def test_nothing_chosen_changes_nothing(client, role_tokens):
    assert linkage(client, auth(role_tokens, "operator"), "not a choice") == {}


@pytest.mark.parametrize(("chosen", "note", "said"), [
    (None, None, "请先在列表或地图上选择一条告警"), ({"lon": 117, "lat": 36}, None, "请先在列表"),
    ({"alarm": "x"}, None, "参数 id"), ({"alarm": 987654321}, None, "没有告警"),
    ({"alarm": "first"}, "长" * 201, "参数 note 过长"), ({"alarm": "first"}, ["a"], "参数 note 必须是文本"),
])  # fmt: skip
def test_bad_close_requests_are_said_in_the_panel(client, role_tokens, demo_engine, chosen, note,
                                                  said):  # fmt: skip
    first = ids_of(demo_engine)[-1]  # the oldest active alarm: must stay active
    if isinstance(chosen, dict) and chosen.get("alarm") == "first":
        chosen = {"alarm": first}
    assert said in close(client, auth(role_tokens, "operator"), chosen, note)
    assert state_of(demo_engine, first)[0] != "已解除"


def test_open_archive_button_hands_the_object_to_the_archive_tab(client, dash_app, role_tokens):
    key = next(k for k, cb in dash_app.callback_map.items()
               if any("al-open-archive" in str(i["id"]) for i in cb["inputs"]))  # fmt: skip
    button = {"type": "al-open-archive", "layer": "component_01", "id": 7}
    body = {"output": key, "outputs": {"id": "clicked-object", "property": "data"},
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]], "state": [],
            "changedPropIds": [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"]}  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=auth(role_tokens, "leader"))
    assert resp.get_json()["response"]["clicked-object"]["data"] == {
        "layer": "component_01",
        "id": 7,
    }
