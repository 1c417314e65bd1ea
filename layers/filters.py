"""Filters on a layer as small objects that render their own SQL (tipg's `cql_where` shape).

A filter is built from untrusted text by `parse_filters` (registry fields only, values typed and
checked against the field's code list) or by access control (`InAreas` for a user's scope). Each
one writes a WHERE part over the alias `t` and binds its values under a key it is given, so values
never enter the SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from errors import BadRequest
from geodata.areas import area_code, in_areas
from layers.registry import Field, Layer


def q(name: str) -> str:
    """Quote an identifier taken from the registry."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class ValueIn:
    """The field equals one of the values (a code list filter)."""

    field: Field
    values: tuple

    def where(self, layer: Layer, key: str, params: dict) -> str:
        """SQL part, with the values bound under `key`."""
        params[key] = list(self.values)
        return f"t.{q(self.field.name)} = ANY(:{key})"

    def token(self) -> str:
        """A stable text form for cache keys."""
        return f"{self.field.name}:in:{','.join(map(str, self.values))}"


@dataclass(frozen=True)
class Bound:
    """The field is at or after (`from`) or before (`to`, whole days included) a value."""

    field: Field
    op: str  # from | to
    value: date | datetime

    def where(self, layer: Layer, key: str, params: dict) -> str:
        """SQL part, with the value bound under `key`."""
        value = self.value
        if self.op == "to" and type(value) is date:
            value = value + timedelta(days=1)  # `_to=YYYY-MM-DD` includes that whole day
        params[key] = value
        return f"t.{q(self.field.name)} {'>=' if self.op == 'from' else '<'} :{key}"

    def token(self) -> str:
        """A stable text form for cache keys."""
        return f"{self.field.name}:{self.op}:{self.value.isoformat()}"


@dataclass(frozen=True)
class InAreas:
    """Objects inside administrative areas: the map's area focus, or a user's scope."""

    codes: tuple[str, ...]
    purpose: str = "area"  # area (asked for) | scope (access control, never from a request)

    def where(self, layer: Layer, key: str, params: dict) -> str:
        """SQL part, with the codes bound under `key`."""
        params[key] = list(self.codes)
        return in_areas("t.geom", key, polygonal=layer.geometry == "polygon")

    def token(self) -> str:
        """A stable text form for cache keys."""
        return f"{self.purpose}:{','.join(self.codes)}"


Filter = ValueIn | Bound | InAreas


def where_parts(
    layer: Layer, filters: list[Filter] | tuple[Filter, ...], params: dict
) -> list[str]:
    """WHERE parts for the layer's fixed condition and the filters (params filled in)."""
    parts = [f"({layer.where})"] if layer.where else []
    parts += [f.where(layer, f"f{i}", params) for i, f in enumerate(filters)]
    return parts


def area_filter(raw: str) -> InAreas:
    """Keep only objects inside one administrative area (6, 9 or 12-digit code), or 400."""
    return InAreas((area_code(raw.strip()),))


def scope_filter(codes: tuple[str, ...]) -> InAreas:
    """Limit to a user's districts/streets (access control; never from request parameters)."""
    return InAreas(tuple(codes), "scope")


def parse_filters(layer: Layer, args: dict[str, str], *, ignore: set[str]) -> list[Filter]:
    """Validate text parameters against the layer's filterable fields (400 on anything else)."""
    filters: list[Filter] = []
    for key, raw in sorted(args.items()):
        if key in ignore:
            continue
        if not isinstance(raw, str):
            raise BadRequest(f"筛选参数 {key} 必须是文本")
        if key == "area":
            filters.append(area_filter(raw))
            continue
        name, op = split_range(key)
        fld = layer.field(name)
        if fld is None or not fld.filterable or (op != "in" and not fld.range):
            allowed = ", ".join(f.name for f in layer.filterable) or "无"
            raise BadRequest(f"图层 {layer.id} 不支持筛选参数 {key}（可用：{allowed}）")
        if op == "in" and fld.kind in ("date", "datetime"):
            raise BadRequest(f"日期字段 {fld.name} 请用 {fld.name}_from / {fld.name}_to 筛选")
        if op == "in":
            filters.append(ValueIn(fld, parse_values(fld, raw)))
        else:
            filters.append(Bound(fld, op, parse_date(fld, raw.strip())))
    return filters


def split_range(key: str) -> tuple[str, str]:
    """`reported_at_from` -> (reported_at, from); plain names are equality filters."""
    for suffix in ("_from", "_to"):
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix[1:]
    return key, "in"


EARLIEST, LATEST = date(1900, 1, 1), date(2100, 12, 31)


def parse_date(fld: Field, raw: str) -> date | datetime:
    """A date (YYYY-MM-DD) or datetime (ISO 8601) within 1900–2100, or 400."""
    try:
        value = datetime.fromisoformat(raw) if "T" in raw else date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"筛选参数 {fld.name} 需要 YYYY-MM-DD 格式的日期") from None
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST <= day <= LATEST:
        raise BadRequest(f"筛选参数 {fld.name} 的日期必须在 1900 至 2100 年之间")
    return value


def parse_values(fld: Field, raw: str) -> tuple:
    """Comma-separated values of an equality filter, typed by the field's kind."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise BadRequest(f"筛选参数 {fld.name} 不能为空")
    if fld.kind == "bool":
        if any(p not in ("true", "false") for p in parts):
            raise BadRequest(f"筛选参数 {fld.name} 只能是 true 或 false")
        return tuple(p == "true" for p in parts)
    if fld.values and any(p not in fld.values for p in parts):
        bad = next(p for p in parts if p not in fld.values)
        raise BadRequest(f"筛选参数 {fld.name} 的取值 {bad[:40]} 无效")
    return tuple(parts)
