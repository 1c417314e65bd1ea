"""The 分析 panel in real headless Chromium: run park coverage, see figures, table and gaps."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.conftest import save_artifact
from tests.test_map_page import errors, open_page

pytestmark = pytest.mark.browser


def test_park_coverage_from_the_panel(live_server, browser):
    wait = open_page(browser, live_server)
    errors(browser)
    browser.find_element(
        By.XPATH, "//div[contains(@class,'tab') and normalize-space()='分析']"
    ).click()
    wait.until(lambda d: d.find_element(By.ID, "an-run").is_displayed())
    browser.find_element(By.ID, "an-run").click()
    wait.until(lambda d: d.find_elements(By.ID, "an-figures"))
    figures = browser.find_element(By.ID, "an-figures").text
    assert "直线距离覆盖率" in figures and "步行路网覆盖率" in figures and "%" in figures
    rows = browser.find_elements(By.CSS_SELECTOR, "#an-table tbody tr")
    assert len(rows) >= 2  # header row plus at least one district
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, ".exports a")]
    assert any(h.endswith("format=geojson") for h in links) and any(
        "export.xlsx" in h for h in links
    )
    gaps = browser.execute_script(
        "return document.querySelectorAll('.leaflet-overlay-pane path, .leaflet-overlay-pane canvas').length")  # fmt: skip
    assert gaps > 0
    save_artifact(browser, "analysis")
    assert errors(browser) == []
