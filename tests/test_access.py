"""Access control against the real server: sign-in, roles, district scoping, audit, hardening."""

from __future__ import annotations

import time

import mapbox_vector_tile
import pytest
import requests
from sqlalchemy import text

from tests.conftest import TEST_PASSWORD, tile_of


def as_role(tokens: dict, role: str) -> requests.Session:
    """An HTTP session authenticated with the role's API token."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {tokens[role]}"
    return s


def scalar(engine, sql: str, **params):
    """One value from a query."""
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.fixture(scope="module")
def places(demo_engine) -> dict:
    """The district user's street, a component inside it and one outside it."""
    street = scalar(
        demo_engine, "SELECT code FROM admin_area WHERE level = 'street' ORDER BY code LIMIT 1"
    )
    inside = """SELECT c.id, ST_X(c.geom) lon, ST_Y(c.geom) lat FROM component c
                WHERE left(c.class_code, 2) = '01' AND {cond} ST_Within(c.geom,
                (SELECT geom FROM admin_area WHERE code = :s)) ORDER BY c.id LIMIT 1"""
    with demo_engine.connect() as conn:
        a = conn.execute(text(inside.format(cond="")), {"s": street}).mappings().one()
        b = conn.execute(text(inside.format(cond="NOT")), {"s": street}).mappings().one()
    return {"street": street, "inside": dict(a), "outside": dict(b)}


ENDPOINTS = ["/api/layers", "/api/features/case", "/tiles/case/14/13519/6396.pbf",
             "/api/stats/case?by=status", "/api/objects/case/1", "/api/geocode?q=路",
             "/api/reverse?lon=117.05&lat=36.66", "/api/export/case", "/api/me",
             "/_dash-layout", "/api/admin/audit"]  # fmt: skip


@pytest.mark.parametrize("path", ENDPOINTS)
def test_anonymous_requests_are_refused(live_server, path):
    resp = requests.get(live_server + path, timeout=30, allow_redirects=False)
    assert resp.status_code == 401 and resp.json()["error"]


def test_anonymous_page_goes_to_sign_in_but_assets_are_public(live_server):
    page = requests.get(live_server + "/?layers=case&z=15", timeout=30, allow_redirects=False)
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/login?next=%2F%3Flayers%3Dcase%26z%3D15")
    assert requests.get(live_server + "/login", timeout=30).status_code == 200
    assert requests.get(live_server + "/assets/style.css", timeout=30).status_code == 200


def test_restricted_layer_is_invisible_without_the_role(live_server, role_tokens):
    for role in ("planner", "district", "kiosk"):
        s = as_role(role_tokens, role)
        ids = {x["id"] for x in s.get(live_server + "/api/layers", timeout=30).json()["layers"]}
        assert "camera" not in ids
        for path in ("/tiles/camera/14/13519/6396.pbf", "/api/features/camera",
                     "/api/stats/camera?by=online", "/api/objects/camera/1"):  # fmt: skip
            assert s.get(live_server + path, timeout=30).status_code == 403, (role, path)
    for role in ("admin", "leader", "operator"):
        s = as_role(role_tokens, role)
        ids = {x["id"] for x in s.get(live_server + "/api/layers", timeout=30).json()["layers"]}
        assert "camera" in ids
        assert s.get(live_server + "/api/features/camera?limit=1", timeout=30).status_code == 200


def test_district_user_sees_only_its_street(live_server, role_tokens, demo_engine, places):
    s = as_role(role_tokens, "district")
    street = places["street"]
    expected = scalar(demo_engine, "SELECT count(*) FROM case_record WHERE ST_Intersects(geom, "
                                   "(SELECT geom FROM admin_area WHERE code = :s))", s=street)  # fmt: skip
    body = s.get(live_server + "/api/features/case?limit=1", timeout=30).json()
    assert body["numberMatched"] == expected > 0
    stats = s.get(live_server + "/api/stats/case?by=status&area=370102", timeout=30).json()
    assert stats["total"] == expected
    hits = s.get(live_server + "/api/geocode?q=路&limit=50", timeout=30).json()["results"]
    assert hits and all(r["community_code"].startswith(street) for r in hits)


def test_district_user_is_refused_outside_its_street(live_server, role_tokens, places):
    s = as_role(role_tokens, "district")
    inside, outside = places["inside"], places["outside"]
    assert (
        s.get(f"{live_server}/api/objects/component_01/{inside['id']}", timeout=30).status_code
        == 200
    )
    assert (
        s.get(f"{live_server}/api/objects/component_01/{outside['id']}", timeout=30).status_code
        == 404
    )
    far = s.get(f"{live_server}/api/reverse?lon={outside['lon']}&lat={outside['lat']}", timeout=30)
    assert far.status_code == 403


