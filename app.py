"""Composition root: settings -> Dash app -> routes and callbacks -> `server`.

Run `python app.py` to serve with gunicorn (or the Dash dev server when ONEMAP_DEBUG=true).
"""

from __future__ import annotations

import dash

import api
import runtime
from auth import web as auth_web
from callbacks import bigscreen, map_page, pages
from geodata.db import make_engine
from layers.check import check_registry
from settings import PROJECT_ROOT, Settings

PAGES = (map_page.PAGE, bigscreen.PAGE)
THREADS = 4  # per gunicorn worker


def create_app(settings: Settings) -> dash.Dash:
    """Build the Dash app and its Flask server; no database work happens here."""
    app = dash.Dash(
        __name__,
        title=settings.title,
        assets_folder=str(PROJECT_ROOT / "assets"),
        assets_path_ignore=["^plotly$"],  # the charts' bundle, loaded with the first chart only
        serve_locally=True,
        update_title=None,
        # the browser-side check of callback ids only in debug mode (callbacks/pages.py)
        suppress_callback_exceptions=not settings.debug,
    )
    runtime.install(app.server, settings)
    auth_web.register(app.server, settings)
    api.register(app.server)
    pages.install(app, settings, PAGES)
    # Dash sets itself up lazily on the first request, and under gunicorn's threads a second
    # request can slip past that flag before the JS libraries are registered (500 on the bundles).
    with app.server.app_context():
        app._setup_server()
    return app


def serve(app: dash.Dash, settings: Settings) -> None:
    """Serve with gunicorn, or the Dash development server in debug mode."""
    # Fail loudly on a missing table or column, on a throw-away engine: gunicorn forks the workers
    # from this process, and pooled connections must not be shared across the fork.
    probe = make_engine(settings.sqlalchemy_url())
    check_registry(probe)
    probe.dispose()
    if settings.debug:
        app.run(host=settings.host, port=settings.port, debug=True)
        return
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("threads", THREADS)
            self.cfg.set("post_worker_init", lambda _worker: runtime.of(app.server).warm(THREADS))
            self.cfg.set("accesslog", "-")

        def load(self):
            return app.server

    print(f"城管一张图: http://{settings.host}:{settings.port}/", flush=True)
    Server().run()


settings = Settings()
app = create_app(settings)
server = app.server

if __name__ == "__main__":
    serve(app, settings)
