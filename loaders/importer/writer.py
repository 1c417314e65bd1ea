"""The importer's SQL: city extent, staging table, COPY, database-side checks, insert/upsert.

Table and column names come only from the layer specs (checked to be plain identifiers);
values are always sent as data (COPY rows or bound parameters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from loaders.importer.specs import LayerSpec

STAGE = "import_stage"
IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
SQLSTATE_HINTS = {
    "23505": "编码重复", "23503": "引用的记录不存在或仍被引用", "23502": "缺少必填值",
    "23514": "违反数据库校验规则",
}  # fmt: skip


class DatabaseRejected(RuntimeError):
    """The database refused the file (constraint violation): nothing was loaded."""


def q(name: str) -> str:
    """A spec identifier, checked and quoted."""
    if not IDENT.match(name):
        raise ValueError(f"bad identifier {name!r}")
    return f'"{name}"'


def city_extent(conn: Connection, margin: float) -> tuple[float, float, float, float] | None:
    """Bounding box of all administrative areas, grown by `margin` degrees (None when empty)."""
    row = conn.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom) AS e FROM admin_area) s"
    )).one()  # fmt: skip
    if row[0] is None:
        return None
    return (row[0] - margin, row[1] - margin, row[2] + margin, row[3] + margin)


def begin_import(conn: Connection) -> None:
    """No statement timeout inside the import transaction (large files take a while)."""
    conn.execute(text("SET LOCAL statement_timeout = 0"))


def create_stage(conn: Connection, spec: LayerSpec, columns: list[str]) -> None:
    """A temporary staging table with the target's column types, dropped at commit."""
    dialect = postgresql.dialect()
    defs = [f"{q(c)} {spec.column(c).type.compile(dialect=dialect)}" for c in columns]
    conn.execute(text(f"DROP TABLE IF EXISTS {STAGE}"))
    conn.execute(text(
        f"CREATE TEMP TABLE {STAGE} (row_no integer PRIMARY KEY, {', '.join(defs)}, "
        f"geom geometry({spec.geometry}, 4490)) ON COMMIT DROP"
    ))  # fmt: skip


def copy_rows(conn: Connection, columns: list[str], rows: Iterable[tuple]) -> None:
    """COPY (row_no, *columns, hex EWKB geometry) tuples into the staging table."""
    names = ", ".join(["row_no", *map(q, columns), "geom"])
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def missing_references(conn: Connection, spec: LayerSpec, columns: list[str]) -> list[tuple]:
    """(row_no, field, value, table) of values whose foreign-key target does not exist."""
    found = []
    for name in columns:
        for fk in spec.column(name).foreign_keys:
            ref_table, ref_col = q(fk.column.table.name), q(fk.column.name)
            also_stage = (f" AND NOT EXISTS (SELECT 1 FROM {STAGE} t WHERE t.{ref_col} = s.{q(name)})"
                          if fk.column.table.name == spec.table else "")  # fmt: skip
            rows = conn.execute(text(
                f"SELECT s.row_no, s.{q(name)} FROM {STAGE} s WHERE s.{q(name)} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {ref_table} r WHERE r.{ref_col} = s.{q(name)})"
                + also_stage + " ORDER BY s.row_no"
            )).all()  # fmt: skip
            found += [(r[0], name, r[1], fk.column.table.name) for r in rows]
    return found


def existing_keys(conn: Connection, spec: LayerSpec) -> list[tuple[int, str]]:
    """(row_no, key) of staged rows whose natural key is already in the table."""
    key = q(spec.key)
    return conn.execute(text(
        f"SELECT s.row_no, s.{key} FROM {STAGE} s JOIN {q(spec.table)} t ON t.{key} = s.{key} "
        "ORDER BY s.row_no"
    )).all()  # fmt: skip


