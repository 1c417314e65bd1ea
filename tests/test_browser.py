"""The page in real headless Chromium: the map and the named district polygons, no console errors."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from callbacks.map_page import DISTRICT_STYLE
from tests.conftest import save_artifact
from tests.test_map_page import painted

pytestmark = pytest.mark.browser


def severe_console_entries(driver) -> list[dict]:
    """Console messages of level SEVERE (errors) since the last call."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_map_page_shows_districts(live_server, browser):
    browser.get(live_server + "/")
    wait = WebDriverWait(browser, 30)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#onemap-map.leaflet-container")))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".area-label")) >= 136)
    labels = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".area-label")}
    assert {"历下区", "市中区", "历城区"} <= labels
    # the outlines themselves are drawn, in their colour, on the map's canvas renderer
    outlines = "[...document.querySelectorAll('.leaflet-overlay-pane > canvas')]"
    assert painted(browser, outlines, DISTRICT_STYLE["color"]) > 100
    assert "城管一张图" in browser.title
    save_artifact(browser, "map_page")
    assert severe_console_entries(browser) == []


def test_area_names_are_text_not_markup(live_server, browser):
    browser.get(live_server + "/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.execute_script(
        "return !!(window.onemap && window.onemap.layers && window.onemap.layers.map())"))  # fmt: skip
    name = "<img src=x onerror=window.__xss=1>"
    label = browser.execute_script("""
        const map = window.onemap.layers.map();
        const c = map.getCenter();
        const area = L.polygon([[c.lat, c.lng], [c.lat + 0.01, c.lng], [c.lat, c.lng + 0.01]]);
        area.addTo(map);
        window.onemap.map.bindAreaLabel({properties: {name: arguments[0]}}, area);
        const el = area.getTooltip().getElement();
        window.__xssArea = area;
        return {text: el.textContent, elements: el.querySelectorAll('*').length};""",
        name)  # fmt: skip
    time.sleep(1.0)  # a broken image would have fired its onerror by now
    try:
        assert label == {"text": name, "elements": 0}
        assert browser.execute_script("return window.__xss") is None
    finally:
        browser.execute_script("window.__xssArea.remove()")
