"""Sign-in hardening against the real server: redirects, revocation, throttling, timing, CSRF."""

from __future__ import annotations

import html
import http.client
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import text

from auth import accounts
from bench.common import CHROMIUM_FLAGS, Server
from settings import PROJECT_ROOT
from tests.conftest import ARTIFACTS, TEST_PASSWORD

# The second server stands behind one reverse proxy that users reach at this origin.
PROXY_ORIGIN = "http://onemap.test"
PROXY_SECRET = "hardening-" + uuid.uuid4().hex
AUTH_CACHE_WAIT = 5.5  # ONEMAP_AUTH_CACHE_SECONDS (default 5) plus a margin

BYPASSES = ["//evil.example/phish", "/\\evil.example/phish", "/\\/evil.example/phish",
            "\\\\evil.example/phish", "/\t/evil.example/phish", "/\n/evil.example/phish",
            "/\r\n/evil.example/phish", " //evil.example/phish", "/%09/evil.example/phish",
            "/%0a/evil.example/phish", "/%5Cevil.example/phish", "/%5c/evil.example/phish",
            "/%2F/evil.example/phish", "/%2f%2fevil.example/phish", "/%252F/evil.example/phish",
            "https://evil.example/phish", "http:evil.example", "javascript:alert(1)",
            "/\u200b/evil.example/phish"]  # fmt: skip


@pytest.fixture(scope="module")
def proxied(demo_database_url, role_tokens):
    """A second real server as deployed behind one proxy: X-Forwarded-For trusted, a public
    origin, a known signing key and one worker (so its user cache is the only one)."""
    with Server(demo_database_url, ONEMAP_TRUSTED_PROXIES="1", ONEMAP_PUBLIC_ORIGIN=PROXY_ORIGIN,
                ONEMAP_SECRET_KEY=PROXY_SECRET, ONEMAP_WORKERS="1") as server:  # fmt: skip
        yield server.base


@pytest.fixture()
def new_user(demo_engine):
    """Factory of fresh leader accounts (password TEST_PASSWORD), so tests share no counters."""

    def make(role: str = "leader") -> str:
        name = f"h_{uuid.uuid4().hex[:10]}"
        with demo_engine.begin() as conn:
            accounts.add_user(conn, name, role, TEST_PASSWORD)
        return name

    return make


def form_value(page: str, name: str) -> str | None:
    """The value of a hidden input rendered into a form."""
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


def via_proxy(ip: str) -> dict[str, str]:
    """Headers the reverse proxy adds: the public host and the caller's address."""
    return {"Host": urlsplit(PROXY_ORIGIN).netloc, "X-Forwarded-For": ip}


def login(base: str, username: str, password: str = TEST_PASSWORD, *, s=None, origin=None,
          headers=None, next_=None) -> requests.Response:  # fmt: skip
    """POST the sign-in form as a browser does (CSRF token from the form, Origin header)."""
    s = s or requests.Session()
    headers = headers or {}
    csrf = form_value(s.get(base + "/login", headers=headers, timeout=30).text, "csrf_token")
    data = {"username": username, "password": password, "csrf_token": csrf}
    if next_ is not None:
        data["next"] = next_
    return s.post(base + "/login", data=data, headers={"Origin": origin or base, **headers},
                  allow_redirects=False, timeout=60)  # fmt: skip


def me(s: requests.Session, base: str) -> int:
    """Status of GET /api/me for a session."""
    return s.get(base + "/api/me", allow_redirects=False, timeout=30).status_code


