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
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from geodata.catalog import SRID, WEB_MERCATOR_SRID
from geodata.db import make_engine
from geodata.replicas import ReadRouter
from settings import Settings

KEY = "onemap"
# A new connection's first PostGIS call loads PostGIS and GEOS into its backend, and its first
# transformation between two systems makes PROJ look the pipeline up: about 330 ms a connection
# for the ones the app uses (CGCS2000 to and from web mercator, CGCS2000 to and from WGS 84),
# paid by the first tiles after a start unless done here.
WARM_SQL = text(f"""
SELECT length(ST_AsMVT(t)) FROM (
  SELECT ST_AsMVTGeom(ST_Transform(p, {WEB_MERCATOR_SRID}), ST_TileEnvelope(10, 844, 399)) AS geom,
         ST_Transform(ST_Transform(ST_TileEnvelope(10, 844, 399), {SRID}), 4326) AS wgs84
  FROM (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(117, 36.6), 4326), {SRID}) AS p) x) t""")


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

    def warm(self, connections: int) -> None:
        """Fill the pools before the first request: `connections` connections to the primary
        (now) and to each replica (in the background: one that is unreachable must not hold up
        the worker's start), so the first map view does not pay for opening them."""
        warm_pool(self.engine, connections)
        for replica in self.reads.replicas:
            threading.Thread(target=warm_pool, args=(replica, connections), daemon=True).start()

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


def warm_pool(engine: Engine, connections: int) -> None:
    """Open `connections` pooled connections at once, PostGIS, GEOS and the PROJ pipelines loaded
    in each (about 350 ms a connection here, see WARM_SQL)."""
    held = []
    try:
        for _ in range(connections):
            held.append(engine.connect())
            held[-1].execute(WARM_SQL).scalar()
            held[-1].rollback()
    except SQLAlchemyError:
        pass  # a server that is down is the request's problem, reported there
    finally:
        for conn in held:
            conn.close()


def runtime() -> Runtime:
    """The runtime of the app handling the current request or callback."""
    return of(current_app)


def of(server: Flask) -> Runtime:
    """The runtime installed on a Flask app."""
    return server.extensions[KEY]
