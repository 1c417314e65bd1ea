"""The case filters every case analysis shares: time window, class, source and status (案件筛选).

One parameter list (`CASE_PARAMS`), one parser (`case_filter`) and one SQL fragment
(`CaseFilter.where`) with bound values, so the heat map, the hotspots, the emerging and recurring
analyses and the KPIs read the same cases for the same inputs. The user's areas are applied here
too, in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from analytics.contract import Param
from auth.accounts import User
from errors import BadRequest
from geodata import catalog
from geodata.areas import in_areas

OPEN_STATUS = "未结案"  # every status but 已结案 and 已作废
DONE_STATUSES = ("已结案", "已作废")
STATUS_CHOICES = (OPEN_STATUS, *catalog.CASE_STATUSES)
DEFAULT_DAYS = 365
MAX_DAYS = 3660

CASE_PARAMS = (
    Param("from", "开始日期", "date"),
    Param("to", "结束日期", "date"),
    Param("class", "案件类别代码前缀", "text"),
    Param("source", "案件来源", "choice", None, choices=catalog.CASE_SOURCES),
    Param("status", "案件状态", "choice", None, choices=STATUS_CHOICES),
)


@dataclass(frozen=True)
class CaseFilter:
    """Which cases an analysis reads: reported in [start, stop] (days, stop included), of a class
    prefix, a source and a status, inside the user's areas."""

    start: date
    stop: date
    prefix: str | None = None
    source: str | None = None
    status: str | None = None
    scope: tuple[str, ...] | None = None

    @property
    def days(self) -> int:
        """The window's length in days (both ends included)."""
        return (self.stop - self.start).days + 1

    def bounds(self) -> tuple[datetime, datetime]:
        """The window as [start, stop) instants (midnight of the city's clock)."""
        tz = ZoneInfo(catalog.CITY_TIMEZONE)
        return (datetime.combine(self.start, time(), tz),
                datetime.combine(self.stop + timedelta(days=1), time(), tz))  # fmt: skip

    def where(self, alias: str = "c") -> str:
        """The SQL condition on `case_record {alias}` (values bound by `bind`)."""
        return (
            f"{alias}.reported_at >= :f_start AND {alias}.reported_at < :f_stop"
            f" AND (CAST(:f_prefix AS text) IS NULL OR {alias}.event_class_code LIKE :f_prefix || '%'"
            f" OR {alias}.component_class_code LIKE :f_prefix || '%')"
            f" AND (CAST(:f_source AS text) IS NULL OR {alias}.source = :f_source)"
            f" AND (CAST(:f_status AS text) IS NULL OR {alias}.status = :f_status"
            f" OR (CAST(:f_status AS text) = :f_open AND {alias}.status <> ALL(CAST(:f_done AS text[]))))"
            f" AND (CAST(:f_scope AS text[]) IS NULL OR {in_areas(f'{alias}.geom', 'f_scope')})"
        )

    def bind(self) -> dict:
        """The bound values of `where`."""
        start, stop = self.bounds()
        return {"f_start": start, "f_stop": stop, "f_prefix": self.prefix,
                "f_source": self.source, "f_status": self.status, "f_open": OPEN_STATUS,
                "f_done": list(DONE_STATUSES),
                "f_scope": list(self.scope) if self.scope else None}  # fmt: skip


def city_today() -> date:
    """Today's date on the city's clock (catalog.CITY_TIMEZONE), whatever the server's zone."""
    return datetime.now(ZoneInfo(catalog.CITY_TIMEZONE)).date()


def window(params: dict, default_days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """The [from, to] window as dates (to included); default the `default_days` up to today."""
    start, stop = params.get("from"), params.get("to")
    stop = date.fromisoformat(stop) if stop else city_today()
    start = date.fromisoformat(start) if start else stop - timedelta(days=default_days - 1)
    if start > stop:
        raise BadRequest("from 不能晚于 to")
    if (stop - start).days >= MAX_DAYS:
        raise BadRequest(f"时间窗口最长 {MAX_DAYS} 天")
    return start, stop


def class_prefix(raw: str | None) -> str | None:
    """An event or component class code prefix (major or minor class) that exists, or None."""
    if not raw:
        return None
    known = {*catalog.EVENT_MAJOR, *catalog.EVENT_MINOR, *catalog.COMPONENT_MAJOR,
             *catalog.COMPONENT_MINOR}  # fmt: skip
    if raw not in known:
        raise BadRequest(
            f"class 必须是已知的事件或部件大类/小类代码（如 01、0102），不是 {raw[:10]}"
        )
    return raw


def case_filter(params: dict, user: User, default_days: int = DEFAULT_DAYS) -> CaseFilter:
    """The filter of parsed CASE_PARAMS values for a user (scope from the user's areas)."""
    start, stop = window(params, default_days)
    return CaseFilter(start, stop, class_prefix(params.get("class")), params.get("source"),
                      params.get("status"), tuple(user.scope) if user.scope else None)  # fmt: skip


def latest_case_day(conn: Connection, user: User) -> date | None:
    """The city-clock day of the latest case the user may see (where the panel's windows end)."""
    scope = list(user.scope) if user.scope else None
    return conn.execute(text(
        f"SELECT (max(c.reported_at) AT TIME ZONE :tz)::date FROM case_record c "
        f"WHERE CAST(:scope AS text[]) IS NULL OR {in_areas('c.geom', 'scope')}"),
        {"tz": catalog.CITY_TIMEZONE, "scope": scope}).scalar()  # fmt: skip