def generation(engine, username: str) -> int:
    """A user's session generation."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT session_generation FROM app_user WHERE username = :u"),
                            {"u": username}).scalar_one()  # fmt: skip


# --- 1. open redirect after sign-in ----------------------------------------------------------


@pytest.mark.parametrize("target", BYPASSES)
def test_next_bypass_is_dropped_from_the_form(live_server, target):
    page = requests.get(live_server + "/login", params={"next": target}, timeout=30)
    assert page.status_code == 200
    assert form_value(page.text, "next") == "/"


@pytest.mark.parametrize("target", BYPASSES)
def test_next_bypass_is_dropped_after_sign_in(live_server, target):
    resp = login(live_server, "t_planner", next_=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"


def test_local_next_is_kept(live_server):
    resp = login(live_server, "t_planner", next_="/?layers=case&z=15")
    assert resp.headers["Location"] == "/?layers=case&z=15"


# --- 2. sessions can be revoked and end ------------------------------------------------------


def test_signed_out_cookie_no_longer_works(proxied, new_user):
    s = requests.Session()
    s.headers.update(via_proxy("10.9.0.1"))
    name = new_user()  # signing out ends every session of the user: not the shared test admin
    assert login(proxied, name, s=s, origin=PROXY_ORIGIN).status_code == 302
    copied = requests.Session()  # the cookie, copied by someone else
    copied.headers.update(s.headers)
    copied.cookies.update(s.cookies)
    assert me(copied, proxied) == 200
    page = s.get(proxied + "/logout", allow_redirects=False, timeout=30)
    assert page.status_code == 200 and me(s, proxied) == 200  # GET changes nothing
    csrf = form_value(page.text, "csrf_token")
    assert csrf
    for data, origin in (({}, PROXY_ORIGIN), ({"csrf_token": csrf}, "http://evil.example")):
        refused = s.post(proxied + "/logout", data=data, headers={"Origin": origin},
                         allow_redirects=False, timeout=30)  # fmt: skip
        assert refused.status_code == 403 and refused.json()["status"] == 403
        assert me(s, proxied) == 200
    out = s.post(proxied + "/logout", data={"csrf_token": csrf}, headers={"Origin": PROXY_ORIGIN},
                 allow_redirects=False, timeout=30)  # fmt: skip
    assert out.status_code == 302 and out.headers["Location"] == "/login"
    assert me(s, proxied) == 401
    assert me(copied, proxied) == 401  # the same worker: at once, not after the cache time


def test_password_reset_ends_sessions(live_server, demo_database_url, new_user):
    name = new_user()
    old = requests.Session()
    assert login(live_server, name, s=old).status_code == 302
    for _ in range(4):  # let both workers cache the user
        assert me(old, live_server) == 200
    env = {**os.environ, "DATABASE_URL": demo_database_url}
    out = subprocess.run([sys.executable, "-m", "loaders", "user", "reset", name], cwd=PROJECT_ROOT,
                         env=env, capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    password = out.strip().rsplit("：", 1)[1]
    new = requests.Session()
    assert login(live_server, name, password, s=new).status_code == 302
    for _ in range(4):  # a newer session than the cached user is looked up again
        assert me(new, live_server) == 200
    time.sleep(AUTH_CACHE_WAIT)
    assert me(old, live_server) == 401
    assert me(new, live_server) == 200


def test_disabling_and_role_or_area_changes_bump_the_generation(demo_engine, new_user):
    name = new_user()
    start = generation(demo_engine, name)
    with demo_engine.begin() as conn:
        street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' LIMIT 1"))
        street = street.scalar_one()
        accounts.set_active(conn, name, False)
    assert generation(demo_engine, name) == start + 1
    steps = [("UPDATE app_user SET active = true WHERE username = :u", 0),
             ("UPDATE app_user SET display_name = '新名字' WHERE username = :u", 0),
             ("UPDATE app_user SET role = 'planner' WHERE username = :u", 1),
             ("UPDATE app_user SET role = 'district', areas = ARRAY[:a] WHERE username = :u", 1),
             ("UPDATE app_user SET areas = ARRAY[:a, :a] WHERE username = :u", 1)]  # fmt: skip
    expected = start + 1
    for sql, bump in steps:
        with demo_engine.begin() as conn:
            conn.execute(text(sql), {"u": name, "a": street})
        expected += bump
        assert generation(demo_engine, name) == expected, sql
    with demo_engine.begin() as conn:
        accounts.set_password(conn, name, TEST_PASSWORD)
    assert generation(demo_engine, name) == expected + 1


def forged_session(uid: int, gen: int, signed_in: float) -> str:
    """A session cookie signed with the proxied server's key."""
    app = Flask("forge")
    app.secret_key = PROXY_SECRET
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.dumps({"uid": uid, "gen": gen, "at": int(signed_in), "csrf": "x"})


