"""The big screen (/bigscreen) in real headless Chromium: sizes, refresh, outage, rotation, pin."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import text

from settings import PROJECT_ROOT
from tests.conftest import save_artifact, sign_in
from tests.test_chart_bundle import bundle_traces
from tests.test_map_page import errors

pytestmark = pytest.mark.browser

# Every block of the screen: none may reach outside the viewport.
BLOCKS = ".bs-header, .bs-main, .bs-left, .bs-centre, .bs-right, .bs-kpi, .bs-chart, .bs-feed-box"
OUTSIDE = """
const w = window.innerWidth, h = window.innerHeight, out = [];
document.querySelectorAll(arguments[0]).forEach(function (el) {
  const r = el.getBoundingClientRect();
  if (r.left < -0.5 || r.top < -0.5 || r.right > w + 0.5 || r.bottom > h + 0.5) {
    out.push((el.id || el.className) + ' ' + [r.left, r.top, r.right, r.bottom].join(','));
  }
});
return {out: out, scrollW: document.documentElement.scrollWidth, scrollH:
        document.documentElement.scrollHeight, w: w, h: h};
"""


def viewport(browser, width: int, height: int) -> None:
    """Make the page's viewport exactly width × height CSS pixels."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip


def open_screen(browser, base: str, query: str = "") -> WebDriverWait:
    """Open the big screen; wait for its KPI cards and its map."""
    browser.get(f"{base}/bigscreen{query}")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".bs-kpi"))
    wait.until(lambda d: d.execute_script(
        "return !!(window.onemap && window.onemap.layers && window.onemap.layers.status().attached)"))  # fmt: skip
    return wait


def shown(browser, kpi: str) -> str:
    """The value a KPI card shows."""
    return browser.execute_script(  # one read in the page: the cards re-render while we look
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
        f"#bs-kpi-{kpi} .bs-kpi-value")  # fmt: skip


def current_view(browser) -> str:
    """The title of the lit view."""
    return browser.execute_script(  # one read in the page: the tabs re-render on rotation
        "const e = document.querySelector('.bs-view.bs-current'); return e ? e.textContent : '';"
    )


@pytest.fixture
def kiosk(browser, live_server):
    """The browser signed in as the kiosk; the admin again and the usual viewport afterwards."""
    sign_in(browser, live_server, "t_kiosk")
    yield browser
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    sign_in(browser, live_server, "t_admin")
    browser.get_log("browser")  # the next test reads only its own console (an outage logs 503s)


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160)])
def test_fills_the_screen_without_scroll_bars(kiosk, live_server, size):
    viewport(kiosk, *size)
    wait = open_screen(kiosk, live_server, "?rotate=3600")
    errors(kiosk)
    wait.until(lambda d: "更新于" in d.find_element(By.ID, "bs-updated").text)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bs-chart-0 .main-svg"))
    # drawn by the partial plotly bundle the app serves, not Dash's full one
    traces = kiosk.execute_script("return Object.keys(Plotly.PlotSchema.get().traces)")
    assert set(traces) == bundle_traces()
    found = kiosk.execute_script(OUTSIDE, BLOCKS)
    assert (found["w"], found["h"]) == size
    assert found["out"] == []
    assert (found["scrollW"], found["scrollH"]) == size  # nothing to scroll to
    assert len(kiosk.find_elements(By.CSS_SELECTOR, ".bs-kpi")) == 8
    # type grows with the screen: the KPI value is twice as large on the 4K screen
    px = float(kiosk.execute_script(
        "return getComputedStyle(document.querySelector('.bs-kpi-value')).fontSize").rstrip("px"))  # fmt: skip
    assert px == pytest.approx(36.8 * size[0] / 1920, rel=0.02)
    time.sleep(2)  # tiles painted for the screenshot
    save_artifact(kiosk, f"bigscreen_{size[0]}")
    assert errors(kiosk) == []


