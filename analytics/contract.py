"""The contract every analysis follows, and the one place that runs them.

An analysis declares an id, a Chinese title, typed parameters (defaults and limits), its output
kind (layer, table or chart), the tables its result depends on, and a `run(conn, params, user)`
plain function. `run_analysis` checks the role once, validates the raw parameters once into 400
errors, applies nothing else by itself (the analysis scopes its SQL with the user's areas) and
caches expensive results keyed by the data version of their tables, like the tile aggregates.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import shapely
import shapely.geometry
from sqlalchemy import Connection

from auth.access import check_analytics
from auth.accounts import User
from errors import BadRequest, NotFound
from geodata.areas import area_code
from geodata.versions import data_version
from params import parse_choice, parse_float, parse_int, text_value

OUTPUTS = ("layer", "table", "chart")
MAX_POLYGON_VERTICES = 2000


def parse_day(raw, name: str) -> str:
    """A YYYY-MM-DD date between 1900 and 2100 (kept as text), or 400."""
    from datetime import date

    try:
        day = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None or not 1900 <= day.year <= 2100:
        raise BadRequest(f"参数 {name} 必须是 1900–2100 年间的日期 YYYY-MM-DD")
    return raw


def parse_polygon(raw, name: str):
    """A GeoJSON Polygon or MultiPolygon (object or JSON text, lon/lat, valid, bounded), or 400."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadRequest(f"参数 {name} 必须是 GeoJSON 多边形") from None
    geom = raw.get("geometry", raw) if isinstance(raw, dict) else None
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        raise BadRequest(f"参数 {name} 必须是 GeoJSON 多边形（Polygon 或 MultiPolygon）")
    try:
        shape = shapely.geometry.shape(geom)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise BadRequest(f"参数 {name} 不是有效的 GeoJSON 多边形") from None
    minx, miny, maxx, maxy = shape.bounds if not shape.is_empty else (0, 0, 0, 0)
    if (
        shape.is_empty
        or not shape.is_valid
        or shapely.get_num_coordinates(shape) > MAX_POLYGON_VERTICES
    ):
        raise BadRequest(
            f"参数 {name} 必须是有效、非空且不超过 {MAX_POLYGON_VERTICES} 个顶点的多边形"
        )
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest(f"参数 {name} 的坐标必须是经纬度")
    return shape


@dataclass(frozen=True)
class Param:
    """One typed parameter of an analysis."""

    name: str
    title: str
    kind: str  # int | float | choice | area | text | date | geometry (GeoJSON polygon, lon/lat)
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False

    def parse(self, raw) -> Any:
        """The typed value of a raw input (text or JSON), or 400."""
        if raw is None or raw == "":
            if self.required:
                raise BadRequest(f"缺少参数 {self.name}（{self.title}）")
            return self.default
        if self.kind == "int":
            return parse_int(raw, self.name, int(self.low), int(self.high))
        if self.kind == "float":
            return parse_float(raw, self.name, self.low, self.high)
        if self.kind == "choice":
            return parse_choice(raw, self.name, self.choices)
        if self.kind == "date":
            return parse_day(raw, self.name)
        if self.kind == "geometry":
            return parse_polygon(raw, self.name)
        if self.kind == "area":
            return area_code(raw, f"参数 {self.name}")
        return text_value(raw, self.name)

    def describe(self) -> dict:
        """The parameter as JSON for clients (forms are built from it)."""
        default = None if self.kind == "geometry" else self.default
        return {"name": self.name, "title": self.title, "kind": self.kind, "default": default,
                "min": self.low, "max": self.high, "choices": list(self.choices),
                "required": self.required}  # fmt: skip


@dataclass(frozen=True)
class Analysis:
    """One analysis: metadata, parameters and the function that computes it."""

    id: str
    title: str
    description: str
    output: str  # layer | table | chart
    params: tuple[Param, ...]
    tables: tuple[str, ...]  # its result changes only when one of these changes
    run: Callable[[Connection, dict, User], dict]
    cached: bool = False  # keep results per data version (expensive analyses)
    extra: dict = field(default_factory=dict)

    def parse(self, raw: Mapping) -> dict:
        """All parameters typed and within limits; unknown names are refused."""
        unknown = sorted(set(raw) - {p.name for p in self.params})
        if unknown:
            allowed = ", ".join(p.name for p in self.params) or "无"
            raise BadRequest(f"分析 {self.id} 没有参数 {unknown[0][:40]}（可用：{allowed}）")
        return {p.name: p.parse(raw.get(p.name)) for p in self.params}

    def describe(self) -> dict:
        """The analysis as JSON for clients."""
        return {"id": self.id, "title": self.title, "description": self.description,
                "output": self.output, "params": [p.describe() for p in self.params]}  # fmt: skip


ANALYSES: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    """Add an analysis to the registry (ids are unique, outputs known)."""
    if analysis.id in ANALYSES:
        raise ValueError(f"duplicate analysis id {analysis.id}")
    if analysis.output not in OUTPUTS:
        raise ValueError(f"unknown output kind {analysis.output}")
    ANALYSES[analysis.id] = analysis
    return analysis


def find_analysis(analysis_id) -> Analysis:
    """The analysis of that id, or 404."""
    found = ANALYSES.get(analysis_id) if isinstance(analysis_id, str) else None
    if found is None:
        raise NotFound(f"没有分析 {str(analysis_id)[:40]}")
    return found


class Memo:
    """A small thread-safe LRU for intermediate results (keys include the data version)."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        """The remembered value, marked as recently used (None if absent)."""
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        """Remember a value, forgetting the least recently used past the limit."""
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.max_items:
                self.items.popitem(last=False)


class ResultCache(Memo):
    """LRU of analysis results keyed by analysis, parameters, scope and data version."""

    def __init__(self, max_items: int = 256):
        super().__init__(max_items)


def result_cache(rt) -> ResultCache:
    """The analysis results cache held by an app's runtime (shared by its API and its pages)."""
    return rt.cache("analytics", ResultCache)


def run_analysis(conn: Connection, user: User, analysis_id, raw: Mapping,
                 cache: ResultCache | None = None) -> dict:  # fmt: skip
    """Check the role, parse the parameters, run (or reuse) the analysis; a JSON-ready answer."""
    check_analytics(user)
    analysis = find_analysis(analysis_id)
    values = analysis.parse(raw)
    version = data_version(conn, analysis.tables)
    key = json.dumps(
        [analysis.id, values, user.scope, user.role.name, version],
        default=lambda v: v.wkt if hasattr(v, "wkt") else str(v),
    )
    result = cache.get(key) if cache is not None and analysis.cached else None
    if result is None:
        result = analysis.run(conn, values, user)
        if cache is not None and analysis.cached:
            cache.put(key, result)
    shown = {
        k: (shapely.geometry.mapping(v) if hasattr(v, "wkt") else v) for k, v in values.items()
    }
    return {"analysis": analysis.id, "title": analysis.title, "output": analysis.output,
            "params": shown, "data_version": version, "result": result}  # fmt: skip