def tile_ids(resp: requests.Response) -> set[int]:
    """Feature ids of the component_01 layer in a tile response."""
    assert resp.status_code == 200, resp.text
    return {f["id"] for f in mapbox_vector_tile.decode(resp.content)["component_01"]["features"]}


def test_district_user_tiles_hold_only_its_street(live_server, role_tokens, demo_engine, places):
    street, outside = places["street"], places["outside"]
    z = 16  # component_01's detail zoom: raw features with their ids
    with demo_engine.connect() as conn:  # a tile with objects inside the street and outside it
        x, y = conn.execute(text(
            "SELECT x::int, y::int FROM (SELECT floor((ST_X(m) + h) / w) x, "
            "floor((h - ST_Y(m)) / w) y, bool_or(i) some_in, bool_and(i) all_in "
            "FROM (SELECT ST_Transform(c.geom, 3857) m, "
            "ST_Intersects(c.geom, a.geom) i, 20037508.342789244 h, 40075016.68557849 / 2 ^ :z w "
            "FROM component c, admin_area a WHERE a.code = :s AND left(c.class_code, 2) = '01') p "
            "GROUP BY 1, 2) t WHERE some_in AND NOT all_in ORDER BY x, y LIMIT 1"),
            {"z": z, "s": street}).one()  # fmt: skip
        in_tile = ("left(c.class_code, 2) = '01' AND ST_Intersects(ST_Transform(c.geom, 3857), "
                   "ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))")  # fmt: skip
        expected = set(conn.execute(text(
            f"SELECT c.id FROM component c WHERE {in_tile} AND ST_Intersects(c.geom, "
            "(SELECT geom FROM admin_area WHERE code = :s))"), {"z": z, "x": x, "y": y, "s": street}
        ).scalars())  # fmt: skip
        everything = set(conn.execute(text(f"SELECT c.id FROM component c WHERE {in_tile}"),
                                      {"z": z, "x": x, "y": y}).scalars())  # fmt: skip
    assert expected and everything - expected  # the tile crosses the street's edge
    path = f"{live_server}/tiles/component_01/{z}/{x}/{y}.pbf"
    assert tile_ids(as_role(role_tokens, "admin").get(path, timeout=30)) == everything
    assert tile_ids(as_role(role_tokens, "district").get(path, timeout=30)) == expected
    x, y = tile_of(outside["lon"], outside["lat"], 18)
    refused = as_role(role_tokens, "district").get(
        f"{live_server}/tiles/component_01/18/{x}/{y}.pbf", timeout=30
    )
    assert refused.status_code == 403 and refused.json()["error"]


def test_export_is_for_planners_and_audited(live_server, role_tokens, demo_engine):
    planner = as_role(role_tokens, "planner").get(
        live_server + "/api/export/green_space", timeout=60
    )
    assert planner.status_code == 200 and "attachment" in planner.headers["Content-Disposition"]
    assert planner.json()["features"]
    for role in ("leader", "operator", "district", "kiosk"):
        assert as_role(role_tokens, role).get(live_server + "/api/export/green_space",
                                              timeout=30).status_code == 403  # fmt: skip
    assert scalar(demo_engine, "SELECT count(*) FROM audit_log WHERE action = 'export' "
                               "AND username = 't_planner'") >= 1  # fmt: skip


def test_restricted_archive_views_are_audited(live_server, role_tokens, demo_engine):
    cam = scalar(demo_engine, "SELECT min(id) FROM camera")
    entries = ("SELECT count(*) FROM audit_log WHERE action = 'archive_view' AND target = :t "
               "AND username = 't_leader' AND ip = '127.0.0.1'")  # fmt: skip
    before = scalar(demo_engine, entries, t=f"camera/{cam}")
    resp = as_role(role_tokens, "leader").get(f"{live_server}/api/objects/camera/{cam}", timeout=30)
    assert resp.status_code == 200
    assert (
        scalar(demo_engine, entries, t=f"camera/{cam}") == before + 1
    )  # one entry, with the address
    case = scalar(demo_engine, "SELECT min(id) FROM case_record")
    as_role(role_tokens, "leader").get(f"{live_server}/api/objects/case/{case}", timeout=30)
    assert (
        scalar(demo_engine, "SELECT count(*) FROM audit_log WHERE target = :t", t=f"case/{case}")
        == 0
    )  # unrestricted layers are not audited per view


