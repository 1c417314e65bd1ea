"""Turn source values into typed target values: value maps, constants, type coercion, defaults."""

from __future__ import annotations

import math
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, Column, Date, DateTime, Float, Integer, String

from loaders.importer.mapping import DEFAULT_TIMEZONE, Mapping
from loaders.importer.report import Issue
from loaders.importer.specs import LayerSpec

TRUE = {"true", "t", "1", "yes", "y", "是", "真"}
FALSE = {"false", "f", "0", "no", "n", "否", "假"}


def is_empty(value) -> bool:
    """None, NaN, NaT and blank text count as empty."""
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def is_text_or_missing(value) -> bool:
    """Text, None or NaN (a missing value of a pandas text column): what bulk conversion takes."""
    return (
        isinstance(value, str) or value is None or (isinstance(value, float) and math.isnan(value))
    )


def is_text_column(values: list) -> bool:
    """Whether every value is text, None or NaN (the type set first: one C-level pass)."""
    return set(map(type, values)) <= {str, type(None)} or all(map(is_text_or_missing, values))


def as_text(value) -> str:
    """Text of a value; integral floats (shapefile numbers) lose their '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class Coercer:
    """Converts raw values to the Python type of one target column."""

    def __init__(self, column: Column, mapping: Mapping):
        self.column_type = column.type
        self.tz = ZoneInfo(str(mapping.option("timezone", DEFAULT_TIMEZONE)))
        self.datetime_format = mapping.option("datetime_format")
        self.date_format = mapping.option("date_format")
        self.cache: dict = {}

    def __call__(self, value):
        """The typed value; raises ValueError with a Chinese message when impossible."""
        if is_empty(value):
            return None
        kind = self.column_type
        if isinstance(kind, Boolean):
            return self.boolean(value)
        if isinstance(kind, Integer):
            return self.integer(value)
        if isinstance(kind, Float):
            return float(as_text(value))
        if isinstance(kind, DateTime):
            return self.cached(value, self.timestamp)
        if isinstance(kind, Date):
            return self.cached(value, self.day)
        return self.text(value, kind)

    def column(self, values: list) -> tuple[list, list[tuple[int, str]]]:
        """Convert a whole column: typed values and (index, message) of the bad ones."""
        all_text = is_text_column(values)
        if all_text and isinstance(self.column_type, String):
            return self.texts(values)
        if all_text and isinstance(self.column_type, DateTime) and self.datetime_format:
            return self.timestamps(values)
        if all_text:
            return self.distinct(values)
        return self.each(values)

    def each(self, values: list) -> tuple[list, list[tuple[int, str]]]:
        """Convert value by value: typed values and (index, message) of the bad ones."""
        out, errors = [], []
        for i, value in enumerate(values):
            try:
                out.append(self(value))
            except (ValueError, TypeError, OverflowError) as exc:
                out.append(None)
                errors.append((i, str(exc)))
        return out, errors

    def texts(self, values: list) -> tuple[list, list[tuple[int, str]]]:
        """A text column in bulk: the same trimming and length check as `text`, without per-value calls."""
        trimmed = [x.strip() if isinstance(x, str) else "" for x in values]
        out = [t or None for t in trimmed]
        limit = self.column_type.length
        if limit is None:
            return out, []
        errors = [
            (i, f"超过 {limit} 个字符：{t[:40]}") for i, t in enumerate(trimmed) if len(t) > limit
        ]
        for i, _ in errors:
            out[i] = None
        return out, errors

    def distinct(self, values: list) -> tuple[list, list[tuple[int, str]]]:
        """A text column converted once per distinct value (dates and codes repeat a lot)."""
        unique = list(dict.fromkeys(values))
        typed, bad = self.each(unique)
        result = dict(zip(unique, typed, strict=True))
        messages = {unique[i]: message for i, message in bad}
        errors = [(i, messages[x]) for i, x in enumerate(values) if x in messages] if bad else []
        return [result[x] for x in values], errors

    def timestamps(self, values: list) -> tuple[list, list[tuple[int, str]]]:
        """Vectorised date-time parsing with the mapping's format (large CSV files)."""
        text = pd.Series(values, dtype=object).str.strip()
        parsed = pd.to_datetime(text, format=self.datetime_format, errors="coerce")
        ambiguous = np.ones(len(parsed), dtype=bool)  # repeated autumn hour: the first (DST) one
        local = parsed.dt.tz_localize(self.tz, ambiguous=ambiguous, nonexistent="shift_forward")
        bad = local.isna() & text.fillna("").ne("")
        errors = [
            (int(i), f"无法按 {self.datetime_format} 解析：{text[i]}") for i in np.flatnonzero(bad)
        ]
        return [None if pd.isna(x) else x.to_pydatetime() for x in local], errors

    def cached(self, value, func):
        """Memoise conversions of repeated values (dates repeat a lot)."""
        key = value if isinstance(value, str) else repr(value)
        if key not in self.cache:
            self.cache[key] = func(value)
        return self.cache[key]

    def boolean(self, value) -> bool:
        """true/false, 1/0, yes/no, 是/否."""
        if isinstance(value, bool):
            return value
        text = as_text(value).lower()
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise ValueError(f"不是布尔值：{value}")

    def integer(self, value) -> int:
        """An integer; '12.0' is accepted, '12.5' is not."""
        number = float(as_text(value))
        if not number.is_integer():
            raise ValueError(f"不是整数：{value}")
        return int(number)

    def timestamp(self, value) -> datetime:
        """A time zone aware date-time; naive values are in the mapping's time zone."""
        if isinstance(value, pd.Timestamp | datetime):
            moment = pd.Timestamp(value).to_pydatetime()
        elif self.datetime_format:
            moment = datetime.strptime(as_text(value), self.datetime_format)
        else:
            moment = datetime.fromisoformat(as_text(value).replace("/", "-"))
        return moment if moment.tzinfo else moment.replace(tzinfo=self.tz)

    def day(self, value) -> date:
        """A calendar date."""
        if isinstance(value, datetime | pd.Timestamp):
            return pd.Timestamp(value).date()
        if isinstance(value, date):
            return value
        text = as_text(value)
        if self.date_format:
            return datetime.strptime(text, self.date_format).date()
        return date.fromisoformat(text.replace("/", "-")[:10])

    def text(self, value, kind: String) -> str:
        """Trimmed text no longer than the column allows."""
        text = as_text(value)
        if kind.length is not None and len(text) > kind.length:
            raise ValueError(f"超过 {kind.length} 个字符：{text[:40]}")
        return text