def test_sessions_end_after_the_absolute_lifetime(proxied, demo_engine, new_user):
    name = new_user()
    with demo_engine.connect() as conn:
        uid = conn.execute(text("SELECT id FROM app_user WHERE username = :u"), {"u": name})
        uid = uid.scalar_one()
    gen = 0  # a new user's generation
    for age_hours, status in ((1, 200), (11.9, 200), (12.1, 401), (100, 401)):
        s = requests.Session()
        s.cookies.set("session", forged_session(uid, gen, time.time() - age_hours * 3600))
        assert me(s, proxied) == status, age_hours
    stale = requests.Session()
    stale.cookies.set("session", forged_session(uid, gen - 1, time.time() - 60))
    assert me(stale, proxied) == 401  # an older generation


# --- 3. throttling per account and address, behind a proxy -----------------------------------


def test_sign_in_delay_grows_with_the_accounts_failures():
    assert [accounts.sign_in_delay(n) for n in range(11)] == [0, 0, 0, 0, 0, 1, 2, 4, 8, 8, 8]


def test_failures_lock_the_pair_not_the_account(proxied, new_user, demo_engine):
    name, attacker = new_user(), via_proxy("10.1.0.1")
    for _ in range(5):
        failed = login(proxied, name, "wrong-password", origin=PROXY_ORIGIN, headers=attacker)
        assert failed.status_code == 401
    locked = login(proxied, name, origin=PROXY_ORIGIN, headers=attacker)
    assert locked.status_code == 429 and "15 分钟" in locked.text  # the sign-in page
    started = time.monotonic()
    elsewhere = login(proxied, name, origin=PROXY_ORIGIN, headers=via_proxy("10.1.0.2"))
    assert elsewhere.status_code == 302  # the owner, from another address, still gets in
    assert time.monotonic() - started >= 1.0  # ... after the account's growing delay
    with demo_engine.connect() as conn:
        ips = {r for (r,) in conn.execute(text(
            "SELECT ip FROM audit_log WHERE username = :u AND action = 'login_throttled'"),
            {"u": name})}  # fmt: skip
    assert ips == {"10.1.0.1"}  # the address behind the proxy, not the proxy's


def test_address_limit_uses_the_forwarded_address(proxied, new_user, demo_engine):
    name = new_user()
    with demo_engine.begin() as conn:
        for i in range(30):
            conn.execute(text("INSERT INTO login_failure (username, ip) VALUES (:u, '10.2.0.1')"),
                         {"u": f"guess{i}"})  # fmt: skip
    json_client = {**via_proxy("10.2.0.1"), "Accept": "application/json"}
    locked = login(proxied, name, origin=PROXY_ORIGIN, headers=json_client)
    assert locked.status_code == 429
    assert locked.json() == {"error": locked.json()["error"], "status": 429}
    other = login(proxied, name, origin=PROXY_ORIGIN, headers=via_proxy("10.2.0.2"))
    assert other.status_code == 302


# --- 4. no user-name enumeration by timing ---------------------------------------------------


def timed_failure(base: str, username: str, ip: str) -> float:
    """Seconds one failed sign-in takes (the form fetch not counted)."""
    s = requests.Session()
    s.headers.update(via_proxy(ip))
    csrf = form_value(s.get(base + "/login", timeout=30).text, "csrf_token")
    started = time.perf_counter()
    resp = s.post(base + "/login", data={"username": username, "password": "wrong-password",
                  "csrf_token": csrf}, headers={"Origin": PROXY_ORIGIN},
                  allow_redirects=False, timeout=60)  # fmt: skip
    elapsed = time.perf_counter() - started
    assert resp.status_code == 401
    return elapsed


