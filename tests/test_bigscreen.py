"""The big screen's figures (analytics/bigscreen.py) on a hand-made town, and its API.

Two streets of 2 × 2 km inside 历下区; the screen's "now" is fixed at 2026-03-10 15:00 (+08:00),
so "yesterday at this time" is 2026-03-09 15:00. Each case, alarm and reading carries the flags
a person assigned it by reading the definitions in docs/BIGSCREEN.md; the expected figures are
counts of those flags, never values from the code under test.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import shapely
from shapely.geometry import Point, box
from sqlalchemy import text

from analytics import bigscreen as bs
from auth import accounts
from auth.accounts import User
from auth.roles import ROLES
from errors import BadRequest, Forbidden
from geodata.db import make_engine
from layers.registry import LAYERS
from tests.test_case_kpis import geo, moment  # the same town metres and city-clock times

CITY = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=CITY)
STREETS = {"370102901": box(0, 0, 2000, 2000), "370102902": box(2000, 0, 4000, 2000)}
AT = {"901": (500, 500), "902": (2500, 500)}
# code, street, status, reported, closed, deadline, flags by hand at NOW (N new today before
# 15:00, NP new yesterday before 15:00, C closed today before 15:00, CP closed yesterday before
# 15:00, O overdue now, OP overdue yesterday at 15:00)
CASES = [
    ("S01", "901", "已派遣", "03-10 09:00", None, "03-11 09:00", "N"),
    ("S02", "901", "已立案", "03-10 16:00", None, "03-11 16:00", ""),  # after now
    ("S03", "902", "已结案", "03-09 10:00", "03-09 14:00", "03-10 10:00", "NP CP"),
    ("S04", "901", "已派遣", "03-09 18:00", None, "03-10 12:00", "O"),  # after yesterday 15:00
    ("S05", "901", "已结案", "03-08 08:00", "03-10 11:00", "03-09 12:00", "C OP"),
    ("S06", "902", "已派遣", "03-01 08:00", None, "03-05 08:00", "O OP"),
    ("S07", "901", "已作废", "03-02 08:00", None, "03-03 08:00", ""),  # voided: never overdue
    ("S08", "902", "已结案", "03-10 08:00", "03-10 14:30", "03-11 08:00", "N C"),
    (
        "S09",
        "901",
        "已结案",
        "03-10 08:00",
        "03-10 15:30",
        "03-10 12:00",
        "N O",
    ),  # closed after now
]
# sensor code, street, alarm raised, state, cleared, flags (A active now, AP active yesterday 15:00)
ALARMS = [
    ("W1", "901", "03-10 10:00", "未处理", None, "A"),
    ("W2", "901", "03-08 10:00", "已解除", "03-10 09:00", "AP"),
    ("W3", "902", "03-09 10:00", "处理中", None, "A AP"),
    ("W4", "902", "03-10 16:00", "未处理", None, ""),  # raised after now
]
CAMERAS = {"C1": True, "C2": True, "C3": True, "C4": False}  # 3 of 4 online: 75.0 %


def point(street: str) -> str:
    """EWKT of the town point of a street."""
    return f"SRID=4490;{geo(Point(AT[street])).wkt}"


def flagged(rows, flag: str) -> int:
    """How many rows carry a flag."""
    return sum(flag in row[-1].split() for row in rows)


@pytest.fixture(scope="module")
def town(scratch):
    """The scratch town with its cases, alarms, cameras and users; the app's test client."""
    url = scratch.create_city("onemap_screen")
    engine = make_engine(url)
    with engine.begin() as conn:
        for code, g in STREETS.items():
            conn.execute(text("INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
                              "(:c, 'street', :n, '370102', ST_GeomFromEWKT(:g))"),
                         {"c": code, "n": f"测试街道{code[-1]}",
                          "g": f"SRID=4490;{shapely.MultiPolygon([geo(g)]).wkt}"})  # fmt: skip
        for code, street, status, reported, closed, deadline, _ in CASES:
            conn.execute(text(
                "INSERT INTO case_record (code, kind, event_class_code, source, status, reported_at,"
                " registered_at, closed_at, deadline, description, geom) VALUES (:code, '事件',"
                " '0102', '监督员上报', :status, :rep, :rep, :clo, :dl, '张三 13800000000 举报',"
                " ST_GeomFromEWKT(:g))"),
                {"code": f"AJ{code}", "status": status, "rep": moment(reported),
                 "clo": moment(closed), "dl": moment(deadline), "g": point(street)})  # fmt: skip
        for code, street, raised, state, cleared, _ in ALARMS:
            sid = conn.execute(text("INSERT INTO sensor (code, kind, geom) VALUES (:c, '液位', "
                                    "ST_GeomFromEWKT(:g)) RETURNING id"),
                               {"c": code, "g": point(street)}).scalar()  # fmt: skip
            conn.execute(text("INSERT INTO alarm (sensor_id, raised_at, level, message, state, "
                              "cleared_at) VALUES (:s, :r, '严重', :m, :st, :cl)"),
                         {"s": sid, "r": moment(raised), "m": f"{code} 液位超限", "st": state,
                          "cl": moment(cleared)})  # fmt: skip
        for code, online in CAMERAS.items():
            conn.execute(text("INSERT INTO camera (code, name, online, geom) VALUES "
                              "(:c, :c, :on, ST_GeomFromEWKT(:g))"),
                         {"c": code, "on": online, "g": point("901")})  # fmt: skip
        tokens = {}
        for role in ("operator", "leader", "kiosk", "district"):
            areas = ["370102902"] if role == "district" else []
            accounts.add_user(conn, f"bs_{role}", role, "bs-password-1", areas=areas)
            tokens[role] = accounts.create_token(conn, f"bs_{role}", "t", 1)[1]
    from app import create_app
    from settings import Settings

    client = create_app(Settings(DATABASE_URL=url)).server.test_client()
    yield {"engine": engine, "client": client, "tokens": tokens}
    engine.dispose()