def mapped_raw(frame: pd.DataFrame, target: str, source: str | None, mapping: Mapping) -> list:
    """Raw values of one target: the source column or the constant, through the value map."""
    n = len(frame)
    raw = frame[source].tolist() if source is not None else [mapping.constants[target]] * n
    table = mapping.values.get(target)
    if not table:
        return raw
    default = table.get("*")
    out = []
    for value in raw:
        key = "" if is_empty(value) else as_text(value)
        out.append(table.get(key, default if default is not None and key else value))
    return out


def convert(frame: pd.DataFrame, resolved: dict[str, str], mapping: Mapping,
            spec: LayerSpec) -> tuple[dict[str, list], list[tuple[int, str, str]]]:  # fmt: skip
    """Typed columns {target: values} and the (row index, target, message) of bad values."""
    columns, errors = {}, []
    targets = [*resolved, *(t for t in mapping.constants if t not in resolved)]
    for target in targets:
        raw = mapped_raw(frame, target, resolved.get(target), mapping)
        columns[target], bad = Coercer(spec.column(target), mapping).column(raw)
        errors += [(i, target, f"{target}：{message}") for i, message in bad]
    return columns, errors


def server_default(spec: LayerSpec, target: str, mapping: Mapping):
    """The column's server default as a Python value (used when a row leaves it empty)."""
    default = spec.column(target).server_default
    if default is None:
        return None
    text = getattr(default.arg, "text", default.arg)
    return Coercer(spec.column(target), mapping)(str(text).strip("'"))


def fill_defaults(rows: list[dict], spec: LayerSpec, mapping: Mapping) -> None:
    """Empty values of NOT NULL columns with a server default get that default."""
    for target in rows[0] if rows else ():
        column = spec.column(target)
        if column.nullable or column.server_default is None:
            continue
        value = server_default(spec, target, mapping)
        for row in rows:
            if row[target] is None:
                row[target] = value


def issue_for_bad_value(i: int, key, message: str) -> Issue:
    """A bad_value issue for row index i (0-based)."""
    return Issue(i + 1, key, "bad_value", message)
