"""Command line of the loaders: `python -m loaders <command> …`."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from geodata.db import engine_for, is_migrated, migrate
from loaders.boundaries import load_shandong
from settings import DatabaseNotConfigured, Settings


def prepared_engine(settings: Settings) -> Engine:
    """The configured engine, with extensions created and the schema migrated to head."""
    engine = engine_for(settings)
    migrate(engine)
    return engine


def database_is_empty(engine: Engine) -> bool:
    """True when no administrative area has been loaded yet."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM admin_area)")).scalar()


def cmd_migrate(args, settings: Settings) -> int:
    """Create the extensions and upgrade the schema."""
    engine = engine_for(settings)
    fresh = not is_migrated(engine)
    migrate(engine)
    print("数据库已创建并迁移到最新版本" if fresh else "数据库已是最新版本")
    return 0


def cmd_boundaries(args, settings: Settings) -> int:
    """Load the Shandong city and district boundaries."""
    engine = prepared_engine(settings)
    with engine.begin() as conn:
        n = load_shandong(conn)
    print(f"已导入山东省行政区划边界 {n} 个")
    return 0


def cmd_bootstrap(args, settings: Settings) -> int:
    """Migrate, then load the starting data when the database is empty (used by `make run`)."""
    engine = prepared_engine(settings)
    if database_is_empty(engine):
        return cmd_boundaries(args, settings)
    print("数据库已有数据，跳过初始数据导入")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="python -m loaders", description="城管一张图 数据工具")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="创建扩展并迁移数据库").set_defaults(func=cmd_migrate)
    sub.add_parser("boundaries", help="导入山东省市、区县边界").set_defaults(func=cmd_boundaries)
    sub.add_parser("bootstrap", help="迁移；数据库为空时导入初始数据").set_defaults(
        func=cmd_bootstrap
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; configuration errors end with a message, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, Settings())
    except DatabaseNotConfigured as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(f"错误：无法连接数据库：{exc.orig}", file=sys.stderr)
        return 2
