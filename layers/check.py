"""Start-up check: every registry layer's source and fields exist in the database."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from geodata.layer_sql import probe_sql
from layers.registry import LAYERS, Layer


class RegistryMismatch(RuntimeError):
    """The registry names a table or column the database lacks."""


def check_registry(engine: Engine, layers: tuple[Layer, ...] = LAYERS) -> None:
    """Probe each layer with a LIMIT 0 query; raise listing every layer that fails."""
    problems = []
    with engine.connect() as conn:
        for layer in layers:
            try:
                with conn.begin_nested():
                    conn.execute(text(probe_sql(layer)))
            except ProgrammingError as exc:
                problems.append(f"{layer.id}: {exc.orig}".strip())
    if problems:
        raise RegistryMismatch("图层注册表与数据库不一致：\n" + "\n".join(problems))
