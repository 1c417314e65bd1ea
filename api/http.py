"""Helpers of the blueprints: the app's engine, JSON answers with the right caching headers."""

from __future__ import annotations

from flask import Response, jsonify

from runtime import runtime


def engine():
    """The engine of the app serving this request (the primary: every write goes here)."""
    return runtime().engine


def reading(tables=None):
    """A connection for reads: a fresh-enough replica when configured, else the primary."""
    return runtime().reads.connect(tables)


def private_json(body, status: int = 200) -> Response:
    """JSON holding data of one user's view: never stored by a browser or shared cache."""
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp
