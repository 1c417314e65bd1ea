"""Engine creation and the migrate-on-demand entry point."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text

from settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
REQUIRED_EXTENSIONS = ("postgis", "pg_trgm")


def make_engine(url: str, *, statement_timeout_ms: int = 30_000, **kwargs) -> Engine:
    """Create an engine whose sessions carry a statement timeout."""
    options = f"-c statement_timeout={int(statement_timeout_ms)}"
    return create_engine(
        url, pool_pre_ping=True, connect_args={"options": options}, future=True, **kwargs
    )


@cache
def engine_for(settings: Settings) -> Engine:
    """One engine per settings object (settings are frozen per process)."""
    return make_engine(
        settings.sqlalchemy_url(), statement_timeout_ms=settings.statement_timeout_ms
    )


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at our migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def ensure_extensions(engine: Engine) -> None:
    """Create PostGIS and pg_trgm when missing (needs a role allowed to do so)."""
    with engine.begin() as conn:
        for ext in REQUIRED_EXTENSIONS:
            conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {ext}"))


def migrate(engine: Engine, revision: str = "head") -> None:
    """Create the extensions and upgrade the schema to `revision`."""
    ensure_extensions(engine)
    command.upgrade(alembic_config(engine.url.render_as_string(hide_password=False)), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the schema to `revision`."""
    command.downgrade(alembic_config(engine.url.render_as_string(hide_password=False)), revision)


def is_migrated(engine: Engine) -> bool:
    """True when the schema has been created (the alembic version table exists)."""
    return inspect(engine).has_table("alembic_version")
