"""The one-map page in real headless Chromium: layers, archive, search, area focus, shared URLs."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import text

from callbacks.layer_tree import DEFAULT_ON
from layers.registry import REGISTRY
from layers.sql import render_tile
from tests.conftest import save_artifact, tile_of

pytestmark = pytest.mark.browser


def open_page(browser, base: str, query: str = "", expect: set[str] | None = None) -> WebDriverWait:
    """Load the page; wait until the map is attached and shows the layers the URL asks for."""
    browser.get(f"{base}/{query}")
    wait = WebDriverWait(browser, 40)
    wait.until(lambda d: d.execute_script(
        "return !!(window.onemap && window.onemap.layers && window.onemap.layers.status().attached)"))  # fmt: skip
    wanted = expect if expect is not None else set(DEFAULT_ON)
    wait.until(lambda d: set(status(d)["layers"]) == wanted)
    browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    return wait


def status(browser) -> dict:
    """What the vector-tile manager currently shows."""
    return browser.execute_script("return window.onemap.layers.status()")


def tile_responses(browser, layer: str) -> list[str]:
    """URLs of tile requests of a layer that the browser completed."""
    return browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('/tiles/' + arguments[0] + '/'))", layer)  # fmt: skip


def errors(browser) -> list[dict]:
    """Console errors since the last call."""
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


PAINTED_JS = """
const rgb = arguments[1].match(/[0-9a-f]{2}/gi).map(h => parseInt(h, 16));
let n = 0;
for (const cv of arguments[0]) {
  if (!cv || !cv.getContext || !cv.width) { continue; }
  const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] > 50 && Math.abs(px[i] - rgb[0]) < 48 && Math.abs(px[i + 1] - rgb[1]) < 48
        && Math.abs(px[i + 2] - rgb[2]) < 48) { n++; }
  }
}
return n;"""


def painted(browser, canvases: str, colour: str) -> int:
    """Pixels of about `colour` (#rrggbb, not transparent) on the canvases a JS expression gives."""
    return browser.execute_script(
        f"return (function () {{ {PAINTED_JS} }})({canvases}, arguments[0]);", colour
    )


def one(engine, sql: str):
    """First row of a query."""
    with engine.connect() as conn:
        return conn.execute(text(sql)).mappings().first()


def test_turning_a_layer_on_loads_its_tiles(live_server, browser, demo_engine):
    c = one(demo_engine, "SELECT ST_X(c) lon, ST_Y(c) lat FROM "
                         "(SELECT ST_Centroid(ST_Extent(geom)) c FROM unit_grid) x")  # fmt: skip
    wait = open_page(
        browser, live_server, f"?layers=road&z=16&lat={c['lat']}&lon={c['lon']}", {"road"}
    )
    assert "unit_grid" not in status(browser)["layers"]
    box = browser.find_element(By.CSS_SELECTOR, '[id*="unit_grid"][id*="layer-on"] input')
    box.click()
    wait.until(lambda d: status(d)["layers"].get("unit_grid", {}).get("tiles", 0) > 0)
    wait.until(lambda d: len(tile_responses(d, "unit_grid")) > 0)
    # the grid's own tile canvases show its outline colour (the road tiles do not count)
    grid = "window.onemap.layers.canvases('unit_grid')"
    colour = REGISTRY["unit_grid"].style.color
    wait.until(lambda d: painted(d, grid, colour) > 50)
    legend = browser.find_element(By.CSS_SELECTOR, '[id*="unit_grid"][id*="layer-on"]')
    assert "单元网格" in legend.text
    save_artifact(browser, "layer_on")
    assert errors(browser) == []


STUB_TILE_JS = """
const [path, b64] = arguments;
const bytes = Uint8Array.from(atob(b64), ch => ch.charCodeAt(0));
const real = window.__realFetch = window.__realFetch || window.fetch;
window.fetch = function (url) {
  if (String(url).includes(path)) {
    return Promise.resolve(new Response(bytes, {
      status: 200, headers: {'Content-Type': 'application/vnd.mapbox-vector-tile'}}));
  }
  return real.apply(this, arguments);
};"""


def test_an_aggregated_detail_tile_is_noted_on_the_map(live_server, browser, demo_engine):
    c = one(demo_engine, "SELECT ST_X(c) lon, ST_Y(c) lat FROM "
                         "(SELECT ST_Centroid(ST_Extent(geom)) c FROM unit_grid) x")  # fmt: skip
    layer = REGISTRY["component_01"]
    z = layer.detail_zoom
    x, y = tile_of(c["lon"], c["lat"], z)
    with demo_engine.connect() as conn:  # what the server sends for a tile over the cap
        capped = render_tile(conn, layer, z, x, y, [], cap=10)
    wait = open_page(browser, live_server,
                     f"?layers=component_01&z={z - 1}&lat={c['lat']}&lon={c['lon']}",
                     {"component_01"})  # fmt: skip
    browser.execute_script(STUB_TILE_JS, f"/tiles/component_01/{z}/{x}/{y}.pbf",
                           base64.b64encode(capped).decode())  # fmt: skip
    try:
        wait.until(lambda d: status(d)["layers"]["component_01"]["tiles"] > 0)
        assert status(browser)["aggregated"] == []  # the counts below the detail zoom are normal
        browser.execute_script("window.onemap.layers.map().setZoom(arguments[0])", z)
        wait.until(lambda d: status(d)["aggregated"] == ["component_01"])
        note = browser.find_element(By.CSS_SELECTOR, ".onemap-aggregate-note")
        assert note.is_displayed() and layer.title in note.text and "数量" in note.text
        assert "onemap-aggregated" in browser.find_element(By.ID, "onemap-map").get_attribute(
            "class"
        )
        save_artifact(browser, "aggregated_tile")
        browser.execute_script("window.onemap.layers.map().setZoom(arguments[0])", z + 1)
        wait.until(lambda d: status(d)["aggregated"] == [] and not note.is_displayed())
    finally:
        browser.execute_script("if (window.__realFetch) { window.fetch = window.__realFetch; }")
    assert errors(browser) == []


def test_clicking_a_component_opens_its_archive(live_server, browser, demo_engine):
    comp = one(demo_engine, """
        SELECT c.id, c.code, ST_X(c.geom) lon, ST_Y(c.geom) lat FROM component c
        WHERE c.class_code = '0101' AND NOT EXISTS (
          SELECT 1 FROM component o WHERE o.id <> c.id AND left(o.class_code, 2) = '01'
          AND ST_DWithin(o.geom::geography, c.geom::geography, 8))
        ORDER BY c.id LIMIT 1""")  # fmt: skip
    wait = open_page(browser, live_server,
                     f"?layers=component_01&z=19&lat={comp['lat']}&lon={comp['lon']}", {"component_01"})  # fmt: skip
    wait.until(lambda d: len(tile_responses(d, "component_01")) > 0)
    time.sleep(1.0)  # let the canvas renderer draw the fetched tiles
    x, y = browser.execute_script(
        "const p = window.onemap.layers.map().latLngToContainerPoint([arguments[0], arguments[1]]);"
        "return [p.x, p.y];", comp["lat"], comp["lon"])  # fmt: skip
    element = browser.find_element(By.ID, "onemap-map")
    size = element.size
    ActionChains(browser).move_to_element_with_offset(
        element, x - size["width"] / 2, y - size["height"] / 2).click().perform()  # fmt: skip
    wait.until(lambda d: comp["code"] in d.find_element(By.ID, "archive-title").text)
    body = browser.find_element(By.ID, "archive-body").text
    assert "单元网格" in body and "相关案件" in body
    assert comp["code"] in browser.find_element(By.CSS_SELECTOR, ".onemap-popup").text
    save_artifact(browser, "archive")
    assert errors(browser) == []


def test_search_zooms_to_an_address_and_marks_it(live_server, browser, demo_engine):
    row = one(demo_engine, "SELECT road_name, address, ST_X(geom) lon, ST_Y(geom) lat FROM geocode "
                           "WHERE kind = '门牌' AND door_number = '12号' ORDER BY id LIMIT 1")  # fmt: skip
    wait = open_page(browser, live_server)
    box = browser.find_element(By.ID, "search-input")
    box.send_keys(f"{row['road_name']} 12", Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".hits .hit"))
    first = browser.find_element(By.CSS_SELECTOR, ".hits .hit")
    assert first.text == row["address"]
    first.click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".leaflet-marker-icon"))
    wait.until(lambda d: status(d)["zoom"] == 18)
    centre = status(browser)["center"]
    assert abs(centre["lat"] - row["lat"]) < 1e-4 and abs(centre["lng"] - row["lon"]) < 1e-4
    tip = browser.find_element(By.CSS_SELECTOR, ".leaflet-tooltip:not(.area-label)")
    assert row["address"] in tip.text
    save_artifact(browser, "search")
    assert errors(browser) == []


