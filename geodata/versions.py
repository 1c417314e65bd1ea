"""Data versions: write counters per table, bumped by statement triggers (migration 0002)."""

from __future__ import annotations

from sqlalchemy import Connection, text


def data_version(conn: Connection, tables) -> int:
    """Sum of the write counters of the tables (changes on every write to any of them)."""
    sql = text("SELECT coalesce(sum(version), 0) FROM data_version WHERE table_name = ANY(:t)")
    return int(conn.execute(sql, {"t": list(tables)}).scalar())


def version_key(conn: Connection, tables) -> tuple[str, str, int]:
    """Which database and which data: a key for process-level caches that outlive a request (one
    process may serve or test several databases)."""
    url = conn.engine.url
    return (f"{url.host}:{url.port}", url.database or "", data_version(conn, tables))