def test_a_view_with_fewer_charts_leaves_the_spare_panel_empty(kiosk, live_server):
    viewport(kiosk, 1920, 1080)
    wait = open_screen(kiosk, live_server, "?view=parking&rotate=3600")  # two charts of three
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bs-chart-1 .main-svg"))
    assert kiosk.find_elements(By.CSS_SELECTOR, "#bs-chart-2 *") == []  # no empty plot drawn
    panel = (
        "return getComputedStyle(document.getElementById('bs-chart-2').parentElement).visibility"
    )
    assert kiosk.execute_script(panel) == "hidden"
    assert errors(kiosk) == []


def test_the_kiosk_sees_no_restricted_layer(kiosk, live_server):
    viewport(kiosk, 1920, 1080)
    wait = open_screen(kiosk, live_server, "?view=video&rotate=3600")
    assert current_view(kiosk) == "视频"
    wait.until(lambda d: "alarm" in d.execute_script("return window.onemap.layers.status().layers"))
    layers = kiosk.execute_script("return window.onemap.layers.status().layers")
    assert "camera" not in layers  # the video view lists it; the kiosk may not see it
    requested = kiosk.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('/tiles/camera/'))")  # fmt: skip
    assert requested == []


def test_a_new_case_and_alarm_arrive_within_one_refresh(kiosk, live_server, demo_engine):
    viewport(kiosk, 1920, 1080)
    wait = open_screen(kiosk, live_server, "?refresh=3&rotate=3600")
    wait.until(lambda d: "更新于" in d.find_element(By.ID, "bs-updated").text)
    before = int(shown(kiosk, "cases_new").replace(",", ""))
    with demo_engine.begin() as conn:
        case_id = conn.execute(text(
            "INSERT INTO case_record (code, kind, event_class_code, source, status, reported_at,"
            " registered_at, geom) SELECT 'AJ-BIGSCREEN-1', '事件', '0102', '公众举报', '已立案',"
            " now(), now(), geom FROM case_record ORDER BY id LIMIT 1 RETURNING id")).scalar()  # fmt: skip
        sensor = conn.execute(text("SELECT id FROM sensor ORDER BY id LIMIT 1")).scalar()
        alarm_id = conn.execute(text(
            "INSERT INTO alarm (sensor_id, raised_at, level, message) VALUES "
            "(:s, now(), '紧急', '大屏测试告警') RETURNING id"), {"s": sensor}).scalar()  # fmt: skip
    try:
        quick = WebDriverWait(kiosk, 3 + 6)  # one refresh interval, plus the callback's own time
        quick.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'li[data-key="case-{case_id}"]'))
        quick.until(lambda d: shown(d, "cases_new").replace(",", "") == str(before + 1))
        item = kiosk.find_element(By.CSS_SELECTOR, f'li[data-key="alarm-{alarm_id}"]')
        assert "bs-new" in item.get_attribute("class")  # highlighted on arrival
        first = kiosk.find_element(By.CSS_SELECTOR, "#bs-feed li").get_attribute("data-key")
        assert first in (f"case-{case_id}", f"alarm-{alarm_id}")  # newest first
        # the map flies to the new alarm by itself, and back after a few seconds
        WebDriverWait(kiosk, 10).until(lambda d: d.execute_script(
            "return window.onemap.bigscreen.status().last") == f"alarm-{alarm_id}")  # fmt: skip
        WebDriverWait(kiosk, 10).until(
            lambda d: d.execute_script("return window.onemap.layers.map().getZoom()") == 16
        )
        WebDriverWait(kiosk, 20).until(
            lambda d: not d.execute_script("return window.onemap.bigscreen.status().flying")
        )
        assert kiosk.execute_script("return window.onemap.layers.map().getZoom()") < 16
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("DELETE FROM alarm WHERE id = :a"), {"a": alarm_id})
            conn.execute(text("DELETE FROM case_record WHERE id = :c"), {"c": case_id})


def choose(browser, label: str) -> None:
    """Pick an option of the one-map page's big-screen control."""
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "bs-pin-select")).click()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const o = [...document.querySelectorAll('[role=option]')]"
        ".find(e => e.textContent.trim() === arguments[0]); if (o) { o.click(); } return !!o;", label))  # fmt: skip


