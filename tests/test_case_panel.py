"""The 案件分析 panel through the Dash callback tier: same figures as the API, bad input, zoom."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from tests.conftest import auth
from tests.test_handlers import callback


def controls(end: str, value=(-29, 0), cls=None, kind="unit_grid", size=500, area=None) -> list:
    """The panel's state as the browser sends it."""
    return [("ca-range", "value", list(value)), ("ca-end-day", "data", end),
            ("ca-class", "value", cls), ("ca-source", "value", None), ("ca-status", "value", None),
            ("ca-cells", "value", kind), ("ca-size", "value", size), ("area-value", "data", area)]  # fmt: skip


@pytest.fixture(scope="module")
def last_day(demo_engine) -> str:
    """The demo's latest case day (city clock)."""
    with demo_engine.connect() as conn:
        return conn.execute(text("SELECT (max(reported_at) AT TIME ZONE 'Asia/Shanghai')::date "
                                 "FROM case_record")).scalar().isoformat()  # fmt: skip


def test_the_window_ends_at_the_latest_case(client, role_tokens, last_day):
    out = callback(client, auth(role_tokens, "operator"), [("ca-end-day", "data")],
                   [("ca-preset", "id", "ca-preset")])  # fmt: skip
    assert out["response"]["ca-end-day"]["data"] == last_day


def test_hotspots_in_the_panel_match_the_api(client, role_tokens, last_day):
    headers = auth(role_tokens, "operator")
    out = callback(client, headers, [("ca-hotspots", "children"), ("ca-top-table", "data"),
                                     ("ca-hot-store", "data")],
                   [("ca-run", "n_clicks", 1)], controls(last_day, (-364, 0)))  # fmt: skip
    resp = out["response"]
    start = (date.fromisoformat(last_day) - timedelta(days=364)).isoformat()
    api = client.get("/api/analytics/hotspots", query_string={"from": start, "to": last_day},
                     headers=headers).get_json()["features"]  # fmt: skip
    hot = sorted((f for f in api if f["properties"]["hotspot_class"].startswith("hot")),
                 key=lambda f: -f["properties"]["gi_z"])  # fmt: skip
    rows = resp["ca-top-table"]["data"]
    assert [r["cell_id"] for r in rows] == [f["id"] for f in hot[:10]]
    overlay = resp["ca-hot-store"]["data"]["features"]
    assert len(overlay) == sum(f["properties"]["hotspot_class"] != "ns" for f in api)
    assert f"{len(api):,} 个网格" in str(resp["ca-hotspots"]["children"])
    zoom = callback(client, headers, [("view-request", "data")],
                    [("ca-top-table", "active_cell", {"row": 0, "column": 0})],
                    [("ca-emerging-table", "active_cell", None),
                     ("ca-recurring-table", "active_cell", None),
                     ("ca-top-table", "derived_viewport_data", rows),
                     ("ca-emerging-table", "derived_viewport_data", []),
                     ("ca-recurring-table", "derived_viewport_data", [])])  # fmt: skip
    (s, w), (n, e) = zoom["response"]["view-request"]["data"]["bounds"]
    assert s < n and w < e


def test_emerging_recurring_and_kpis_render(client, role_tokens, last_day):
    headers = auth(role_tokens, "leader")
    em = callback(client, headers, [("ca-emerging", "children"), ("ca-emerging-table", "data"),
                                    ("ca-emerging-store", "data")],
                  [("ca-run", "n_clicks", 1)], controls(last_day, (-181, 0)))["response"]  # fmt: skip
    assert "26 个时段" in str(em["ca-emerging"]["children"])
    week = callback(client, headers, [("ca-emerging", "children"), ("ca-emerging-table", "data"),
                                      ("ca-emerging-store", "data")],
                    [("ca-run", "n_clicks", 1)], controls(last_day, (-6, 0)))["response"]  # fmt: skip
    assert "7 个时段" in str(week["ca-emerging"]["children"])  # a week: daily steps
    rec = callback(client, headers, [("ca-recurring", "children"), ("ca-recurring-table", "data")],
                   [("ca-run", "n_clicks", 1)], controls(last_day))["response"]  # fmt: skip
    assert "至" in str(rec["ca-recurring"]["children"])
    kpis = callback(client, headers, [("ca-kpis", "children")],
                    [("ca-run", "n_clicks", 1), ("ca-kpi-by", "value", "street")],
                    [*controls(last_day)[:5], ("area-value", "data", None)])["response"]  # fmt: skip
    assert "export.xlsx" in str(kpis["ca-kpis"]["children"])


@pytest.mark.parametrize("bad", [
    {"value": ("x", 0)}, {"kind": "tiles"}, {"size": 10}, {"cls": "99"}, {"area": "abc"},
])  # fmt: skip
def test_untrusted_controls_get_a_readable_error(client, role_tokens, last_day, bad):
    headers = auth(role_tokens, "operator")
    kw = {"value": (-29, 0), **bad}
    out = callback(client, headers, [("ca-hotspots", "children"), ("ca-top-table", "data"),
                                     ("ca-hot-store", "data")],
                   [("ca-run", "n_clicks", 1)], controls(last_day, **kw))["response"]  # fmt: skip
    if bad.get("value"):  # a malformed slider falls back to the last 30 days
        assert "个网格" in str(out["ca-hotspots"]["children"])
    else:
        assert "error" in str(out["ca-hotspots"]["children"])


def test_the_kiosk_is_refused(client, role_tokens, last_day):
    out = callback(client, auth(role_tokens, "kiosk"), [("ca-hotspots", "children"),
                   ("ca-top-table", "data"), ("ca-hot-store", "data")],
                   [("ca-run", "n_clicks", 1)], controls(last_day))["response"]  # fmt: skip
    assert "不能使用统计分析" in str(out["ca-hotspots"]["children"])
