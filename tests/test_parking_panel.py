"""The 停车分析 panel through the Dash callback tier: the same figures as the API, lot occupancies
checked against the raw readings, bad input, the kiosk, nearest lots from a picked point."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.conftest import auth
from tests.test_handlers import callback, prop_id, registered_output

MAP_CLICK = {"type": "panel-map-click", "tab": "parking"}  # map clicks, as the tab sees them

CITY = ZoneInfo("Asia/Shanghai")
MEASURES_OUT = [("pk-summary", "children"), ("pk-profile", "figure"), ("pk-ranking", "figure"),
                ("pk-lot-table", "data"), ("pk-exports", "children")]  # fmt: skip
DAY_OUT = [("pk-day-store", "data"), ("pk-moment", "max"), ("pk-moment", "marks"),
           ("pk-moment", "value"), ("pk-moment-text", "children")]  # fmt: skip
NEAREST_OUT = [("pk-nearest", "children"), ("pk-nearest-table", "data"),
               ("pk-nearest-layer", "children"), ("view-request", "data")]  # fmt: skip


@pytest.fixture(scope="module")
def last_day(demo_engine) -> str:
    """The demo's latest reading day on the city clock."""
    with demo_engine.connect() as conn:
        return conn.execute(text("SELECT (max(observed_at) AT TIME ZONE 'Asia/Shanghai')::date "
                                 "FROM parking_occupancy")).scalar().isoformat()  # fmt: skip


def measures(client, headers, day, window="7", area=None) -> dict:
    """The measures callback's answer for these controls."""
    return callback(client, headers, MEASURES_OUT, [("pk-run", "n_clicks", 1)],
                    [("pk-day", "date", day), ("pk-window", "value", window),
                     ("area-value", "data", area)])["response"]  # fmt: skip


def day_frames(client, headers, day, step="60", area=None) -> dict:
    """The day callback's answer (frames of every moment) for these controls."""
    return callback(client, headers, DAY_OUT, [("pk-run", "n_clicks", 1)],
                    [("pk-day", "date", day), ("pk-step", "value", step),
                     ("area-value", "data", area), ("pk-moment", "value", 8),
                     ("pk-moment", "max", 23)])["response"]  # fmt: skip


def nearest(
    client, headers, origin=None, address=None, trigger="pk-origin", click=None, tab="parking"
) -> dict:
    """The nearest-lots callback's answer for a picked point, an address or a map click."""
    changed = {"pk-origin": "pk-origin.data", "address": "pk-address-go.n_clicks",
               "map": prop_id(MAP_CLICK, "data")}[trigger]  # fmt: skip
    body = {
        "output": registered_output(client, NEAREST_OUT),
        "outputs": [{"id": i, "property": p} for i, p in NEAREST_OUT],
        "inputs": [{"id": "pk-origin", "property": "data", "value": origin},
                   {"id": "pk-address-go", "property": "n_clicks", "value": 1},
                   {"id": "pk-address", "property": "n_submit", "value": 0},
                   {"id": MAP_CLICK, "property": "data", "value": click}],
        "state": [{"id": "pk-address", "property": "value", "value": address},
                  {"id": "panel-tabs", "property": "value", "value": tab}],
        "changedPropIds": [changed],
    }  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=headers)
    assert resp.status_code in (200, 204), resp.data[:300]
    return resp.get_json()["response"] if resp.status_code == 200 else {}


def test_the_day_starts_at_the_latest_reading(client, role_tokens, last_day):
    out = callback(client, auth(role_tokens, "operator"), [("pk-day", "date")],
                   [("pk-run", "id", "pk-run")])  # fmt: skip
    assert out["response"]["pk-day"]["date"] == last_day


