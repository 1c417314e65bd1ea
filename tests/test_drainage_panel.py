"""The 排水分析 panel through the Dash callback tier and in real headless Chromium."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import text

from tests.conftest import auth, save_artifact
from tests.test_handlers import callback, registered_output
from tests.test_map_page import errors, open_page

CLICKED = {"type": "panel-object", "tab": "drainage"}  # the clicked object, as the tab sees it

OUTPUTS = [("dr-result", "children"), ("dr-table", "columns"), ("dr-table", "data"),
           ("dr-overlay", "data"), ("view-request", "data")]  # fmt: skip


BUTTONS = ("dr-trace", "dr-catchment", "dr-quality", "dr-risk")


def press(client, headers, button: str, code=None, direction="down", area=None) -> dict:
    """Press one of the panel's buttons with the given controls; the outputs by id.property."""
    body = {
        "output": registered_output(client, OUTPUTS),
        "outputs": [{"id": i, "property": p} for i, p in OUTPUTS],
        "inputs": [{"id": b, "property": "n_clicks", "value": int(b == button)} for b in BUTTONS],
        "state": [{"id": "dr-code", "property": "value", "value": code},
                  {"id": "dr-direction", "property": "value", "value": direction},
                  {"id": "area-value", "property": "data", "value": area}],
        "changedPropIds": [f"{button}.n_clicks"],
    }  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=headers)
    assert resp.status_code == 200, resp.data[:300]
    out = resp.get_json()["response"]
    return {f"{k}.{p}": v[p] for k, v in out.items() for p in v}


@pytest.fixture(scope="module")
def well(demo_engine) -> str:
    """A well in the middle of the demo network."""
    with demo_engine.connect() as conn:
        return conn.execute(
            text("SELECT code FROM drain_well ORDER BY id LIMIT 1 OFFSET 40")
        ).scalar()


def test_trace_in_the_panel_is_the_api_trace(client, role_tokens, well):
    headers = auth(role_tokens, "operator")
    out = press(client, headers, "dr-trace", well, "down")
    api = client.get("/api/analytics/drain-trace", query_string={"from": well},
                     headers=headers).get_json()  # fmt: skip
    assert out["dr-overlay.data"]["features"] == api["features"]
    shown = str(out["dr-result.children"])
    assert f"{api['summary']['pipes']:,} 段" in shown and "到达排口" in shown
    (s, w), (n, e) = out["view-request.data"]["bounds"]
    assert s <= n and w <= e
    up = press(client, headers, "dr-trace", well, "up")
    assert "向上游" in str(up["dr-result.children"])


def test_catchment_quality_and_risk_tables(client, role_tokens, well):
    headers = auth(role_tokens, "leader")
    catchment = press(client, headers, "dr-catchment", well)
    api = client.get("/api/analytics/drain-catchment", query_string={"at": well},
                     headers=headers).get_json()["result"]  # fmt: skip
    assert len(catchment["dr-table.data"]) == len(api["rows"][:2000])
    assert f"{api['parcels']:,}" in str(catchment["dr-result.children"])
    risk = press(client, headers, "dr-risk")
    ranked = client.get("/api/analytics/pipe-risk", query_string={"top": 200},
                        headers=headers).get_json()["result"]["rows"]  # fmt: skip
    assert [r["code"] for r in risk["dr-table.data"]] == [r["code"] for r in ranked]
    assert {c["id"] for c in risk["dr-table.columns"]} >= {"score", "level", "reasons"}
    assert all(f["properties"]["level"] for f in risk["dr-overlay.data"]["features"])
    assert "dr-risk-areas" in str(risk["dr-result.children"])  # the per-area summary
    quality = press(client, headers, "dr-quality")
    assert "检查的管线" in str(quality["dr-result.children"])
    assert "export.xlsx" in str(quality["dr-result.children"])


@pytest.mark.parametrize(
    "code", [None, "", "NO-SUCH-WELL", "x" * 500, "'; DROP TABLE drain_pipe;--"]
)
def test_bad_codes_are_readable_errors(client, role_tokens, code):
    out = press(client, auth(role_tokens, "operator"), "dr-trace", code, "sideways")
    assert "error" in str(out["dr-result.children"])
    assert out["dr-overlay.data"] is None


def test_the_kiosk_is_refused(client, role_tokens, well):
    out = press(client, auth(role_tokens, "kiosk"), "dr-risk")
    assert "不能使用统计分析" in str(out["dr-result.children"])


def test_clicking_a_well_fills_its_code(client, role_tokens, demo_engine, well):
    with demo_engine.connect() as conn:
        well_id = conn.execute(
            text("SELECT id FROM drain_well WHERE code = :c"), {"c": well}
        ).scalar()
    out = callback(client, auth(role_tokens, "operator"), [("dr-code", "value")],
                   [(CLICKED, "data", {"layer": "drain_well", "id": well_id})])  # fmt: skip
    assert out["response"]["dr-code"]["value"] == well


@pytest.mark.browser
def test_tracing_from_the_tab_draws_the_network(live_server, browser, well):
    wait = open_page(browser, live_server)
    errors(browser)
    browser.find_element(
        By.XPATH, "//div[contains(@class,'tab') and normalize-space()='排水分析']"
    ).click()
    box = wait.until(lambda d: d.find_element(By.ID, "dr-code"))  # the tab is built on opening
    wait.until(lambda d: box.is_displayed())
    box.send_keys(well)
    browser.find_element(By.ID, "dr-trace").click()
    wait.until(lambda d: d.find_elements(By.ID, "dr-figures"))
    drawn = browser.execute_script(
        "let n = 0; window.onemap.layers.map().eachLayer(l => { const p = l.feature && "
        "l.feature.properties; if (p && p.object === 'pipe') { n++; } }); return n;")  # fmt: skip
    assert drawn > 0
    save_artifact(browser, "drainage")
    assert errors(browser) == []