def test_rotation_advances_and_a_pin_holds_it(browser, live_server, demo_engine):
    from auth import accounts
    from tests.conftest import TEST_PASSWORD

    with demo_engine.begin() as conn:  # t_operator's sign-in is throttled by tests/test_access.py
        if not conn.execute(text("SELECT 1 FROM app_user WHERE username = 'bs_operator'")).first():
            accounts.add_user(conn, "bs_operator", "operator", TEST_PASSWORD)
    sign_in(browser, live_server, "bs_operator")
    try:
        browser.get(live_server + "/")
        WebDriverWait(browser, 40).until(lambda d: d.find_elements(By.ID, "bs-pin-select"))
        choose(browser, "大屏固定：停车")
        WebDriverWait(browser, 20).until(
            lambda d: d.find_element(By.ID, "bs-pin-status").text == "大屏已固定"
        )
        viewport(browser, 1920, 1080)
        open_screen(browser, live_server, "?refresh=2&rotate=5")
        WebDriverWait(browser, 20).until(lambda d: current_view(d) == "停车（固定）")
        time.sleep(7)  # a rotation tick passes: the pin holds
        assert current_view(browser) == "停车（固定）"
        browser.get(live_server + "/")
        WebDriverWait(browser, 40).until(lambda d: d.find_elements(By.ID, "bs-pin-select"))
        choose(browser, "大屏：轮播")
        WebDriverWait(browser, 20).until(
            lambda d: d.find_element(By.ID, "bs-pin-status").text == "大屏已恢复轮播"
        )
        open_screen(browser, live_server, "?refresh=60&rotate=5")
        seen = {current_view(browser)}
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: seen | {current_view(d)} != seen)  # the next view, by itself
        layers = browser.execute_script("return Object.keys(window.onemap.layers.status().layers)")
        assert "district" in layers and "road" in layers  # the offline basemap stays
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        sign_in(browser, live_server, "t_admin")
        browser.get_log("browser")


def banner_text(browser) -> str:
    """The text of the delay banner on show (the server's or the browser watchdog's), or ''."""
    return browser.execute_script(
        "const b = [...document.querySelectorAll('.bs-banner')].find(e => e.offsetParent);"
        "return b ? b.textContent : '';")  # fmt: skip


def local_cluster() -> bool:
    """Whether the tests run on the project-local PostgreSQL (which a test may stop)."""
    return not (os.environ.get("DATABASE_URL") or os.environ.get("ONEMAP_TEST_DATABASE_URL"))


@pytest.mark.disruptive  # run last (tests/conftest.py): it stops the database everyone uses
@pytest.mark.skipif(not local_cluster(), reason="stops the database: only on the local cluster")
def test_database_outage_shows_the_delay_banner_and_recovers(kiosk, live_server):
    viewport(kiosk, 1920, 1080)
    wait = open_screen(kiosk, live_server, "?refresh=3&rotate=3600")
    wait.until(lambda d: "更新于" in d.find_element(By.ID, "bs-updated").text)
    figures = shown(kiosk, "cases_new")
    localdb = ["bash", str(PROJECT_ROOT / "scripts" / "localdb.sh")]
    subprocess.run([*localdb, "stop"], check=True, capture_output=True, timeout=120)
    try:
        banner = WebDriverWait(kiosk, 30).until(banner_text)
        assert "数据延迟" in banner and "更新于" in banner  # with the last good update
        assert shown(kiosk, "cases_new") == figures  # the figures stay on the screen
        assert kiosk.find_elements(By.CSS_SELECTOR, ".bs-kpi")
        save_artifact(kiosk, "bigscreen_outage")
    finally:
        subprocess.run([*localdb, "start"], check=True, capture_output=True, timeout=180)
    back = time.monotonic()
    WebDriverWait(kiosk, 3 + 12).until(
        lambda d: not d.find_element(By.ID, "bs-banner").is_displayed()
    )
    assert time.monotonic() - back < 15
    assert shown(kiosk, "cases_new") == figures
