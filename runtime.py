"""What one running app holds: its settings, its database engines and its per-worker caches.

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
from geodata.replicas import ReadRouter
from settings import Settings

KEY = "onemap"


class Runtime:
    """Settings, a lazily created engine and named caches of one app."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._engine: Engine | None = None
        self._reads: ReadRouter | None = None
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

    @property
    def reads(self) -> ReadRouter:
        """Where reads go: the replicas of ONEMAP_READ_DATABASE_URL when fresh, else the primary."""
        if self._reads is None:
            primary = self.engine
            with self._lock:
                if self._reads is None:
                    timeout = self.settings.statement_timeout_ms
                    replicas = [make_engine(url, statement_timeout_ms=timeout)
                                for url in self.settings.read_sqlalchemy_urls()]  # fmt: skip
                    self._reads = ReadRouter(primary, replicas, fence_s=self.settings.read_fence_s,
                                             retry_s=self.settings.replica_retry_s)  # fmt: skip
        return self._reads

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