def district_mismatches(conn: Connection, tolerance_deg: float = 0.002) -> list[tuple]:
    """(row_no, code, district) of components lying in a district that is not their code's."""
    # The cheap test (near the code's own district) first; only the rows failing it are looked
    # up in every district (ST_Intersects on every staged row: ~4 s for 200,000 rows).
    return conn.execute(text(
        f"WITH far AS MATERIALIZED (SELECT s.row_no, s.code, s.geom FROM {STAGE} s "
        "WHERE NOT EXISTS (SELECT 1 FROM admin_area d WHERE d.level = 'district' "
        "  AND d.code = left(s.code, 6) AND ST_DWithin(d.geom, s.geom, :tol))) "
        "SELECT f.row_no, f.code, min(a.code) FROM far f "
        "JOIN admin_area a ON a.level = 'district' AND ST_Intersects(a.geom, f.geom) "
        "GROUP BY f.row_no, f.code ORDER BY f.row_no"
    ), {"tol": tolerance_deg}).all()  # fmt: skip


def drop_rows(conn: Connection, row_nos: set[int]) -> None:
    """Remove rejected rows from the staging table."""
    if row_nos:
        conn.execute(text(f"DELETE FROM {STAGE} WHERE row_no = ANY(:r)"), {"r": sorted(row_nos)})


def insert_sql(spec: LayerSpec, columns: list[str], mode: str, where: str = "") -> str:
    """INSERT … SELECT from the staging table, with ON CONFLICT … DO UPDATE for upsert."""
    names = ", ".join([*map(q, columns), "geom"])
    sql = f"INSERT INTO {q(spec.table)} ({names}) SELECT {names} FROM {STAGE} {where}"
    if mode == "upsert":
        updates = ", ".join(
            f"{q(c)} = EXCLUDED.{q(c)}" for c in [*columns, "geom"] if c != spec.key
        )
        sql += f" ORDER BY row_no ON CONFLICT ({q(spec.key)}) DO UPDATE SET {updates}"
    return sql


def load(conn: Connection, spec: LayerSpec, columns: list[str], mode: str) -> int:
    """Move the staged rows into the table (after deleting all rows for `replace`)."""
    try:
        with conn.begin_nested():
            if mode == "replace":
                conn.execute(text(f"DELETE FROM {q(spec.table)}"))
            return conn.execute(text(insert_sql(spec, columns, mode))).rowcount
    except DBAPIError as exc:
        if not hasattr(exc.orig, "diag"):
            raise
        row = None if mode == "replace" else failing_row(conn, spec, columns, mode)
        raise DatabaseRejected(explain(exc, row)) from exc


def failing_row(conn: Connection, spec: LayerSpec, columns: list[str], mode: str) -> int | None:
    """Bisect the staged rows (each try in a rolled-back savepoint) for the first one refused."""
    lo, hi = conn.execute(text(f"SELECT min(row_no), max(row_no) FROM {STAGE}")).one()
    if lo is None or not fails(conn, spec, columns, mode, lo, hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(conn, spec, columns, mode, lo, mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def fails(
    conn: Connection, spec: LayerSpec, columns: list[str], mode: str, lo: int, hi: int
) -> bool:
    """Whether inserting staged rows lo..hi is refused (always rolled back)."""
    nested = conn.begin_nested()
    try:
        conn.execute(text(insert_sql(spec, columns, mode, "WHERE row_no BETWEEN :lo AND :hi")),
                     {"lo": lo, "hi": hi})  # fmt: skip
        return False
    except DBAPIError:
        return True
    finally:
        nested.rollback()


def explain(exc: DBAPIError, row: int | None) -> str:
    """A readable Chinese message for a database error (constraint name, detail, row)."""
    diag = exc.orig.diag
    kind = SQLSTATE_HINTS.get(getattr(exc.orig, "sqlstate", None) or "", "数据错误")
    parts = [f"数据库拒绝了该文件（{kind}）"]
    if row is not None:
        parts.append(f"第 {row} 行")
    if diag.constraint_name:
        parts.append(f"约束 {diag.constraint_name}")
    parts.append(diag.message_primary or str(exc.orig).splitlines()[0])
    if diag.message_detail:
        parts.append(diag.message_detail)
    return "；".join(parts) + "。整个文件未导入。"
