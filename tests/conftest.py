"""Fixtures: a fresh, migrated PostGIS database per test session, the real server, real Chromium."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from auth import accounts
from auth.roles import ROLES
from bench.common import CHROMIUM_FLAGS
from geodata.db import make_engine, migrate
from loaders import demo
from loaders.boundaries import load_shandong
from settings import PROJECT_ROOT, Settings

ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    """Tests marked `disruptive` (they stop the database server) run after all the others."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


def server_url() -> str:
    """The configured database server (DATABASE_URL or the project-local cluster)."""
    return os.environ.get("ONEMAP_TEST_DATABASE_URL") or Settings().sqlalchemy_url()


class ScratchDatabases:
    """Creates and drops throw-away databases on the configured server."""

    def __init__(self, base_url: str):
        self.base = make_url(base_url)
        # pre-ping: a test may stop and restart the server (the big screen's outage test)
        self.admin = create_engine(
            self.base.set(database="postgres"), isolation_level="AUTOCOMMIT", pool_pre_ping=True
        )
        self.created: list[str] = []

    def create(self, prefix: str = "onemap_test") -> str:
        """Create an empty database and return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.base.set(database=name).render_as_string(hide_password=False)

    def create_city(self, prefix: str = "onemap_test", demo_scale: str | None = None) -> str:
        """A new database, migrated, with the Shandong boundaries and optionally a demo city."""
        url = self.create(prefix)
        engine = make_engine(url)
        migrate(engine)
        with engine.begin() as conn:
            load_shandong(conn)
            if demo_scale:
                demo.generate(conn, demo_scale, 1, log=lambda _m: None)
        engine.dispose()
        return url

    def drop_all(self) -> None:
        """Drop every database this object created."""
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def scratch():
    """Factory of empty databases, all dropped at the end of the session."""
    dbs = ScratchDatabases(server_url())
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def database_url(scratch) -> str:
    """URL of the session's database: migrated and loaded with the Shandong boundaries."""
    return scratch.create_city()


@pytest.fixture(scope="session")
def demo_database_url(scratch) -> str:
    """URL of a second session database holding the small demo city (seed 1)."""
    return scratch.create_city("onemap_demo", demo_scale="small")


@pytest.fixture(scope="session")
def demo_engine(demo_database_url):
    """Engine on the demo-city database."""
    eng = make_engine(demo_database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def engine(database_url):
    """Engine on the session database."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def settings(database_url) -> Settings:
    """Settings pointing at the session database."""
    return Settings(DATABASE_URL=database_url)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """XYZ tile containing a lon/lat point (standard web-mercator formula)."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A session shared by the HTTP tests; the live_server fixture signs it in with an admin token.
http = requests.Session()
TEST_PASSWORD = "test-" + uuid.uuid4().hex[:16]


@pytest.fixture(scope="session")
def role_tokens(demo_database_url) -> dict[str, str]:
    """One user per role in the demo database (password TEST_PASSWORD) and an API token each."""
    engine = make_engine(demo_database_url)
    tokens = {}
    with engine.begin() as conn:
        street = conn.execute(text(
            "SELECT code FROM admin_area WHERE level = 'street' ORDER BY code LIMIT 1")).scalar()  # fmt: skip
        for role in ROLES:
            name = f"t_{role}"
            areas = [street] if role == "district" else []
            accounts.add_user(conn, name, role, TEST_PASSWORD, areas=areas)
            tokens[role] = accounts.create_token(conn, name, "tests", 1)[1]
    engine.dispose()
    return tokens


@pytest.fixture(scope="session")
def live_server(demo_database_url, role_tokens):
    """The real server (`python app.py`, gunicorn) on the demo city; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": demo_database_url, "ONEMAP_PORT": str(port),
           "ONEMAP_HOST": "127.0.0.1", "ONEMAP_DEBUG": "false"}  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_for(base, proc)
    http.headers["Authorization"] = f"Bearer {role_tokens['admin']}"
    yield base
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def area_shape(conn, code: str):
    """The shapely geometry of an administrative area (区县/街道/社区) as stored."""
    wkb = conn.execute(text("SELECT ST_AsBinary(geom) FROM admin_area WHERE code = :c"),
                       {"c": code}).scalar()  # fmt: skip
    return shapely.from_wkb(bytes(wkb))


def wait_until(what: str, check, proc: subprocess.Popen | None = None, timeout: float = 120):
    """Poll check() until it returns something truthy; fail (not skip) after timeout, or as soon
    as `proc` (a process the check waits on) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended before {what}:\n{out}{err}")
        time.sleep(0.05)
    if proc is not None:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{what} not seen within {timeout} s:\n{out}{err}")
    raise AssertionError(f"{what} not seen within {timeout} s")


def wait_for(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Block until the server answers, or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((ARTIFACTS / "server.log").read_text())
        try:
            if requests.get(base + "/login", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise TimeoutError(f"server at {base} did not start")


@pytest.fixture(scope="session")
def browser(tmp_path_factory, live_server):
    """Debian's headless Chromium through chromedriver, signed in as the test admin."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("ONEMAP_CHROMIUM", "/usr/bin/chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = os.environ.get("ONEMAP_CHROMEDRIVER", "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    sign_in(driver, live_server, "t_admin")
    yield driver
    driver.quit()


def sign_in(driver, base: str, username: str, password: str = TEST_PASSWORD) -> None:
    """Sign in through the real login form (as a new visitor: the cookies are dropped first).

    A page left behind (the big screen's timers) may have a request in flight whose answer hands
    the old session cookie back after the drop, which spoils the form's CSRF token: the form is
    then filled again, up to three times."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get("about:blank")
    for attempt in range(3):
        driver.get(base + "/login")
        driver.delete_all_cookies()  # the cookies of the app's origin: only from one of its pages
        driver.get(base + "/login")
        driver.find_element(By.ID, "username").send_keys(username)
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.ID, "login-submit").click()
        # the form posts in the background: wait for the redirect away from /login, or the next
        # navigation may cancel the post and leave the previous session signed in
        try:
            WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url.split("?")[0])
            return
        except Exception:
            if attempt == 2:
                raise


def save_artifact(driver, name: str) -> Path:
    """Save a screenshot under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


# --- handler tier: the Flask app in-process ------------------------------------------------


@pytest.fixture(scope="session")
def dash_app(demo_database_url):
    """A freshly built app on the demo database."""
    from app import create_app  # importing app builds its module-level app: only when needed

    return create_app(Settings(DATABASE_URL=demo_database_url))


@pytest.fixture(scope="session")
def client(dash_app):
    """A test client of the app; callbacks find their registered output keys on it."""
    test_client = dash_app.server.test_client()
    test_client.callback_keys = list(dash_app.callback_map)
    return test_client


def auth(tokens: dict, role: str) -> dict:
    """Headers of a request made with the role's API token."""
    return {"Authorization": f"Bearer {tokens[role]}"}


def district_token(engine, street: str) -> str:
    """An API token of a district user limited to one street."""
    with engine.begin() as conn:
        name = f"d_{street}"
        if (
            conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"), {"u": name}).first()
            is None
        ):
            accounts.add_user(conn, name, "district", "district-pass-1", areas=[street])
        return accounts.create_token(conn, name, "tests", 1)[1]
