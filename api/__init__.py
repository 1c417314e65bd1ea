"""The JSON API and vector tiles: Flask blueprints per resource, each a thin adapter over services.

A handler parses nothing itself beyond the path: it hands the raw query to one service function
(services/, layers/tiles) and turns the answer into JSON. Errors become JSON in `api.errors`.
"""

from __future__ import annotations

from flask import Flask, request

from api import alarms, analytics, bigscreen, errors, layers, objects, parking, places, tiles


def register(server: Flask) -> None:
    """Attach every blueprint and the JSON error handlers to the Flask server."""
    server.json.ensure_ascii = False  # Chinese messages stay readable
    errors.register(server)
    for module in (tiles, layers, objects, places, analytics, parking, alarms, bigscreen):
        server.register_blueprint(module.bp)

    @server.after_request
    def _no_store(resp):
        # Every JSON answer of the API reflects one user's rights and areas: no shared caching.
        if request.path.startswith("/api/") and "Cache-Control" not in resp.headers:
            resp.headers["Cache-Control"] = "no-store"
        return resp
