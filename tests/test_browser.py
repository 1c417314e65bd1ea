"""The page in real headless Chromium: the map and the named district polygons, no console errors."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import save_artifact

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
    # the polygons themselves are drawn on the canvas renderer
    assert browser.find_elements(By.CSS_SELECTOR, ".leaflet-overlay-pane canvas")
    assert "城管一张图" in browser.title
    save_artifact(browser, "map_page")
    assert severe_console_entries(browser) == []