def choose_area(browser, wait, name: str) -> None:
    """Pick an area in the selector by typing part of its name."""
    wait.until(lambda d: d.find_element(By.ID, "area-select")).click()  # an async component
    search = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".dash-dropdown-search"))
    search.send_keys(name)
    wait.until(lambda d: d.execute_script(
        "const o = [...document.querySelectorAll('[role=option]')]"
        ".find(e => e.textContent.endsWith(arguments[0])); if (o) { o.click(); } return !!o;", name))  # fmt: skip


def stats_titles(browser) -> list[str]:
    """Headings of the statistics cards."""
    return browser.execute_script(  # one read in the page: the cards re-render while we look
        "return [...document.querySelectorAll('.stats-card h3')].map(h => h.textContent)"
    )


def test_choosing_a_community_changes_stats_and_outline(live_server, browser, demo_engine):
    comm = one(demo_engine, """SELECT a.code, a.name FROM admin_area a WHERE a.level = 'community'
                               ORDER BY (SELECT count(*) FROM unit_grid g WHERE g.community_code = a.code)
                               DESC, a.code LIMIT 1""")  # fmt: skip
    wait = open_page(browser, live_server, "?layers=component_01", {"component_01"})
    wait.until(lambda d: any("全部区域" in t for t in stats_titles(d)))
    before = stats_titles(browser)
    choose_area(browser, wait, comm["name"])
    wait.until(lambda d: any(comm["name"] in t for t in stats_titles(d)))
    assert stats_titles(browser) != before
    outlined = browser.execute_script(
        "let n = 0; window.onemap.layers.map().eachLayer(l => {"
        " if (l.feature && l.feature.properties && l.feature.properties.code === arguments[0]) n++; });"
        "return n;", comm["code"])  # fmt: skip
    assert outlined >= 1
    wait.until(lambda d: f"area={comm['code']}" in d.current_url)
    save_artifact(browser, "area_focus")
    assert errors(browser) == []


