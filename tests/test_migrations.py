"""Migrations: upgrade from empty, downgrade to nothing and back; every geometry indexed in 4490."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from geodata.db import downgrade, make_engine, migrate
from geodata.models import Base

GEOMETRY_COLUMNS = text(
    "SELECT f_table_name, f_geometry_column, srid, type FROM geometry_columns "
    "WHERE f_table_schema = 'public' "
    "AND f_table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'public') ORDER BY 1, 2"
)
GIST_INDEXED = text(
    """
    SELECT t.relname, a.attname
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am am ON am.oid = c.relam AND am.amname = 'gist'
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
    """
)


@pytest.fixture()
def empty_engine(scratch):
    """An engine on a brand-new empty database."""
    eng = make_engine(scratch.create("onemap_migr"))
    yield eng
    eng.dispose()


def model_tables() -> set[str]:
    """Table names declared by the ORM models."""
    return set(Base.metadata.tables)


def test_upgrade_downgrade_upgrade(empty_engine):
    migrate(empty_engine)
    assert model_tables() <= set(inspect(empty_engine).get_table_names())
    downgrade(empty_engine, "base")
    left = set(inspect(empty_engine).get_table_names()) & model_tables()
    assert left == set()
    migrate(empty_engine)
    assert model_tables() <= set(inspect(empty_engine).get_table_names())
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM component_class")).scalar() >= 80
        assert conn.execute(text("SELECT count(*) FROM event_class")).scalar() > 30


def test_every_geometry_is_4490_and_gist_indexed(engine):
    with engine.connect() as conn:
        columns = conn.execute(GEOMETRY_COLUMNS).all()
        indexed = {(r.relname, r.attname) for r in conn.execute(GIST_INDEXED)}
    assert len(columns) >= 18
    for table, column, srid, _kind in columns:
        assert srid == 4490, (table, column)
        assert (table, column) in indexed, f"{table}.{column} has no GiST index"


def test_schema_matches_models(engine):
    """The migrated schema has every column the models declare (no drift)."""
    insp = inspect(engine)
    for name, table in Base.metadata.tables.items():
        present = {c["name"] for c in insp.get_columns(name)}
        assert {c.name for c in table.columns} <= present, name


def test_every_table_lives_in_the_models(engine):
    """Alembic autogenerate finds no table the models lack, nor one they have that is missing."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from geoalchemy2 import alembic_helpers

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": alembic_helpers.include_object}
        )
        diffs = compare_metadata(context, Base.metadata)
    tables = [(d[0], d[1].name) for d in diffs if isinstance(d, tuple) and "table" in d[0]]
    assert tables == []