def test_measures_in_the_panel_match_the_api(client, role_tokens, last_day):
    headers = auth(role_tokens, "leader")
    resp = measures(client, headers, last_day)
    start = (datetime.fromisoformat(last_day) - timedelta(days=6)).date().isoformat()
    api = client.get("/api/analytics/parking", query_string={"from": start, "to": last_day},
                     headers=headers).get_json()["result"]  # fmt: skip
    assert resp["pk-profile"]["figure"]["data"][0]["z"] == api["profile"]
    rows = resp["pk-lot-table"]["data"]
    assert [r["code"] for r in rows] == [r["code"] for r in api["rows"]]
    assert [r["utilisation"] for r in rows] == [r["utilisation"] for r in api["rows"]]
    top = sorted((r for r in api["rows"] if r["utilisation"] is not None),
                 key=lambda r: (-r["utilisation"], r["code"]))[:15]  # fmt: skip
    bars = resp["pk-ranking"]["figure"]["data"][0]
    assert bars["x"] == [r["utilisation"] for r in top]
    summary = str(resp["pk-summary"]["children"])
    assert f"{api['totals']['lots']:,} 个停车场" in summary
    assert f"{api['totals']['utilisation']:.1%}" in summary
    links = str(resp["pk-exports"]["children"])
    assert f"/api/analytics/parking/export.xlsx?from={start}&to={last_day}" in links
    csv = client.get(f"/api/analytics/parking/export.csv?from={start}&to={last_day}",
                     headers=headers)  # fmt: skip
    assert csv.status_code == 200 and len(csv.data.decode("utf-8-sig").splitlines()) > len(rows)


def latest_before(readings: list, at: datetime) -> int | None:
    """The occupancy of a lot's latest reading in the hour up to `at` (the heat's rule)."""
    held = [(t, occ) for t, occ in readings if at - timedelta(hours=1) < t <= at]
    return max(held)[1] if held else None


