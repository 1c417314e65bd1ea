"""Alarm map and video linkage (issue #14) on a hand-made street with exactly placed cameras.

Cameras and points are placed with pyproj's geodesic (Geod.fwd: a bearing and a distance from a
position), so which camera sees which point is known by construction — the answer never comes
from the sector code under test. Margins from every sector edge are at least 5° and 10 m.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import box
from sqlalchemy import text

from auth import accounts
from geodata.db import make_engine
from settings import PROJECT_ROOT

GEOD = Geod(ellps="GRS80")
TO_GEO = Transformer.from_crs(4548, 4490, always_xy=True)
OX, OY = 501168.0, 4056492.0  # inside 历下区 (370102), as in test_coverage
STREET, COMMUNITY, GRID = "370102901", "370102901001", "370102901001001"
OTHER_STREET = "370102902"
UNIT = "历下区城管执法中队"
PASSWORD = "alarm-password-1"

# Cameras: code, origin (metres east, north of OX, OY), direction, fov, range, online.
CAMERAS = {
    "CAM_E": ((500, 500), 90.0, 60.0, 100.0, True),  # looks east
    "CAM_N": ((1500, 500), 350.0, 40.0, 100.0, True),  # looks north, sector across 0°
    "CAM_ALL": ((500, 1500), None, None, 30.0, False),  # all round, offline
    "CAM_FAR": ((2500, 500), 90.0, 60.0, 100.0, True),  # in the other street
}


def geo(xy):
    """Metres of the hand-made street to lon/lat (EPSG:4490)."""
    return TO_GEO.transform(OX + xy[0], OY + xy[1])


def at(origin, bearing: float, distance: float) -> tuple[float, float]:
    """The point `distance` metres from a camera origin along a compass bearing (geodesic)."""
    lon, lat = geo(origin)
    x, y, _ = GEOD.fwd(lon, lat, bearing, distance)
    return x, y


def dist(a, b) -> float:
    """Geodesic distance in metres between two lon/lat points."""
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def ewkt(geom) -> str:
    """A metre-polygon of the street as multipolygon EWKT in EPSG:4490."""
    g = shapely.transform(geom, lambda xy: np.column_stack(TO_GEO.transform(xy[:, 0] + OX,
                                                                              xy[:, 1] + OY)))  # fmt: skip
    return f"SRID=4490;{shapely.MultiPolygon([g]).wkt}"


def point(lonlat) -> str:
    """Point EWKT."""
    return f"SRID=4490;POINT({lonlat[0]} {lonlat[1]})"


# Sensors: code, kind, position; the cover sensor watches the component.
COMPONENT = "3701020101000001"
Q = at((500, 500), 90.0, 50.0)  # 50 m east of CAM_E: seen by CAM_E and CAM_W
SENSORS = {
    "S_COVER": ("井盖位移", Q),
    "S_LEVEL": ("液位", at((1500, 500), 5.0, 60.0)),  # seen by CAM_N across north
    "S_OTHER": ("液位", at((2500, 500), 90.0, 40.0)),  # in the other street
}
CAM_W = ("CAM_W", at((500, 500), 90.0, 60.0), 270.0, 90.0, 15.0)  # 10 m east of Q, looks west


@pytest.fixture(scope="module")
def town(scratch):
    """A scratch city: two streets, a community and grid, cameras, sensors, users and an app."""
    url = scratch.create_city("onemap_alarms")
    engine = make_engine(url)
    with engine.begin() as conn:
        for code, g in ((STREET, box(0, 0, 2000, 2000)), (OTHER_STREET, box(2000, 0, 4000, 2000))):
            conn.execute(text("INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
                              "(:c, 'street', :n, '370102', ST_GeomFromEWKT(:g))"),
                         {"c": code, "n": f"测试街道{code[-1]}", "g": ewkt(g)})  # fmt: skip
        conn.execute(text("INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
                          "(:c, 'community', '测试社区', :p, ST_GeomFromEWKT(:g))"),
                     {"c": COMMUNITY, "p": STREET, "g": ewkt(box(0, 0, 2000, 2000))})  # fmt: skip
        conn.execute(text("INSERT INTO unit_grid (code, community_code, responsible_unit, geom) "
                          "VALUES (:c, :p, :u, ST_GeomFromEWKT(:g))"),
                     {"c": GRID, "p": COMMUNITY, "u": UNIT, "g": ewkt(box(0, 0, 2000, 2000))})  # fmt: skip
        comp = conn.execute(text("INSERT INTO component (code, class_code, name, grid_code, geom) "
                                 "VALUES (:c, '0101', '上水井盖', :g, ST_GeomFromEWKT(:p)) RETURNING id"),
                            {"c": COMPONENT, "g": GRID, "p": point(Q)}).scalar()  # fmt: skip
        cams = [(c, geo(o), d, f, r, on) for c, (o, d, f, r, on) in CAMERAS.items()]
        cams.append((CAM_W[0], CAM_W[1], CAM_W[2], CAM_W[3], CAM_W[4], True))
        for code, pos, d, f, r, on in cams:
            conn.execute(text("INSERT INTO camera (code, name, direction_deg, fov_deg, range_m, online, "
                              "stream_url, geom) VALUES (:c, :c, :d, :f, :r, :on, :u, ST_GeomFromEWKT(:g))"),
                         {"c": code, "d": d, "f": f, "r": r, "on": on, "u": f"rtsp://video.test/{code}",
                          "g": point(pos)})  # fmt: skip
        for code, (kind, pos) in SENSORS.items():
            link = ("component", comp) if code == "S_COVER" else (None, None)
            conn.execute(text("INSERT INTO sensor (code, kind, name, linked_layer, linked_id, geom) "
                              "VALUES (:c, :k, :c, :l, :i, ST_GeomFromEWKT(:g))"),
                         {"c": code, "k": kind, "l": link[0], "i": link[1], "g": point(pos)})  # fmt: skip
        tokens = {}
        for role in ("admin", "operator", "leader", "planner", "district", "kiosk"):
            areas = [STREET] if role == "district" else []
            accounts.add_user(conn, f"a_{role}", role, PASSWORD, areas=areas)
            tokens[role] = accounts.create_token(conn, f"a_{role}", "t", 1)[1]
    from app import create_app
    from settings import Settings

    client = create_app(Settings(DATABASE_URL=url)).server.test_client()
    yield {"engine": engine, "client": client, "tokens": tokens, "url": url}
    engine.dispose()


def call(town, method: str, path: str, role: str = "operator", **kw):
    """A request on the town's app with a role's API token."""
    headers = {"Authorization": f"Bearer {town['tokens'][role]}"}
    return town["client"].open(path, method=method, headers=headers, **kw)


def seeing(town, lonlat, role: str = "leader") -> list[str]:
    """Codes of the cameras that see a point, in the order given."""
    resp = call(town, "GET", "/api/cameras/seeing", role,
                query_string={"lon": lonlat[0], "lat": lonlat[1]})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    return [c["code"] for c in resp.get_json()["cameras"]]


def alarm_count(town) -> int:
    """Alarms stored (independent SQL)."""
    with town["engine"].connect() as conn:
        return conn.execute(text("SELECT count(*) FROM alarm")).scalar()


# --- camera sectors --------------------------------------------------------------------------


@pytest.mark.parametrize(("origin", "bearing", "distance", "expected"), [
    ((500, 500), 90.0, 30.0, ["CAM_E"]),  # straight ahead
    ((500, 500), 115.0, 50.0, ["CAM_E"]),  # 25° off the axis of a 60° view
    ((500, 500), 125.0, 50.0, []),  # 35° off: outside
    ((500, 500), 270.0, 20.0, []),  # behind the camera
    ((500, 500), 90.0, 110.0, []),  # beyond its range
    ((1500, 500), 5.0, 60.0, ["CAM_N"]),  # sector 330°–10° across north: east of north
    ((1500, 500), 335.0, 60.0, ["CAM_N"]),  # west of north
    ((1500, 500), 15.0, 60.0, []),  # past the eastern edge
    ((1500, 500), 325.0, 60.0, []),  # past the western edge
    ((1500, 500), 170.0, 30.0, []),  # behind
    ((500, 1500), 200.0, 20.0, ["CAM_ALL"]),  # no direction: all round (offline cameras count)
    ((500, 1500), 200.0, 40.0, []),
])  # fmt: skip
def test_cameras_see_points_inside_their_sector(town, origin, bearing, distance, expected):
    assert seeing(town, at(origin, bearing, distance)) == expected


def test_cameras_come_nearest_first_with_distance_and_stream(town):
    body = call(town, "GET", "/api/cameras/seeing", "leader",
                query_string={"lon": Q[0], "lat": Q[1]}).get_json()  # fmt: skip
    assert [c["code"] for c in body["cameras"]] == ["CAM_W", "CAM_E"]
    expected = {"CAM_W": dist(Q, CAM_W[1]), "CAM_E": dist(Q, geo((500, 500)))}
    for cam in body["cameras"]:
        assert cam["distance_m"] == pytest.approx(expected[cam["code"]], abs=0.2)
        assert cam["stream_url"] == f"rtsp://video.test/{cam['code']}"
    assert expected["CAM_W"] == pytest.approx(10, abs=0.01)


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("operator", 200), ("leader", 200),
                                              ("planner", 403), ("district", 403), ("kiosk", 403)])  # fmt: skip
def test_only_roles_that_see_cameras_get_them(town, role, status):
    resp = call(town, "GET", "/api/cameras/seeing", role, query_string={"lon": Q[0], "lat": Q[1]})
    assert resp.status_code == status
    if status == 403:
        assert "受限" in resp.get_json()["error"]


def test_camera_stream_links_handed_out_are_audited(town):
    seeing(town, Q, "admin")
    with town["engine"].connect() as conn:
        row = conn.execute(text("SELECT username, detail FROM audit_log WHERE action = 'camera_seeing' "
                                "ORDER BY id DESC LIMIT 1")).one()  # fmt: skip
    assert row.username == "a_admin" and row.detail["cameras"] == ["CAM_W", "CAM_E"]


@pytest.mark.parametrize("query", [{}, {"lon": "x", "lat": "36"}, {"lon": "200", "lat": "36"},
                                   {"lon": "117", "lat": "36", "limit": "0"}])  # fmt: skip
def test_bad_points_are_400(town, query):
    resp = call(town, "GET", "/api/cameras/seeing", "leader", query_string=query)
    assert resp.status_code == 400 and resp.get_json()["error"]


# --- ingest ------------------------------------------------------------------------------------


def post(town, rows, role: str = "operator", **kw):
    """POST a batch of alarms."""
    return call(town, "POST", "/api/alarms", role, json=rows, **kw)


def row(code="S_LEVEL", raised="2026-11-30T08:00:00+08:00", level="严重", message="液位超过警戒值"):
    """One alarm as a sensor gateway sends it."""
    return {"sensor_code": code, "raised_at": raised, "level": level, "message": message}


BAD = [
    (row(code="NOPE"), "没有这个物联感知设备"),
    (row(raised="yesterday"), "ISO 8601"),
    (row(raised="2026-11-30"), "ISO 8601"),  # a date without a time
    (row(raised="2999-01-01T00:00:00+08:00"), "未来"),
    (row(level="超级"), "告警级别"),
    ({"sensor_code": "S_LEVEL", "level": "一般"}, "缺少字段"),
    ("not an object", "对象"),
    (row(message="x" * 501), "不超过 500"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD)
def test_a_bad_row_rejects_the_whole_batch_with_a_reason(town, bad, reason):
    before = alarm_count(town)
    resp = post(town, [row(raised="2026-11-01T09:00:00+08:00"), bad])
    assert resp.status_code == 422
    body = resp.get_json()
    assert not body["written"] and body["inserted"] == 0
    assert [r["index"] for r in body["rejected"]] == [1]
    assert reason in body["rejected"][0]["reason"]
    assert alarm_count(town) == before


def test_partial_writes_the_good_rows_and_duplicates_are_idempotent(town):
    before = alarm_count(town)
    batch = [row(raised="2026-11-02T10:00:00+08:00"), row(code="NOPE"),
             row(code="S_COVER", raised="2026-11-02T10:05:00+08:00", level="紧急", message="")]  # fmt: skip
    first = post(town, {"alarms": batch, "partial": True}).get_json()
    assert (first["inserted"], first["existing"], len(first["rejected"])) == (2, 0, 1)
    assert alarm_count(town) == before + 2
    # The same alarms again, one with its time written in UTC and one on the city clock: no change.
    again = [row(raised="2026-11-02T02:00:00Z"),
             row(code="S_COVER", raised="2026-11-02T10:05:00", level="紧急")]  # fmt: skip
    second = post(town, again).get_json()
    assert (second["written"], second["inserted"], second["existing"]) == (True, 0, 2)
    assert alarm_count(town) == before + 2
    with town["engine"].connect() as conn:
        message = conn.execute(text("SELECT message FROM alarm WHERE id = :i"),
                               {"i": max(first["ids"])}).scalar()  # fmt: skip
    assert message == "井盖位移告警"  # an empty message names the sensor kind


def test_the_same_alarm_twice_in_a_batch_is_rejected(town):
    same = row(raised="2026-11-03T10:00:00+08:00")
    body = post(town, [same, {**same, "raised_at": "2026-11-03T02:00:00+00:00"}]).get_json()
    assert body["rejected"][0]["index"] == 1 and "批次内重复" in body["rejected"][0]["reason"]


@pytest.mark.parametrize(
    "body", [None, {}, [], {"alarms": "x"}, {"alarms": [row()], "partial": "maybe"}]
)
def test_malformed_batches_are_400(town, body):
    resp = call(town, "POST", "/api/alarms", data="{" if body is None else None,
                json=body, content_type="application/json")  # fmt: skip
    assert resp.status_code == 400 and resp.get_json()["error"]


@pytest.mark.parametrize("role", ["leader", "planner", "district", "kiosk"])
def test_only_operators_and_admins_send_alarms(town, role):
    assert post(town, [row()], role).status_code == 403


def test_cookie_sessions_need_a_same_origin_post(town):
    client = town["client"].application.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page).group(1)
    signed = client.post("/login", data={"username": "a_operator", "password": PASSWORD,
                                         "csrf_token": csrf}, headers={"Origin": "http://localhost"})  # fmt: skip
    assert signed.status_code == 302
    batch = [row(raised="2026-11-04T10:00:00+08:00")]
    assert client.post("/api/alarms", json=batch).status_code == 403  # no Origin
    evil = client.post("/api/alarms", json=batch, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    ok = client.post("/api/alarms", json=batch, headers={"Origin": "http://localhost"})
    assert ok.status_code == 200 and ok.get_json()["inserted"] == 1


def test_cli_ingests_a_csv_all_or_nothing(town, tmp_path):
    path = tmp_path / "alarms.csv"
    path.write_text("sensor_code,raised_at,level,message\n"
                    "S_LEVEL,2026-11-05T08:00:00+08:00,一般,液位偏高\n"
                    "NOPE,2026-11-05T08:00:00+08:00,一般,\n", encoding="utf-8")  # fmt: skip
    env = {"DATABASE_URL": town["url"], "PATH": "/usr/bin:/bin"}
    before = alarm_count(town)
    refused = subprocess.run([sys.executable, "-m", "loaders", "alarms", str(path)], cwd=PROJECT_ROOT,
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "第 3 行 NOPE：没有这个物联感知设备" in refused.stdout
    assert alarm_count(town) == before
    for _ in range(2):  # the second run finds the alarm already stored
        done = subprocess.run([sys.executable, "-m", "loaders", "alarms", str(path), "--partial"],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 2, done.stderr
    assert "新增 0，已存在 1" in done.stdout
    assert alarm_count(town) == before + 1


# --- the list, closing, scope ------------------------------------------------------------------


def seed_alarms(town) -> dict[str, int]:
    """Three fresh alarms (one per sensor) at distinct later times; their ids by sensor."""
    batch = [row(code="S_LEVEL", raised="2026-11-20T08:00:00+08:00", level="一般"),
             row(code="S_COVER", raised="2026-11-20T09:00:00+08:00", level="紧急"),
             row(code="S_OTHER", raised="2026-11-20T10:00:00+08:00", level="提示")]  # fmt: skip
    post(town, batch)
    with town["engine"].connect() as conn:
        return dict(conn.execute(text("SELECT s.code, a.id FROM alarm a JOIN sensor s ON "
                                      "s.id = a.sensor_id WHERE a.raised_at >= '2026-11-20'")).all())  # fmt: skip


def test_list_is_newest_first_and_filters_by_kind_level_and_bbox(town):
    ids = seed_alarms(town)
    with town["engine"].connect() as conn:
        expected = conn.execute(text("SELECT a.id FROM alarm a WHERE a.state <> '已解除' "
                                     "ORDER BY a.raised_at DESC, a.id DESC")).scalars().all()  # fmt: skip
    body = call(town, "GET", "/api/alarms", "leader").get_json()
    assert [a["id"] for a in body["alarms"]] == expected and body["total"] == len(expected)
    assert body["alarms"][0]["id"] == ids["S_OTHER"]
    kind = call(town, "GET", "/api/alarms", "leader", query_string={"kind": "井盖位移"}).get_json()
    assert {a["sensor_code"] for a in kind["alarms"]} == {"S_COVER"}
    level = call(
        town, "GET", "/api/alarms", "leader", query_string={"level": "提示,紧急"}
    ).get_json()
    assert {a["id"] for a in level["alarms"]} >= {ids["S_OTHER"], ids["S_COVER"]}
    assert {a["level"] for a in level["alarms"]} <= {"提示", "紧急"}
    x, y = SENSORS["S_OTHER"][1]
    bbox = f"{x - 0.001},{y - 0.001},{x + 0.001},{y + 0.001}"
    near = call(town, "GET", "/api/alarms", "leader", query_string={"bbox": bbox}).get_json()
    assert {a["sensor_code"] for a in near["alarms"]} == {"S_OTHER"}


@pytest.mark.parametrize("query", [{"kind": "路灯"}, {"level": "高"}, {"active": "maybe"},
                                   {"bbox": "1,2,3"}, {"limit": "0"}])  # fmt: skip
def test_bad_list_filters_are_400(town, query):
    resp = call(town, "GET", "/api/alarms", "leader", query_string=query)
    assert resp.status_code == 400 and resp.get_json()["error"]


def test_district_users_see_only_their_areas(town):
    ids = seed_alarms(town)
    body = call(town, "GET", "/api/alarms", "district").get_json()
    assert "S_OTHER" not in {a["sensor_code"] for a in body["alarms"]}
    assert ids["S_LEVEL"] in {a["id"] for a in body["alarms"]}
    assert call(town, "GET", f"/api/alarms/{ids['S_OTHER']}", "district").status_code == 404
    sensors = call(town, "GET", "/api/sensors", "district").get_json()["sensors"]
    assert {s["code"] for s in sensors} == {"S_COVER", "S_LEVEL"}


def test_an_alarm_links_place_cameras_and_component_archive(town):
    ids = seed_alarms(town)
    body = call(town, "GET", f"/api/alarms/{ids['S_COVER']}", "leader").get_json()
    assert body["alarm"]["sensor_code"] == "S_COVER"
    assert body["place"]["grid_code"] == GRID and body["place"]["responsible_unit"] == UNIT
    assert body["place"]["community"]["code"] == COMMUNITY
    assert [c["code"] for c in body["cameras"]] == ["CAM_W", "CAM_E"]
    assert body["archive"]["attributes"]["code"] == COMPONENT
    planner = call(town, "GET", f"/api/alarms/{ids['S_COVER']}", "planner").get_json()
    assert planner["cameras"] is None and "受限" in planner["cameras_reason"]
    assert planner["place"]["grid_code"] == GRID  # the rest still answers
    point = call(town, "GET", "/api/linkage", "leader", query_string={"lon": Q[0], "lat": Q[1]})
    assert point.get_json()["archive"]["attributes"]["code"] == COMPONENT  # nearest component


def test_sensor_states_show_the_highest_active_level(town):
    seed_alarms(town)
    with town["engine"].connect() as conn:
        levels = dict(conn.execute(text(
            "SELECT s.code, (array_agg(a.level ORDER BY array_position(ARRAY['提示','一般','严重','紧急'], "
            "a.level) DESC))[1] FROM sensor s JOIN alarm a ON a.sensor_id = s.id "
            "WHERE a.state <> '已解除' GROUP BY s.code")).all())  # fmt: skip
    body = call(town, "GET", "/api/sensors", "leader").get_json()
    got = {s["code"]: s["level"] for s in body["sensors"] if s["state"] == "告警"}
    assert got == levels


def test_closing_records_who_and_when_and_is_idempotent(town):
    ids = seed_alarms(town)
    alarm_id = ids["S_LEVEL"]
    assert call(town, "POST", f"/api/alarms/{alarm_id}/close", "leader").status_code == 403
    assert call(town, "POST", "/api/alarms/999999/close").status_code == 404
    assert call(town, "POST", "/api/alarms/abc/close").status_code == 400
    assert call(town, "POST", f"/api/alarms/{alarm_id}/close", data="[1]",
                content_type="application/json").status_code == 400  # fmt: skip
    first = call(
        town, "POST", f"/api/alarms/{alarm_id}/close", json={"note": "已现场处理"}
    ).get_json()
    assert first["changed"] and first["alarm"]["state"] == "已解除"
    second = call(town, "POST", f"/api/alarms/{alarm_id}/close").get_json()
    assert second["changed"] is False
    with town["engine"].connect() as conn:
        state, cleared = conn.execute(text("SELECT state, cleared_at FROM alarm WHERE id = :i"),
                                      {"i": alarm_id}).one()  # fmt: skip
        audits = conn.execute(text("SELECT username, at, detail FROM audit_log WHERE action = "
                                   "'alarm_close' AND target = :t"), {"t": f"alarm/{alarm_id}"}).all()  # fmt: skip
    assert state == "已解除" and cleared is not None
    assert len(audits) == 1 and audits[0].username == "a_operator"
    assert (
        audits[0].detail["note"] == "已现场处理"
        and abs((audits[0].at - cleared).total_seconds()) < 5
    )
    active = call(town, "GET", "/api/alarms", "leader").get_json()["alarms"]
    assert alarm_id not in {a["id"] for a in active}
    everything = call(town, "GET", "/api/alarms", "leader", query_string={"active": "false"})
    assert alarm_id in {a["id"] for a in everything.get_json()["alarms"]}