def test_audit_log_is_for_admins(live_server, role_tokens):
    assert (
        as_role(role_tokens, "admin")
        .get(live_server + "/api/admin/audit", timeout=30)
        .json()["entries"]
    )
    assert (
        as_role(role_tokens, "planner")
        .get(live_server + "/api/admin/audit", timeout=30)
        .status_code
        == 403
    )


def sign_in(base: str, username: str, password: str, s: requests.Session | None = None):
    """POST the login form the way a browser does (CSRF token and Origin)."""
    s = s or requests.Session()
    form = s.get(base + "/login", timeout=30).text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    return s.post(base + "/login", data={"username": username, "password": password, "csrf_token": csrf},
                  headers={"Origin": base}, allow_redirects=False, timeout=30)  # fmt: skip


def test_sign_in_sign_out_and_throttling(live_server, demo_engine):
    ok = sign_in(live_server, "t_kiosk", TEST_PASSWORD)
    assert ok.status_code == 302 and "session" in ok.cookies
    for _ in range(5):
        assert sign_in(live_server, "t_operator", "wrong-password").status_code == 401
    throttled = sign_in(live_server, "t_operator", TEST_PASSWORD)
    assert throttled.status_code == 429 and "15 分钟" in throttled.text
    with demo_engine.connect() as conn:
        actions = {r for (r,) in conn.execute(text(
            "SELECT DISTINCT action FROM audit_log WHERE username IN ('t_kiosk', 't_operator')"))}  # fmt: skip
    assert {"login", "login_failed", "login_throttled"} <= actions


def test_csrf_and_security_headers(live_server):
    s = requests.Session()
    form = s.get(live_server + "/login", timeout=30)
    assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]
    assert form.headers["X-Frame-Options"] == "DENY"
    no_token = s.post(live_server + "/login", data={"username": "t_admin", "password": TEST_PASSWORD},
                      headers={"Origin": live_server}, timeout=30)  # fmt: skip
    assert no_token.status_code == 400
    signed = requests.Session()
    assert sign_in(live_server, "t_admin", TEST_PASSWORD, signed).status_code == 302
    assert signed.get(live_server + "/api/me", timeout=30).json()["role"] == "admin"
    cross = signed.post(live_server + "/_dash-update-component", json={},
                        headers={"Origin": "http://evil.example"}, timeout=30)  # fmt: skip
    assert cross.status_code == 403 and "跨站" in cross.json()["error"]


def test_crafted_names_cannot_reach_sql(live_server, role_tokens, demo_engine):
    s = as_role(role_tokens, "admin")
    before = scalar(demo_engine, "SELECT count(*) FROM component")
    for path in ('/tiles/case";drop table component;--/10/0/0.pbf',
                 "/api/features/case?status%3Bdrop=1", "/api/stats/case?by=status;drop",
                 "/api/features/case?area=370102%27--", "/api/objects/component_01/1%20or%201=1"):  # fmt: skip
        assert s.get(live_server + path, timeout=30).status_code in (400, 404), path
    assert scalar(demo_engine, "SELECT count(*) FROM component") == before


def test_kiosk_screen_signs_in_with_its_token_only(live_server, role_tokens):
    def post_token(token):
        s = requests.Session()
        page = s.get(live_server + "/login/token", timeout=30).text
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        return s, s.post(live_server + "/login/token", data={"t": token, "csrf_token": csrf},
                         headers={"Origin": live_server}, allow_redirects=False, timeout=30)  # fmt: skip

    s, ok = post_token(role_tokens["kiosk"])
    assert ok.status_code == 302
    assert s.get(live_server + "/api/me", timeout=30).json()["role"] == "kiosk"
    assert post_token(role_tokens["admin"])[1].status_code == 401  # only kiosk tokens
    in_query = requests.get(f"{live_server}/login/token?t={role_tokens['kiosk']}", timeout=30)
    assert in_query.status_code == 400  # a token in the query would land in the access log


def test_disabled_user_is_refused_within_the_cache_time(live_server, demo_engine):
    from auth import accounts

    with demo_engine.begin() as conn:
        accounts.add_user(conn, "t_leaving", "leader", TEST_PASSWORD)
        token = accounts.create_token(conn, "t_leaving", "tests", 1)[1]
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    assert s.get(live_server + "/api/me", timeout=30).status_code == 200
    with demo_engine.begin() as conn:
        accounts.set_active(conn, "t_leaving", False)
    time.sleep(5.5)  # ONEMAP_AUTH_CACHE_SECONDS, default 5
    assert s.get(live_server + "/api/me", timeout=30).status_code == 401
