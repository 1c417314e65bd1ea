"""Case analytics in real headless Chromium: the heat look of the case layer and the 案件分析 tab."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.conftest import save_artifact, sign_in
from tests.test_map_page import errors, one, open_page, status

pytestmark = pytest.mark.browser


def centre(demo_engine) -> dict:
    """The centre of the demo's cases."""
    return one(demo_engine, "SELECT ST_X(c) lon, ST_Y(c) lat FROM "
                            "(SELECT ST_Centroid(ST_Extent(geom)) c FROM case_record) x")  # fmt: skip


def test_cases_are_a_heat_map_below_their_detail_zoom(live_server, browser, demo_engine):
    c = centre(demo_engine)
    wait = open_page(browser, live_server, f"?layers=case&z=13&lat={c['lat']}&lon={c['lon']}",
                     {"case"})  # fmt: skip
    errors(browser)
    wait.until(lambda d: status(d)["heat"].get("case", {}).get("points", 0) > 0)
    heat = status(browser)["heat"]["case"]
    assert heat["points"] <= 64 * 64 and heat["total"] > 0
    note = browser.find_element(By.CSS_SELECTOR, ".onemap-aggregate-note").text
    assert "案件热力" in note and "15 级" in note
    # the canvas of leaflet.heat is painted; no count-dot tiles are requested below zoom 15
    assert browser.execute_script("return document.querySelectorAll('canvas.leaflet-heatmap-layer').length") >= 1  # fmt: skip
    assert status(browser)["layers"]["case"]["tiles"] == 0
    save_artifact(browser, "case_heat")
    browser.execute_script("window.onemap.layers.map().setZoom(16)")
    wait.until(lambda d: status(d)["layers"]["case"]["tiles"] > 0)
    assert status(browser)["heat"]["case"]["points"] == 0
    # a filter the heat map expresses follows it; one it cannot (two statuses) gives the counts look
    browser.get(f"{live_server}/?layers=case&z=13&lat={c['lat']}&lon={c['lon']}"
                "&f.case.source=公众举报")  # fmt: skip
    wait.until(
        lambda d: status(d)["heat"].get("case", {}).get("params", {}).get("source") == "公众举报"
    )
    browser.get(f"{live_server}/?layers=case&z=13&lat={c['lat']}&lon={c['lon']}"
                "&f.case.status=已结案,已派遣")  # fmt: skip
    wait.until(lambda d: d.execute_script("return !!(window.onemap && window.onemap.layers && "
                                          "window.onemap.layers.status().layers.case)"))  # fmt: skip
    wait.until(lambda d: status(d)["layers"]["case"]["tiles"] > 0)
    assert status(browser)["heat"] == {}
    assert errors(browser) == []


def test_the_kiosk_keeps_the_counts_look(live_server, browser, demo_engine):
    c = centre(demo_engine)
    sign_in(browser, live_server, "t_kiosk")
    try:
        browser.get(f"{live_server}/?layers=case&z=13&lat={c['lat']}&lon={c['lon']}")
        open_page(browser, live_server, f"?layers=case&z=13&lat={c['lat']}&lon={c['lon']}",
                  {"case"}).until(lambda d: status(d)["heatRefused"])  # fmt: skip
        assert status(browser)["heat"] == {}
    finally:
        sign_in(browser, live_server, "t_admin")


def test_case_analysis_tab_runs_and_draws_hotspots(live_server, browser):
    wait = open_page(browser, live_server)
    errors(browser)
    browser.find_element(
        By.XPATH, "//div[contains(@class,'tab') and normalize-space()='案件分析']"
    ).click()
    wait.until(lambda d: d.find_element(By.ID, "ca-run").is_displayed())
    browser.find_element(By.XPATH, "//label[normalize-space()='近一年']").click()
    wait.until(lambda d: "至" in d.find_element(By.ID, "ca-range-text").text)
    browser.find_element(By.ID, "ca-run").click()
    wait.until(lambda d: d.find_elements(By.ID, "ca-hot-summary"))
    assert "个网格" in browser.find_element(By.ID, "ca-hot-summary").text
    wait.until(lambda d: d.find_elements(By.ID, "ca-emerging-summary"))
    wait.until(lambda d: d.find_elements(By.ID, "ca-recurring-summary"))
    wait.until(lambda d: d.find_elements(By.ID, "ca-kpi-table"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#ca-top-table tbody tr")
    if len(rows) > 1:  # header plus hot cells: a click zooms to the first
        before = status(browser)["zoom"]
        rows[1].find_element(By.CSS_SELECTOR, "td").click()
        wait.until(lambda d: status(d)["zoom"] != before)
    drawn = browser.execute_script(
        "let n = 0; window.onemap.layers.map().eachLayer(l => { const p = l.feature && "
        "l.feature.properties; if (p && p.hotspot_class && p.hotspot_class !== 'ns') { n++; } });"
        "return n;")  # fmt: skip
    assert drawn > 0  # the significant cells are on the map
    save_artifact(browser, "case_analysis")
    assert errors(browser) == []
