"""Data versions: write counters per table, bumped by statement triggers (migration 0002)."""

from __future__ import annotations

from sqlalchemy import Connection, text


def data_version(conn: Connection, tables) -> int:
    """Sum of the write counters of the tables (changes on every write to any of them)."""
    sql = text("SELECT coalesce(sum(version), 0) FROM data_version WHERE table_name = ANY(:t)")
    return int(conn.execute(sql, {"t": list(tables)}).scalar())
