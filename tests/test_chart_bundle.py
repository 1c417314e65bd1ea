"""The charts' plotly.js is the cartesian partial bundle: it draws every trace type the pages use,
and it is what Dash's charts load (callbacks/pages.py CHART_BUNDLE)."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import requests
from plotly.basedatatypes import BaseTraceType

from callbacks.pages import CHART_BUNDLE, PLOTLY_JS
from settings import PROJECT_ROOT
from tests.conftest import http

SOURCES = ("analytics", "api", "callbacks", "layers", "services")
# every plotly trace type by its class name (go.Bar) and by its type name (bar)
TRACES = {
    name: getattr(go, name)().type
    for name in dir(go)
    if isinstance(getattr(go, name), type) and issubclass(getattr(go, name), BaseTraceType)
}


def bundle_traces() -> set[str]:
    """The trace types the vendored bundle registers."""
    return set(re.findall(r'moduleType:"trace",name:"(\w+)"', CHART_BUNDLE.read_text("utf-8")))


def traces_in_source() -> dict[str, set[str]]:
    """Trace types the application code builds (go.Bar(…), fig.add_bar(…)), with the files."""
    found: dict[str, set[str]] = {}
    types = set(TRACES.values())
    for folder in SOURCES:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            code = path.read_text("utf-8")
            used = {TRACES[n] for n in re.findall(r"\bgo\.(\w+)\(", code) if n in TRACES}
            used |= {t for t in re.findall(r"\.add_(\w+)\(", code) if t in types}
            for t in used:
                found.setdefault(t, set()).add(str(path.relative_to(PROJECT_ROOT)))
    return found


def test_the_scan_finds_the_charts_we_know_of():
    # the big screen's bars and lines and the case panel's heat matrix: the scan itself works
    assert {"bar", "scatter", "heatmap"} <= set(traces_in_source())


def test_every_trace_type_the_pages_draw_is_in_the_bundle():
    missing = {t: files for t, files in traces_in_source().items() if t not in bundle_traces()}
    assert missing == {}, f"not in {CHART_BUNDLE.name}: {missing} (use a bigger plotly bundle)"


def test_the_bundle_is_the_partial_one():
    head = CHART_BUNDLE.read_text("utf-8")[:200]
    assert "plotly.js (cartesian - minified)" in head
    assert len(bundle_traces()) < len(set(TRACES.values()))


def test_dash_charts_load_the_bundle(live_server):
    url = f"{live_server}/{PLOTLY_JS}"
    answer = requests.get(url, timeout=30)  # public like Dash's other files: no sign-in
    assert answer.status_code == 200
    assert answer.content == CHART_BUNDLE.read_bytes()
    assert answer.headers["Content-Type"].startswith("application/javascript")
    again = requests.get(url, headers={"If-None-Match": answer.headers["ETag"]}, timeout=30)
    assert again.status_code == 304


def test_no_page_loads_the_bundle_before_its_first_chart(live_server):
    for path in ("/", "/bigscreen"):
        page = http.get(live_server + path, timeout=30)
        assert page.status_code == 200
        scripts = re.findall(r'<script src="([^"]+)"', page.text)
        assert any("dash_renderer" in s for s in scripts)  # Dash's own index page
        assert [s for s in scripts if "plotly" in s] == []