KIOSK = User(0, "k", ROLES["kiosk"], ())
STREET_902 = User(0, "d", ROLES["district"], ("370102902",))
VIEWS = bs.load_views(Path(__file__).resolve().parents[1] / "config" / "bigscreen.toml",
                      [x.id for x in LAYERS])  # fmt: skip


def test_case_figures_against_yesterday_at_this_time(town):
    with town["engine"].connect() as conn:
        got = bs.case_figures(conn, KIOSK, NOW)
    assert got["cases_new"] == {"value": flagged(CASES, "N"), "previous": flagged(CASES, "NP"),
                                "delta": 3 - 1, "basis": "较昨日同时"}  # fmt: skip
    assert (got["cases_closed"]["value"], got["cases_closed"]["previous"]) == (2, 1)
    assert (got["overdue"]["value"], got["overdue"]["previous"]) == (
        flagged(CASES, "O"), flagged(CASES, "OP"))  # fmt: skip
    assert (got["overdue"]["value"], got["overdue"]["previous"]) == (3, 2)


def test_a_district_user_counts_only_their_street(town):
    with town["engine"].connect() as conn:
        got = bs.case_figures(conn, STREET_902, NOW)
        feed = bs.feed(conn, STREET_902, NOW)
    in_902 = [c for c in CASES if c[1] == "902"]
    assert got["cases_new"]["value"] == flagged(in_902, "N") == 1
    assert got["overdue"]["value"] == flagged(in_902, "O") == 1
    codes = {i["code"] for i in feed}
    assert codes == {"AJS03", "AJS06", "AJS08", "W3"}  # street 902 only, nothing after now


def test_active_alarms_now_and_yesterday(town):
    with town["engine"].connect() as conn:
        got = bs.alarm_figures(conn, KIOSK, NOW)
    assert got["alarms_active"]["value"] == flagged(ALARMS, "A") == 2
    assert got["alarms_active"]["previous"] == flagged(ALARMS, "AP") == 2
    # raised in the 7 days up to now: W1, W2 (03-08) and W3; W4 comes after now
    assert got["alarms_by_kind"] == [{"kind": "液位", "level": "严重", "n": 3}]


def test_camera_rate_is_recorded_once_a_day_and_compared_with_the_last_record(town):
    with town["engine"].begin() as conn:
        first = bs.camera_figures(conn, KIOSK, NOW)["camera_online"]
        assert first == {"value": 75.0, "previous": None, "delta": None, "basis": "无往日记录"}
        conn.execute(text("INSERT INTO kpi_daily (day, kpi, value) VALUES ('2026-03-08', "
                          "'camera_online', 50.0)"))  # fmt: skip
        again = bs.camera_figures(conn, KIOSK, NOW)["camera_online"]
        assert again == {"value": 75.0, "previous": 50.0, "delta": 25.0, "basis": "较 03-08"}
        rows = conn.execute(text("SELECT day::text, value FROM kpi_daily WHERE kpi = "
                                 "'camera_online' ORDER BY day")).all()  # fmt: skip
        assert [tuple(r) for r in rows] == [("2026-03-08", 50.0), ("2026-03-10", 75.0)]
        conn.execute(text("DELETE FROM kpi_daily"))


def test_feed_is_newest_first_and_carries_no_person_details(town):
    with town["engine"].connect() as conn:
        feed = bs.feed(conn, KIOSK, NOW)
    times = [i["at"] for i in feed]
    assert times == sorted(times, reverse=True)
    assert [i["code"] for i in feed[:2]] == ["W1", "AJS01"]  # raised 10:00, reported 09:00
    assert "AJS02" not in {i["code"] for i in feed} and "W4" not in {i["code"] for i in feed}
    assert all("张三" not in str(i) and "138" not in str(i) for i in feed)


