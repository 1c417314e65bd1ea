"""The 停车分析 tab in real headless Chromium: run, the heat canvas is painted, the slider steps,
play advances, a picked point on the map lists the nearby lots with free spaces."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.conftest import save_artifact
from tests.test_map_page import errors, one, open_page

pytestmark = pytest.mark.browser

PAINTED = """
const cv = document.querySelector('canvas.leaflet-heatmap-layer');
if (!cv || !cv.width) { return 0; }
const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
let n = 0;
for (let i = 3; i < px.length; i += 4) { if (px[i] > 40) { n++; } }
return n;
"""


def parking(browser) -> dict:
    """What the parking asset reports (heat points, draws, pick state)."""
    return browser.execute_script("return window.onemap.parking.status()")


def caption(browser) -> str:
    """The moment's caption under the slider."""
    return browser.find_element(By.ID, "pk-moment-text").text


def test_parking_tab_heat_slider_play_and_nearest(live_server, browser, demo_engine):
    wait = open_page(browser, live_server)
    errors(browser)
    browser.find_element(
        By.XPATH, "//div[contains(@class,'tab') and normalize-space()='停车分析']"
    ).click()
    wait.until(lambda d: d.find_element(By.ID, "pk-run").is_displayed())
    wait.until(lambda d: "202" in d.execute_script(
        "const e = document.getElementById('pk-day'); return e ? e.outerHTML : '';"))  # fmt: skip
    browser.find_element(By.ID, "pk-run").click()
    wait.until(lambda d: d.find_elements(By.ID, "pk-summary-text"))
    assert "个停车场" in browser.find_element(By.ID, "pk-summary-text").text
    wait.until(lambda d: parking(d)["points"] > 0 and parking(d)["onMap"])
    assert "08:00" in caption(browser)
    # fit the map to the heat, then its canvas (one layer, updated in place) is painted
    browser.execute_script(
        "const m = window.onemap.layers.map(), h = window.onemap.parking.heatLayer();"
        "m.fitBounds(L.latLngBounds(h._latlngs.map(p => [p[0], p[1]])), {animate: false});"
    )
    wait.until(lambda d: d.execute_script(PAINTED) > 500)
    assert browser.execute_script(
        "return document.querySelectorAll('canvas.leaflet-heatmap-layer').length") == 1  # fmt: skip
    drawn_lots = browser.execute_script(
        "let n = 0; window.onemap.layers.map().eachLayer(l => { const p = l.feature && "
        "l.feature.properties; if (p && p.capacity && p.colours) { n++; } }); return n;")  # fmt: skip
    assert drawn_lots > 0
    # the slider steps: one key press, the next hour, drawn without a request to the server
    draws = parking(browser)["draws"]
    browser.find_element(By.CSS_SELECTOR, "#pk-moment [role=slider]").send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda d: "09:00" in caption(d))
    wait.until(lambda d: parking(d)["draws"] > draws)
    # play advances by itself; pause stops it
    browser.find_element(By.ID, "pk-play").click()
    wait.until(lambda d: "11:00" in caption(d))
    browser.find_element(By.ID, "pk-play").click()
    assert "播放" in browser.find_element(By.ID, "pk-play").text
    # where can I park: arm the pick, click next to a lot; the answer stays in this tab
    lot = one(demo_engine, "SELECT ST_X(geom) lon, ST_Y(geom) lat FROM parking_lot ORDER BY code LIMIT 1")  # fmt: skip
    browser.execute_script(
        "window.onemap.layers.map().setView([arguments[0], arguments[1]], 16, {animate: false})",
        lot["lat"], lot["lon"])  # fmt: skip
    browser.find_element(By.ID, "pk-pick").click()
    wait.until(lambda d: parking(d)["picking"])
    ActionChains(browser).move_to_element_with_offset(  # 20 px right of the lot (the centre)
        browser.find_element(By.ID, "onemap-map"), 20, 10).click().perform()  # fmt: skip
    wait.until(lambda d: d.find_elements(By.ID, "pk-nearest-note"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#pk-nearest-table tbody tr")
    assert len(rows) > 1  # header and lots
    assert any(m in rows[1].text for m in ("步行", "直线"))
    note = browser.find_element(By.ID, "pk-nearest-note").text
    assert "距离" in note or "附近" in note
    tab = browser.find_element(By.XPATH, "//div[contains(@class,'tab--selected')]")
    assert tab.text == "停车分析"  # the side panel's own map click did not take over
    assert parking(browser)["picks"] == 1 and not parking(browser)["picking"]
    browser.execute_script("document.getElementById('pk-pick').scrollIntoView()")
    save_artifact(browser, "parking")
    assert errors(browser) == []
