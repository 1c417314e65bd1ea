"""Start-up check: every registry layer's source and fields exist in the database, with the kind
the registry says, and every filter's code list agrees with the database's own rule for it."""

from __future__ import annotations

import re

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import ProgrammingError

from layers.registry import LAYERS, Field, Layer
from layers.sql import probe_sql

# PostgreSQL type names by registry field kind.
KIND_TYPES = {
    "text": {"text", "varchar", "bpchar", "char", "name"},
    "int": {"int2", "int4", "int8"},
    "float": {"float4", "float8", "numeric"},
    "bool": {"bool"},
    "date": {"date"},
    "datetime": {"timestamptz", "timestamp"},
}
CHECKS = text(
    "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
    "WHERE c.contype = 'c' AND t.relname = ANY(:tables)"
)
FOREIGN_CODES = text(
    """
    SELECT r.relname FROM pg_constraint c
    JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND t.relname = ANY(:tables) AND a.attname = :column
    """
)
OVERVIEWS = ("counts", "heat")
LITERAL = re.compile(r"'((?:[^']|'')*)'")


class RegistryMismatch(RuntimeError):
    """The registry names a table or column the database lacks, or disagrees with it."""


def check_registry(engine: Engine, layers: tuple[Layer, ...] = LAYERS) -> None:
    """Probe each layer; raise listing every missing source, wrong kind or drifted code list."""
    problems = []
    with engine.connect() as conn:
        for layer in layers:
            try:
                with conn.begin_nested():
                    types = column_types(conn, layer)
            except ProgrammingError as exc:
                problems.append(f"{layer.id}: {exc.orig}".strip())
                continue
            problems += kind_problems(layer, types) + overview_problems(layer)
            checks = [d for (d,) in conn.execute(CHECKS, {"tables": list(layer.tables)})]
            problems += [
                p for f in layer.fields if f.values for p in value_problems(conn, layer, f, checks)
            ]
    if problems:
        raise RegistryMismatch("图层注册表与数据库不一致：\n" + "\n".join(problems))


def overview_problems(layer: Layer) -> list[str]:
    """The heat overview reads the cases (analytics/heat.py): only a layer over them may have it."""
    if layer.overview not in OVERVIEWS:
        return [f"{layer.id}: overview {layer.overview} 不是 {', '.join(OVERVIEWS)} 之一"]
    if layer.overview == "heat" and layer.tables != ("case_record",):
        return [f"{layer.id}: 热力概览只适用于案件图层（tables = case_record）"]
    return []


def column_types(conn: Connection, layer: Layer) -> dict[str, str]:
    """Type name of each column of the layer's probe query (LIMIT 0: reads no rows)."""
    result = conn.execute(text(probe_sql(layer)))
    oids = {d.name: d.type_code for d in result.cursor.description}
    names = dict(conn.execute(text("SELECT oid, typname FROM pg_type WHERE oid = ANY(:o)"),
                              {"o": list(set(oids.values()))}).all())  # fmt: skip
    return {column: names.get(oid, "?") for column, oid in oids.items()}


def kind_problems(layer: Layer, types: dict[str, str]) -> list[str]:
    """Fields whose database type does not fit the registry's kind."""
    return [f"{layer.id}.{f.name}: 注册为 {f.kind}，数据库类型为 {types.get(f.name)}"
            for f in layer.fields if types.get(f.name) not in KIND_TYPES[f.kind]]  # fmt: skip


def allowed_by_checks(checks: list[str], column: str) -> set[str] | None:
    """The values one of the CHECK definitions allows for the column, if one lists them."""
    pattern = re.compile(rf"\b{re.escape(column)}\b\)*(?:::[\w ]+)?\)* (?:= ANY|IN) \(")
    for definition in checks:
        match = pattern.search(definition)
        if match:
            tail = definition[match.end() :]
            listed = tail[: tail.find(")")] if "ARRAY[" not in tail[:12] else tail[: tail.find("]")]
            return {v.replace("''", "'") for v in LITERAL.findall(listed)}
    return None


def value_problems(conn: Connection, layer: Layer, fld: Field, checks: list[str]) -> list[str]:
    """A filter code list that differs from the CHECK list, or names codes the code table lacks."""
    allowed = allowed_by_checks(checks, fld.name)
    if allowed is not None and allowed != set(fld.values):
        return [
            f"{layer.id}.{fld.name}: 筛选取值 {sorted(set(fld.values) ^ allowed)} 与数据库约束不一致"
        ]
    code_table = conn.execute(FOREIGN_CODES, {"tables": list(layer.tables), "column": fld.name})
    for (table,) in code_table:
        codes = set(conn.execute(text(f'SELECT code FROM "{table}"')).scalars())
        missing = sorted(set(fld.values) - codes)
        if missing:
            return [f"{layer.id}.{fld.name}: 代码 {missing[:5]} 不在 {table} 中"]
    return []