def test_parts_keep_their_hash_until_what_they_read_changes(town):
    engine = town["engine"]
    with engine.begin() as conn:
        before = bs.snapshot(conn, KIOSK, VIEWS)
    with engine.begin() as conn:
        same = bs.snapshot(conn, KIOSK, VIEWS)
        conn.execute(text(
            "INSERT INTO case_record (code, kind, event_class_code, source, status, reported_at,"
            " geom) VALUES ('AJS99', '事件', '0102', '监督员上报', '已立案', now(),"
            " ST_GeomFromEWKT(:g))"), {"g": point("901")})  # fmt: skip
    with engine.begin() as conn:
        after = bs.snapshot(conn, KIOSK, VIEWS)
        conn.execute(text("DELETE FROM case_record WHERE code = 'AJS99'"))
    hashes = {p: v["hash"] for p, v in before["parts"].items()}
    assert {p: v["hash"] for p, v in same["parts"].items()} == hashes
    assert after["parts"]["feed"]["hash"] != hashes["feed"]
    assert after["parts"]["feed"]["data"][0]["code"] == "AJS99"
    assert after["parts"]["cameras"]["hash"] == hashes["cameras"]  # untouched by a new case


def test_views_config_is_checked():
    layer_ids = [x.id for x in LAYERS]
    good = {"view": [{"id": "a", "title": "案件", "layers": ["case"], "kpis": ["cases_new"],
                      "charts": ["cases_trend"]}]}  # fmt: skip
    assert bs.parse_views(good, layer_ids)[0].kpis == ("cases_new",)
    bad_kpi = {"view": [{**good["view"][0], "kpis": ["nope"]}]}
    with pytest.raises(ValueError, match="kpis 中没有 nope"):
        bs.parse_views(bad_kpi, layer_ids)
    with pytest.raises(ValueError, match="layers 中没有 nowhere"):
        bs.parse_views({"view": [{**good["view"][0], "layers": ["nowhere"]}]}, layer_ids)
    with pytest.raises(ValueError, match="id 重复"):
        bs.parse_views({"view": good["view"] * 2}, layer_ids)
    with pytest.raises(ValueError, match="至少需要一个"):
        bs.parse_views({}, layer_ids)
    assert [v.id for v in VIEWS] == ["cases", "drainage", "sanitation", "parking", "parks", "video"]


def test_pin_is_for_operators_and_names_a_configured_view(town):
    operator = User(0, "bs_operator", ROLES["operator"], ())
    with town["engine"].begin() as conn:
        with pytest.raises(Forbidden):
            bs.pin_view(conn, KIOSK, "parking", VIEWS, ip="t")
        with pytest.raises(BadRequest, match="没有大屏专题"):
            bs.pin_view(conn, operator, "<script>", VIEWS, ip="t")
        assert bs.pin_view(conn, operator, "parking", VIEWS, ip="t")["pinned"]["view"] == "parking"
        assert bs.pinned(conn, VIEWS)["by"] == "bs_operator"
        assert bs.pin_view(conn, operator, None, VIEWS, ip="t") == {"pinned": None}
        assert bs.pinned(conn, VIEWS) is None
        actions = conn.execute(text("SELECT action, target FROM audit_log WHERE username = "
                                    "'bs_operator' ORDER BY id")).all()  # fmt: skip
    assert [tuple(a) for a in actions] == [("bigscreen_pin", "parking"), ("bigscreen_unpin", None)]


def api(town, method: str, path: str, role: str, **kwargs):
    """Call the town's app as a role."""
    headers = {"Authorization": f"Bearer {town['tokens'][role]}"}
    return getattr(town["client"], method)(path, headers=headers, **kwargs)


def test_api_serves_the_same_figures_to_the_kiosk(town):
    resp = api(town, "get", "/api/bigscreen", "kiosk")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["kpis"]["camera_online"]["value"] == 75.0
    assert [v["id"] for v in body["views"]] == [v.id for v in VIEWS]
    assert body["pinned"] is None and body["mode"] == "today"
    assert resp.headers["Cache-Control"] == "no-store"


def test_api_pin_refuses_bad_input_and_other_roles(town):
    assert (
        api(town, "post", "/api/bigscreen/pin", "kiosk", json={"view": "parking"}).status_code
        == 403
    )
    assert (
        api(town, "post", "/api/bigscreen/pin", "leader", json={"view": "parking"}).status_code
        == 403
    )
    for body in ({"view": "nowhere"}, {"view": 3}, {"other": 1}, [1]):
        resp = api(town, "post", "/api/bigscreen/pin", "operator", json=body)
        assert resp.status_code == 400 and resp.get_json()["error"], body
    resp = api(town, "post", "/api/bigscreen/pin", "operator", data="{not json",
               content_type="application/json")  # fmt: skip
    assert resp.status_code == 400
    ok = api(town, "post", "/api/bigscreen/pin", "operator", json={"view": "video"})
    assert ok.status_code == 200 and ok.get_json()["pinned"]["view"] == "video"
    assert api(town, "get", "/api/bigscreen", "kiosk").get_json()["pinned"]["view"] == "video"
    assert (
        api(town, "post", "/api/bigscreen/pin", "operator", json={"view": None}).status_code == 200
    )