def test_unknown_and_disabled_users_cost_as_much_as_wrong_passwords(proxied, new_user, demo_engine):
    known = [new_user() for _ in range(3)]
    disabled = new_user()
    with demo_engine.begin() as conn:
        accounts.set_active(conn, disabled, False)
    timed_failure(proxied, "warm-up", "10.3.9.9")
    times = {"known": [], "unknown": [], "disabled": []}
    for i in range(3):  # interleaved, at most 3 failures per account: no delay yet
        for j, name in enumerate(known):
            times["known"].append(timed_failure(proxied, name, f"10.3.{i}.{j}"))
            times["unknown"].append(
                timed_failure(proxied, f"nobody_{uuid.uuid4().hex[:6]}", f"10.4.{i}.{j}")
            )
        times["disabled"].append(timed_failure(proxied, disabled, f"10.5.{i}.0"))
    base = statistics.median(times["known"])
    for kind in ("unknown", "disabled"):
        ratio = statistics.median(times[kind]) / base
        assert 0.5 <= ratio <= 2.0, (kind, times)


# --- 5. public paths have a boundary ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/loginfoo", "/login/x", "/login.json", "/logoutx",
                                  "/logout/x", "/_favicon.ico/x", "/_favicon.icox"])  # fmt: skip
def test_public_paths_match_exactly(live_server, path):
    resp = requests.get(live_server + path, allow_redirects=False, timeout=30)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")


def test_dot_segments_do_not_make_a_path_public(live_server):
    host = urlsplit(live_server)
    for path, status in (
        ("/login/../x", 302),
        ("/login/../api/me", 302),
        ("/assets/style.css", 200),
    ):
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        conn.request("GET", path)  # sent as is: requests would remove the dot segments
        assert conn.getresponse().status == status, path
        conn.close()


# --- 6. kiosk tokens stay out of URLs --------------------------------------------------------


def test_kiosk_token_in_the_query_is_refused_and_not_logged(live_server, role_tokens):
    token = role_tokens["kiosk"]
    s = requests.Session()
    resp = s.get(f"{live_server}/login/token?t={token}", allow_redirects=False, timeout=30)
    assert resp.status_code == 400 and "#t=" in resp.text
    assert me(s, live_server) == 401
    log = ARTIFACTS / "server.log"
    deadline = time.monotonic() + 5
    while "/login/token?t=" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the access log line follows the response
    assert "/login/token?t=" in log.read_text() and token not in log.read_text()


def test_kiosk_signs_in_by_posting_its_token(live_server, role_tokens):
    s = requests.Session()
    page = s.get(live_server + "/login/token", timeout=30)
    assert page.status_code == 200 and "/assets/kiosk_login.js" in page.text
    csrf = form_value(page.text, "csrf_token")
    assert csrf

    def post(token: str, csrf_token: str | None = csrf, origin: str = live_server):
        data = {"t": token, **({"csrf_token": csrf_token} if csrf_token else {})}
        return s.post(live_server + "/login/token", data=data, headers={"Origin": origin},
                      allow_redirects=False, timeout=30)  # fmt: skip

    assert post(role_tokens["admin"]).status_code == 401  # only kiosk tokens open a screen
    assert post(role_tokens["kiosk"], None).status_code == 400
    assert post(role_tokens["kiosk"], origin="http://evil.example").status_code == 400
    assert me(s, live_server) == 401
    ok = post(role_tokens["kiosk"])
    assert ok.status_code == 302 and ok.headers["Location"] == "/bigscreen"  # the screen itself
    assert s.get(live_server + "/api/me", timeout=30).json()["role"] == "kiosk"


# --- 7. CSRF: a token is required, the public origin, sign-out by POST -----------------------


