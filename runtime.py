"""What one running app holds: its settings, its database engine and its per-worker caches.

Created by the composition root (app.py) and kept on the Flask app (`app.extensions["onemap"]`),
so handlers and callbacks reach them through the app they run in, never through a global. The
engine is created on first use: gunicorn forks workers after the app is built, and pooled
connections must not cross a fork.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine

from geodata.db import make_engine
from settings import Settings

KEY = "onemap"


class Runtime:
    """Settings, a lazily created engine and named caches of one app."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._engine: Engine | None = None
        self._caches: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The app's engine (created on first use, in the worker)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = make_engine(
                        self.settings.sqlalchemy_url(),
                        statement_timeout_ms=self.settings.statement_timeout_ms,
                    )
        return self._engine

    def cache(self, name: str, factory: Callable[[], Any]) -> Any:
        """The named cache, made by `factory` the first time it is asked for."""
        with self._lock:
            if name not in self._caches:
                self._caches[name] = factory()
            return self._caches[name]


def install(server: Flask, settings: Settings) -> Runtime:
    """Attach a new runtime to the Flask app."""
    server.extensions[KEY] = Runtime(settings)
    return server.extensions[KEY]


def runtime() -> Runtime:
    """The runtime of the app handling the current request or callback."""
    return current_app.extensions[KEY]