def test_shared_url_restores_the_view(live_server, browser, demo_engine):
    street = one(demo_engine, "SELECT code, name FROM admin_area WHERE level = 'street' "
                              "ORDER BY code LIMIT 1")  # fmt: skip
    wait = open_page(browser, live_server)
    for lid in ("case", "sanitation"):
        browser.find_element(By.CSS_SELECTOR, f'[id*="\\"{lid}\\""][id*="layer-on"] input').click()
    choose_area(browser, wait, street["name"])
    wait.until(lambda d: f"area={street['code']}" in d.current_url and "case" in d.current_url)
    time.sleep(1.5)  # the view settles after fitting the street
    shared = browser.current_url
    view = status(browser)
    browser.get("about:blank")
    open_page(
        browser, live_server, "?" + urlparse(shared).query, {*DEFAULT_ON, "case", "sanitation"}
    )
    restored = status(browser)
    assert restored["zoom"] == view["zoom"]
    assert abs(restored["center"]["lat"] - view["center"]["lat"]) < 1e-4
    assert abs(restored["center"]["lng"] - view["center"]["lng"]) < 1e-4
    # the drop-down is an async component: the map can be drawn before it is
    wait.until(lambda d: street["name"] in d.find_element(By.ID, "area-select").text)
    q = parse_qs(urlparse(browser.current_url).query)
    assert q["area"] == [street["code"]]
    assert errors(browser) == []


def test_clicking_the_map_answers_where_it_is(live_server, browser, demo_engine):
    grid = one(demo_engine, "SELECT code, ST_X(ST_PointOnSurface(geom)) lon, "
                            "ST_Y(ST_PointOnSurface(geom)) lat FROM unit_grid ORDER BY code LIMIT 1")  # fmt: skip
    wait = open_page(
        browser,
        live_server,
        f"?layers=sensor&z=17&lat={grid['lat']}&lon={grid['lon']}",
        {"sensor"},
    )
    element = browser.find_element(By.ID, "onemap-map")
    ActionChains(browser).move_to_element(element).click().perform()
    wait.until(lambda d: d.find_elements(By.ID, "location-table"))
    table = browser.find_element(By.ID, "location-table").get_attribute("textContent")
    assert grid["code"] in table and "最近地址" in table
    assert errors(browser) == []