def test_the_day_frames_match_the_heat_api_and_the_raw_readings(client, role_tokens, demo_engine,
                                                                last_day):  # fmt: skip
    headers = auth(role_tokens, "operator")
    resp = day_frames(client, headers, last_day)
    store = resp["pk-day-store"]["data"]
    assert resp["pk-moment"]["max"] == 23 and len(store["moments"]) == 24
    assert store["moments"][8] == "08:00" and resp["pk-moment"]["value"] == 8
    for hour in (3, 8, 18):
        at = f"{last_day}T{hour:02d}:00:00+08:00"
        api = client.get("/api/analytics/parking/heat", query_string={"at": at},
                         headers=headers).get_json()["result"]  # fmt: skip
        assert store["heat"][hour] == [p[:3] for p in api["points"]]
        assert store["totals"][hour] == [api["occupied"], api["capacity"],
                                         api["lots_with_reading"], api["lots"]]  # fmt: skip
    # each lot's occupancy at each moment, worked out in Python from its raw readings
    lots = store["lots"]
    picked = lots["code"][:: max(1, len(lots["code"]) // 12)]
    with demo_engine.connect() as conn:
        raw = conn.execute(text(
            "SELECT l.code, o.observed_at, o.occupied FROM parking_occupancy o "
            "JOIN parking_lot l ON l.id = o.lot_id WHERE l.code = ANY(:codes)"),
            {"codes": picked}).all()  # fmt: skip
        known = conn.execute(text("SELECT count(*) FROM parking_lot WHERE capacity IS NOT NULL")).scalar()  # fmt: skip
    assert len(lots["code"]) == min(known, 3000)
    day0 = datetime.fromisoformat(last_day).replace(tzinfo=CITY)
    for code in picked:
        mine = [(r.observed_at, r.occupied) for r in raw if r.code == code]
        k = lots["code"].index(code)
        expected = [latest_before(mine, day0 + timedelta(hours=h)) for h in range(24)]
        assert lots["occupied"][k] == expected, code
    assert any(v is not None for row in lots["occupied"] for v in row)


def test_quarter_hour_steps_keep_the_time_of_day(client, role_tokens, last_day):
    resp = day_frames(client, auth(role_tokens, "operator"), last_day, step="15")
    store = resp["pk-day-store"]["data"]
    assert len(store["moments"]) == 96 and resp["pk-moment"]["max"] == 95
    assert store["moments"][resp["pk-moment"]["value"]] == "08:00"


@pytest.mark.parametrize("day, area, message", [
    ("2026-13-01", None, "日期"), ("abc", None, "日期"), (["x"], None, "日期"),
    (None, "abc", "area"), (None, "12345", "area"),
])  # fmt: skip
def test_untrusted_controls_get_a_readable_error(client, role_tokens, day, area, message):
    headers = auth(role_tokens, "operator")
    out = measures(client, headers, day, area=area)
    assert "error" in str(out["pk-summary"]["children"])
    assert message in str(out["pk-summary"]["children"])
    frames = day_frames(client, headers, day, area=area)
    assert (
        frames["pk-day-store"]["data"] is None and message in frames["pk-moment-text"]["children"]
    )


def test_malformed_choices_fall_back(client, role_tokens, last_day):
    headers = auth(role_tokens, "operator")
    out = measures(client, headers, last_day, window="<b>")  # the 7 days
    assert "个停车场" in str(out["pk-summary"]["children"])
    frames = day_frames(client, headers, last_day, step="7")  # hourly
    assert len(frames["pk-day-store"]["data"]["moments"]) == 24


def test_the_kiosk_is_refused(client, role_tokens, last_day):
    headers = auth(role_tokens, "kiosk")
    assert "不能使用统计分析" in str(measures(client, headers, last_day)["pk-summary"]["children"])
    frames = day_frames(client, headers, last_day)
    assert frames["pk-day-store"]["data"] is None
    assert "不能使用统计分析" in frames["pk-moment-text"]["children"]
    near = nearest(client, headers, {"lat": 36.66, "lng": 117.02})
    assert "不能使用统计分析" in str(near["pk-nearest"]["children"])


@pytest.fixture(scope="module")
def a_lot(demo_engine) -> dict:
    """A lot with free spaces at its latest reading, and its place."""
    with demo_engine.connect() as conn:
        return conn.execute(text(
            "SELECT l.code, ST_X(l.geom) lon, ST_Y(l.geom) lat FROM parking_lot l "
            "JOIN LATERAL (SELECT occupied FROM parking_occupancy o WHERE o.lot_id = l.id "
            "ORDER BY observed_at DESC LIMIT 1) r ON true "
            "WHERE r.occupied < l.capacity ORDER BY l.code LIMIT 1")).mappings().one()  # fmt: skip


def test_nearest_lots_from_a_picked_point(client, role_tokens, demo_engine, a_lot):
    headers = auth(role_tokens, "operator")
    resp = nearest(client, headers, {"lat": a_lot["lat"], "lng": a_lot["lon"] + 0.0005})
    api = client.get("/api/parking/nearest", headers=headers, query_string={
        "lon": a_lot["lon"] + 0.0005, "lat": a_lot["lat"], "n": 5}).get_json()  # fmt: skip
    rows = resp["pk-nearest-table"]["data"]
    assert [(r["free"], r["capacity"], r["distance_m"]) for r in rows] == [
        (x["free"], x["capacity"], round(x["distance_m"])) for x in api["lots"]
    ]
    assert len(rows) == 5 and [r["distance_m"] for r in rows] == sorted(
        r["distance_m"] for r in rows
    )
    assert {r["method"] for r in rows} <= {"步行", "直线"}
    assert "步行" in {r["method"] for r in rows}  # the demo's lots sit back from the road: joined
    assert api["note"] in str(resp["pk-nearest"]["children"])
    # free spaces checked against each lot's latest raw reading
    with demo_engine.connect() as conn:
        free = dict(conn.execute(text(
            "SELECT l.code, l.capacity - (SELECT occupied FROM parking_occupancy o "
            "WHERE o.lot_id = l.id ORDER BY observed_at DESC LIMIT 1) FROM parking_lot l "
            "WHERE l.code = ANY(:codes)"), {"codes": [x["code"] for x in api["lots"]]}).all())  # fmt: skip
    assert [r["free"] for r in rows] == [free[x["code"]] for x in api["lots"]]
    assert all(r["free"] > 0 for r in rows)
    assert a_lot["code"] in [x["code"] for x in api["lots"]]  # 45 m away: among the nearest
    assert len(resp["pk-nearest-layer"]["children"]) == 6  # the origin and five lots
    (s, w), (n, e) = resp["view-request"]["data"]["bounds"]
    assert s <= a_lot["lat"] <= n and w <= a_lot["lon"] <= e


def test_nearest_lots_from_an_address(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:
        address = conn.execute(text("SELECT address FROM geocode ORDER BY id LIMIT 1")).scalar()
    resp = nearest(client, auth(role_tokens, "leader"), address=address, trigger="address")
    assert len(resp["pk-nearest-table"]["data"]) >= 1
    assert "pk-nearest-note" in str(resp["pk-nearest"]["children"])


@pytest.mark.parametrize("origin, address, trigger, message", [
    ({"lat": 95, "lng": 117}, None, "pk-origin", "lat"), ("x", None, "pk-origin", "点击"),
    ({"lat": "a", "lng": None}, None, "pk-origin", "参数"), (None, "", "address", "请输入"),
    (None, "没有这样的地方ZZQ", "address", "没有找到"),
])  # fmt: skip
def test_bad_origins_get_a_readable_error(client, role_tokens, origin, address, trigger, message):
    resp = nearest(client, auth(role_tokens, "operator"), origin, address, trigger)
    shown = str(resp["pk-nearest"]["children"])
    assert "error" in shown and message in shown
    assert resp["pk-nearest-table"]["data"] == []


def test_a_district_user_sees_only_its_lots(client, role_tokens, demo_engine, last_day):
    headers = auth(role_tokens, "district")
    with demo_engine.connect() as conn:
        street = conn.execute(text("SELECT areas[1] FROM app_user WHERE username = 't_district'"))
        codes = street.scalar()
        inside = {r.code for r in conn.execute(text(
            "SELECT l.code FROM parking_lot l JOIN admin_area a ON a.code = :c "
            "WHERE ST_Intersects(l.geom, a.geom)"), {"c": codes})}  # fmt: skip
    rows = measures(client, headers, last_day)["pk-lot-table"]["data"]
    assert {r["code"] for r in rows} == inside
    store = day_frames(client, headers, last_day)["pk-day-store"]["data"]
    assert set(store["lots"]["code"]) <= inside


def test_table_rows_zoom_the_map(client, dash_app, role_tokens):
    # several callbacks write view-request: this one is keyed by the hash of its inputs
    key = next(k for k, v in dash_app.callback_map.items() if k.startswith("view-request.data@")
               and v["inputs"][0] == {"id": "pk-lot-table", "property": "active_cell"})  # fmt: skip
    rows = [{"code": "P", "lat": 36.6, "lon": 117.0}]
    cell = {"row": 0, "column": 0}
    body = {"output": key, "outputs": {"id": "view-request", "property": "data"},
            "inputs": [{"id": t, "property": "active_cell", "value": cell if t == "pk-lot-table" else None}
                       for t in ("pk-lot-table", "pk-shortage-table", "pk-nearest-table")],
            "state": [{"id": t, "property": "derived_viewport_data",
                       "value": rows if t == "pk-lot-table" else []}
                      for t in ("pk-lot-table", "pk-shortage-table", "pk-nearest-table")],
            "changedPropIds": ["pk-lot-table.active_cell"]}  # fmt: skip
    out = client.post("/_dash-update-component", json=body, headers=auth(role_tokens, "operator"))
    assert out.get_json()["response"]["view-request"]["data"] == {
        "center": [36.6, 117.0],
        "zoom": 17,
    }
    body["state"][0]["value"] = [{"code": "P", "lat": "x"}]  # an untrusted row: nothing happens
    assert (
        client.post(
            "/_dash-update-component", json=body, headers=auth(role_tokens, "operator")
        ).status_code
        == 204
    )


def test_the_shortage_list_matches_the_api(client, role_tokens, last_day):
    headers = auth(role_tokens, "planner")
    out = callback(client, headers, [("pk-shortage", "children"), ("pk-shortage-table", "data")],
                   [("pk-run", "n_clicks", 1)],
                   [("pk-day", "date", last_day), ("pk-window", "value", "30"),
                    ("area-value", "data", None)])["response"]  # fmt: skip
    start = (datetime.fromisoformat(last_day) - timedelta(days=29)).date().isoformat()
    api = client.get("/api/analytics/parking-shortage", query_string={"from": start, "to": last_day},
                     headers=headers).get_json()["result"]["rows"]  # fmt: skip
    rows = out["pk-shortage-table"]["data"]
    assert [(r["rank"], r["cell_id"], r["hours_short"]) for r in rows] == [
        (r["rank"], r["cell_id"], r["hours_short"]) for r in api if r["hours_short"] > 0
    ]
    short = sum(1 for r in api if r["hours_short"] > 0)
    assert rows and f"{short:,} 处出现满位" in str(out["pk-shortage"]["children"])


def test_a_map_click_counts_only_while_the_tab_is_open(client, role_tokens, a_lot):
    headers = auth(role_tokens, "operator")
    click = {"latlng": {"lat": a_lot["lat"], "lng": a_lot["lon"] + 0.0005}}
    shown = nearest(client, headers, trigger="map", click=click)
    assert len(shown["pk-nearest-table"]["data"]) == 5
    assert nearest(client, headers, trigger="map", click=click, tab="search") == {}
    bad = nearest(client, headers, trigger="map", click={"latlng": "x"})
    assert "error" in str(bad["pk-nearest"]["children"])
