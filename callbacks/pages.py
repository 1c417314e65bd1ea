"""Pages of the dashboard: a registry of (path, title, layout, callbacks), one entry per page.

Dash fetches a page's layout from the page itself (`/_dash-layout`, with the page as referrer),
so the layout is chosen from the referrer's path and built with its query in that one request:
the page needs no routing callback and no extra round trip before its first tiles (Dash's own
`use_pages` renders the page content by a callback after load). The map is at `/`; the big screen
and analysis views are entries to come.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from dash import Dash, html
from flask import has_request_context, request, send_file

from auth.accounts import User
from auth.roles import ROLES
from auth.web import current_user
from settings import PROJECT_ROOT, Settings

# Dash checks callback ids against a layout built once at start-up. In debug mode it embeds that
# layout in every page for the browser's dev tools to check too (in production the check's
# findings would show nowhere, and the embedded copy doubled the page's HTML): it is built for a
# role without restricted layers, so no restricted metadata reaches any page.
VALIDATION_USER = User(0, "layout-check", ROLES["planner"], ())
# The charts' plotly.js: the cartesian partial bundle (1.5 MB; bar, scatter, heatmap, pie, box,
# histogram, contour…) instead of the full one Dash serves (4.8 MB, about 0.85 s to evaluate in
# the browser on 2 CPUs before the first chart is drawn). It holds every trace type the pages
# draw (tests/test_chart_bundle.py). Kept out of Dash's automatic asset loading (app.py).
CHART_BUNDLE = PROJECT_ROOT / "assets" / "vendor" / "plotly" / "plotly-cartesian.min.js"
PLOTLY_JS = "_dash-component-suites/plotly/package_data/plotly.min.js"  # where dcc.Graph loads it


@dataclass(frozen=True)
class Page:
    """One page: where it lives, its title, its layout and its callbacks."""

    path: str
    title: str
    layout: Callable[[Settings, User, str], html.Div]  # (settings, user, URL query) -> layout
    register: Callable[[Dash, Settings], None]
    # what the page builds later by callbacks (lazily opened tabs), for the check of callback ids
    later: Callable[[User], list] = lambda _user: []


def page_for(pages: tuple[Page, ...], path: str) -> Page:
    """The page at a path (the first page for unknown paths, as before pages existed)."""
    return next((p for p in pages if p.path == path), pages[0])


def requested_page() -> tuple[str, str]:
    """(path, query) of the page whose layout Dash is fetching (from the same origin only)."""
    if not has_request_context() or not request.referrer:
        return "/", ""
    ref = urlparse(request.referrer)
    if ref.netloc != request.host:
        return "/", ""
    return ref.path or "/", ref.query


def install(app: Dash, settings: Settings, pages: tuple[Page, ...]) -> None:
    """Serve the pages' layouts, register their callbacks and the validation layout."""
    app.validation_layout = html.Div([part for p in pages for part in (
        p.layout(settings, VALIDATION_USER, ""), *p.later(VALIDATION_USER))])  # fmt: skip

    def layout():
        path, query = requested_page()
        user = current_user() if has_request_context() else VALIDATION_USER  # start-up check
        return page_for(pages, path).layout(settings, user, query)

    app.layout = layout
    for page in pages:
        page.register(app, settings)
    serve_chart_bundle(app)


def serve_chart_bundle(app: Dash) -> None:
    """Answer Dash's plotly.js URL with the partial bundle (a static route wins over Dash's
    `<package>/<path>` rule); revalidated by ETag like Dash's own unversioned files."""

    @app.server.get(app.config.routes_pathname_prefix + PLOTLY_JS)
    def _plotly_js():
        return send_file(CHART_BUNDLE, mimetype="application/javascript", conditional=True,
                         etag=True, max_age=0)  # fmt: skip