def test_login_needs_a_csrf_token(live_server):
    for data in ({}, {"csrf_token": ""}):
        fresh = requests.Session()  # no form fetched: no token in the session either
        resp = fresh.post(live_server + "/login", headers={"Origin": live_server},
                          data={"username": "t_admin", "password": TEST_PASSWORD, **data},
                          allow_redirects=False, timeout=30)  # fmt: skip
        assert resp.status_code == 400
        assert me(fresh, live_server) == 401


def test_only_the_public_origin_counts_as_same_origin(proxied):
    forwarded = {"X-Forwarded-For": "10.6.0.1"}
    assert login(proxied, "t_admin", headers=forwarded).status_code == 400  # Origin = Host
    spoofed = requests.Session()
    csrf = form_value(spoofed.get(proxied + "/login", timeout=30).text, "csrf_token")
    resp = spoofed.post(proxied + "/login", data={"username": "t_admin", "password": TEST_PASSWORD,
                        "csrf_token": csrf}, headers={"Host": "evil.example", "Origin":
                        "http://evil.example", "X-Forwarded-For": "10.6.0.1"},
                        allow_redirects=False, timeout=30)  # fmt: skip
    assert resp.status_code == 400
    s = requests.Session()
    assert login(proxied, "t_admin", s=s, origin=PROXY_ORIGIN,
                 headers=via_proxy("10.6.0.1")).status_code == 302  # fmt: skip
    cookie = {"Cookie": f"session={s.cookies['session']}"}  # sent to the server's own host
    assert requests.get(proxied + "/api/me", headers=cookie, timeout=30).status_code == 200
    cross = requests.post(proxied + "/_dash-update-component", json={},
                          headers={**cookie, "Origin": proxied}, timeout=30)  # fmt: skip
    assert cross.status_code == 403  # Origin equal to Host is not the public origin


def components(node):
    """Every component in a Dash layout (JSON), depth first."""
    if isinstance(node, list):
        for item in node:
            yield from components(item)
    elif isinstance(node, dict) and "props" in node:
        yield node
        yield from components(node["props"].get("children"))


def test_header_signs_out_with_a_csrf_form(live_server):
    s = requests.Session()
    assert login(live_server, "t_planner", s=s).status_code == 302
    layout = s.get(live_server + "/_dash-layout", headers={"Referer": live_server + "/"},
                   timeout=60).json()  # fmt: skip
    csrf = form_value(s.get(live_server + "/logout", timeout=30).text, "csrf_token")
    forms = [c for c in components(layout) if c["type"] == "Form"]
    assert [(f["props"]["action"], f["props"]["method"]) for f in forms] == [("/logout", "post")]
    fields = {c["props"].get("name"): c["props"].get("value") for c in components(forms[0])}
    assert csrf and fields["csrf_token"] == csrf


@pytest.mark.browser
def test_kiosk_screen_and_sign_out_in_the_browser(live_server, role_tokens, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("ONEMAP_CHROMIUM", "/usr/bin/chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"]:
        options.add_argument(flag)
    driver_path = os.environ.get("ONEMAP_CHROMEDRIVER", "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(f"{live_server}/login/token#t={role_tokens['kiosk']}")
        wait = WebDriverWait(driver, 40)
        wait.until(lambda d: urlsplit(d.current_url).path == "/bigscreen")  # the screen's home
        driver.get(live_server + "/")
        wait.until(lambda d: "大屏" in d.find_element(By.ID, "user-name").text)
        assert role_tokens["kiosk"] not in driver.current_url
        driver.find_element(By.CSS_SELECTOR, ".user-box button[type=submit]").click()
        wait.until(lambda d: urlsplit(d.current_url).path == "/login")
        # A callback still in flight may hand the old cookie back; the other worker may trust its
        # cached lookup for ONEMAP_AUTH_CACHE_SECONDS (5 s). After that the session is gone.
        time.sleep(6)
        driver.get(live_server + "/")
        assert urlsplit(driver.current_url).path == "/login"
    finally:
        driver.quit()
