"""What every batch ingest shares (停车读数, 告警): the time of a row and the `partial` switch."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from errors import BadRequest
from geodata import catalog

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
HAS_TIME = re.compile(r"^\s*\d{4}-?\d{2}-?\d{2}[T ]\d{2}")  # a date alone is not a time of day


def parse_instant(value, name: str, label: str) -> datetime:
    """An ISO 8601 time with a time of day, aware (no zone means the city clock), not before
    2000; ValueError with the reason, naming the field as `label`（`name`）."""
    if not isinstance(value, str):
        raise ValueError(f"{label}（{name}）必须是 ISO 8601 文本，如 2026-12-01T08:00:00+08:00")
    try:
        if not HAS_TIME.match(value):
            raise ValueError
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{label}不是带时刻的 ISO 8601 格式（{name}={value[:40]}）") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(catalog.CITY_TIMEZONE))
    if at < EARLIEST:
        raise ValueError(f"{label}早于 2000 年（{name}={value[:40]}）")
    return at


def parse_partial(value) -> bool:
    """The `partial` switch from a query string or a JSON body (absent: False)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", ""):
        return False
    raise BadRequest("partial 只能是 true 或 false")
