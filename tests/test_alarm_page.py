"""The 预警 tab in real headless Chromium: pulsing markers, the list, choosing an alarm."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from callbacks.alarm_panel import MAX_ALARMS
from tests.conftest import save_artifact
from tests.test_map_page import errors, one, open_page, status

pytestmark = pytest.mark.browser

PULSING = "return document.querySelectorAll('.leaflet-marker-icon.al-pulse').length"
ANIMATION = (
    "const m = document.querySelector('.leaflet-marker-icon.al-pulse');"
    "return m && getComputedStyle(m, '::after').animationName"
)


def test_alarm_tab_pulses_lists_and_links(live_server, browser, demo_engine):
    active = one(demo_engine, "SELECT count(*) n FROM alarm WHERE cleared_at IS NULL")["n"]
    assert active > 0  # the demo city has active alarms to show
    wait = open_page(browser, live_server)
    errors(browser)
    assert browser.execute_script(PULSING) == 0  # no markers before the tab is opened
    browser.find_element(
        By.XPATH, "//div[contains(@class,'tab') and normalize-space()='预警']"
    ).click()
    wait.until(lambda d: d.execute_script(PULSING) == min(active, MAX_ALARMS))
    assert browser.execute_script(ANIMATION) == "pulse"
    assert f"未解除告警 {active} 条" in browser.find_element(By.ID, "al-total").text
    wait.until(lambda d: d.find_elements(By.ID, "al-sensor-table"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#al-table tbody tr")
    assert len(rows) > 1  # header plus alarms
    before = status(browser)["zoom"]
    rows[1].find_element(By.CSS_SELECTOR, "td").click()
    wait.until(lambda d: status(d)["zoom"] == 18 != before)
    wait.until(lambda d: d.find_elements(By.ID, "al-place"))
    place = browser.find_element(By.ID, "al-place").text
    assert "单元网格" in place and "责任单位" in place
    assert browser.find_element(By.ID, "al-head").text  # the chosen alarm is named
    assert browser.find_element(By.ID, "al-close").is_enabled()  # the admin may close it
    browser.execute_script(
        "window.onemap.layers.map().setZoom(15);"
        "document.getElementById('al-linkage').scrollIntoView()"
    )  # for the picture
    wait.until(lambda d: status(d)["zoom"] == 15)
    time.sleep(1)  # the zoom animation ends
    save_artifact(browser, "alarms")
    assert errors(browser) == []
