"""Row checks done before anything reaches the database: fields, codes, dates, geometry, position,
duplicates within the file and rows stacked on one coordinate."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon

from loaders.importer.report import REASONS, REJECT, Issue
from loaders.importer.specs import LayerSpec

Problems = list[tuple[str, str]]  # (machine code, detail)

SINGLE = {"POINT": Point, "LINESTRING": LineString, "POLYGON": Polygon}
MULTI = {"MULTIPOINT": (MultiPoint, Point), "MULTILINESTRING": (MultiLineString, LineString),
         "MULTIPOLYGON": (MultiPolygon, Polygon)}  # fmt: skip
TYPE_ID = {"POINT": 0, "LINESTRING": 1, "POLYGON": 3, "MULTIPOINT": 4, "MULTILINESTRING": 5,
           "MULTIPOLYGON": 6}  # fmt: skip
FAMILY = {"Point": "point", "MultiPoint": "point", "LineString": "line",
          "MultiLineString": "line", "Polygon": "polygon", "MultiPolygon": "polygon"}  # fmt: skip
CASE_CODE = re.compile(r"^[0-9A-Za-z_-]{4,32}$")
COMPONENT_CODE = re.compile(r"[0-9]{16,17}")
ADMIN_CODE_LENGTH = {"city": 6, "district": 6, "street": 9, "community": 12}


# --- derived fields -------------------------------------------------------------------------


def component_class_of(code: str | None) -> str | None:
    """Class digits of a 16-digit (4-digit class) or 17-digit (5-digit class) component code."""
    if not code or not code.isdigit() or len(code) not in (16, 17):
        return None
    return code[6 : len(code) - 6]


DERIVE: dict[str, Callable[[dict], object]] = {
    "community_of_grid": lambda r: r["code"][:12] if r.get("code") else None,
    "class_of_component": lambda r: component_class_of(r.get("code")),
    "kind_of_case": lambda r: ("事件" if r.get("event_class_code")
                               else "部件" if r.get("component_class_code") else None),
}  # fmt: skip


def derive(rows: list[dict], spec: LayerSpec) -> None:
    """Fill derivable empty fields (grid community from its code, a case's kind from its class)."""
    for target, rule in spec.derive.items():
        func = DERIVE[rule]
        for row in rows:
            if row.get(target) is None:
                row[target] = func(row)


# --- code formats ---------------------------------------------------------------------------


def check_component(row: dict) -> Problems:
    """16/17 digits whose class digits equal the row's class code."""
    code, cls = row.get("code") or "", row.get("class_code") or ""
    if not COMPONENT_CODE.fullmatch(code):
        return [("bad_code", f"部件编码应为 16 或 17 位数字：{code}")]
    if cls and component_class_of(code) != cls:
        return [("class_mismatch", f"部件编码 {code} 的类别位与类别 {cls} 不一致")]
    return []


def check_unit_grid(row: dict) -> Problems:
    """15 (or the older 14) digits starting with the community code."""
    code, community = row.get("code") or "", row.get("community_code") or ""
    if not re.fullmatch(r"[0-9]{14,15}", code):
        return [("bad_code", f"单元网格编码应为 15 位（或旧标准 14 位）数字：{code}")]
    if community and code[:12] != community:
        return [("community_mismatch", f"网格编码 {code} 不以社区编码 {community} 开头")]
    return []


def check_case(row: dict) -> Problems:
    """Case code format and kind/class consistency."""
    code, kind = row.get("code") or "", row.get("kind")
    if not CASE_CODE.fullmatch(code):
        return [("bad_code", f"案件编号应为 4–32 位字母、数字、-、_：{code}")]
    event, component = row.get("event_class_code"), row.get("component_class_code")
    if (kind == "事件" and (not event or component)) or (
        kind == "部件" and (not component or event)
    ):
        return [("class_mismatch", f"{kind}案件应只填 {'事件' if kind == '事件' else '部件'}类别")]
    if (row.get("rework_count") or 0) < 0:
        return [("bad_value", f"返工次数 rework_count 不能为负数：{row['rework_count']}")]
    return []


def check_admin(row: dict) -> Problems:
    """Code length by level and parent prefix."""
    code, level, parent = row.get("code") or "", row.get("level"), row.get("parent_code")
    length = ADMIN_CODE_LENGTH.get(level)
    if length and not re.fullmatch(f"[0-9]{{{length}}}", code):
        return [("bad_code", f"{level} 级行政区划编码应为 {length} 位数字：{code}")]
    prefix = 4 if level == "district" else len(parent or "")
    if parent and level != "city" and code[:prefix] != parent[:prefix]:
        return [("parent_mismatch", f"编码 {code} 与上级 {parent} 不一致")]
    return []


CODE_CHECKS = {"component": check_component, "unit_grid": check_unit_grid, "case": check_case,
               "admin": check_admin}  # fmt: skip


# --- fields and dates -----------------------------------------------------------------------


def check_fields(row: dict, spec: LayerSpec, required: tuple[str, ...]) -> Problems:
    """Required fields present and code-list fields within their list."""
    problems = [("missing_field", f"缺少 {f}") for f in required if row.get(f) is None]
    for name, allowed in spec.choices.items():
        value = row.get(name)
        if value is not None and value not in allowed:
            problems.append(("bad_value", f"{name} 应为 {'/'.join(allowed)} 之一：{value}"))
    return problems


def check_dates(row: dict, spec: LayerSpec) -> Problems:
    """Stages in order (each recorded stage no earlier than the previous recorded one)."""
    problems, last = [], None
    for stage in spec.stages:
        value = row.get(stage)
        if value is None:
            continue
        if last is not None and value < last[1]:
            problems.append(("date_order", f"{stage} {value} 早于 {last[0]} {last[1]}"))
        last = (stage, value)
    for later, earlier in spec.not_before:
        a, b = row.get(later), row.get(earlier)
        if a is not None and b is not None and a < b:
            problems.append(("date_order", f"{later} {a} 早于 {earlier} {b}"))
    return problems


def row_problems(rows: list[dict], spec: LayerSpec) -> list[Problems]:
    """Field, code and date problems of every row."""
    required = tuple(f for f in spec.required() if f in (rows[0] if rows else {}))
    code_check = CODE_CHECKS.get(spec.code_check or "", lambda row: [])
    return [
        check_fields(row, spec, required) + code_check(row) + check_dates(row, spec) for row in rows
    ]


# --- geometry -------------------------------------------------------------------------------


def fit_type(geom, target: str):
    """The geometry as the target type (promote to Multi*, unwrap a single-part Multi*), or None."""
    if target in SINGLE:
        if isinstance(geom, SINGLE[target]):
            return geom
        parts = getattr(geom, "geoms", None)
        if parts is not None and len(parts) == 1 and isinstance(parts[0], SINGLE[target]):
            return parts[0]
        return None
    multi, single = MULTI[target]
    if isinstance(geom, multi):
        return geom
    return multi([geom]) if isinstance(geom, single) else None


def repair(geom, target: str):
    """make_valid, kept only when the result still has the target's type."""
    fixed = shapely.make_valid(geom)
    if FAMILY.get(fixed.geom_type) != FAMILY.get(geom.geom_type):
        return None
    fixed = fit_type(fixed, target)
    return fixed if fixed is not None and fixed.is_valid else None


def check_geometry(geom, target: str) -> tuple[object, Problems]:
    """Type and validity of one geometry: the geometry to store (or None) and its problems."""
    if geom is None or geom.is_empty:
        return None, [("empty_geometry", "")]
    fitted = fit_type(shapely.force_2d(geom), target)
    if fitted is None:
        return None, [("wrong_geometry_type", f"{geom.geom_type}，应为 {target}")]
    if fitted.is_valid:
        return fitted, []
    if not np.isfinite(shapely.get_coordinates(fitted)).all():  # GEOS cannot repair these
        return None, [("invalid_geometry", "坐标不是有限数值（NaN 或无穷大）")]
    reason = shapely.is_valid_reason(fitted)
    fixed = repair(fitted, target)
    if fixed is None:
        return None, [("invalid_geometry", reason)]
    return fixed, [("geometry_repaired", reason)]


def out_of_range(minx, miny, maxx, maxy, extent: tuple | None) -> tuple:
    """(outside the lon/lat range, outside the city extent when one is known), for one geometry's
    bounds or for arrays of them (NaN bounds, of no geometry, are in range)."""
    lonlat = (minx < -180) | (maxx > 180) | (miny < -90) | (maxy > 90)
    if not extent:
        return lonlat, lonlat & False
    return lonlat, (minx < extent[0]) | (miny < extent[1]) | (maxx > extent[2]) | (maxy > extent[3])


def check_position(bounds: np.ndarray, extent: tuple | None) -> Problems:
    """Inside the lon/lat range, and inside the city extent when one is known."""
    minx, miny, maxx, maxy = bounds
    lonlat, outside = out_of_range(minx, miny, maxx, maxy, extent)
    if lonlat:
        return [("outside_lonlat", f"({minx:.6g}, {miny:.6g})")]
    if outside:
        return [("outside_extent", f"({minx:.6f}, {miny:.6f}) 不在 {list(extent)} 内")]
    return []


def plain_geometries(geoms: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
    """2D copies of the valid rows already of the target type (None elsewhere) and their mask."""
    fitted = np.full(len(geoms), None, dtype=object)
    same = np.flatnonzero(
        (shapely.get_type_id(geoms) == TYPE_ID[target]) & ~shapely.is_empty(geoms)
    )
    flat = shapely.force_2d(geoms[same])
    valid = shapely.is_valid(flat)
    fitted[same[valid]] = flat[valid]
    done = np.zeros(len(geoms), dtype=bool)
    done[same[valid]] = True
    return fitted, done


def outside_rows(fitted: np.ndarray, extent: tuple | None) -> np.ndarray:
    """Indexes of the geometries `check_position` has something to say about."""
    lonlat, outside = out_of_range(*shapely.bounds(fitted).T, extent)
    return np.flatnonzero(lonlat | outside)


def geometry_problems(geoms: np.ndarray, spec: LayerSpec,
                      extent: tuple | None) -> tuple[np.ndarray, list[Problems]]:  # fmt: skip
    """Checked geometries (None where rejected) and the geometry problems of every row."""
    geoms = np.asarray(geoms, dtype=object)
    # Valid geometries of the right type in bulk; only the others go through check_geometry.
    fitted, done = plain_geometries(geoms, spec.geometry)
    problems: list[Problems] = [[] for _ in range(len(geoms))]
    for i in np.flatnonzero(~done):
        fitted[i], problems[i] = check_geometry(geoms[i], spec.geometry)
    for i in outside_rows(fitted, extent):
        problems[i] += check_position(shapely.bounds(fitted[i]), extent)
    out = fitted.copy()
    for i, found in enumerate(problems):
        if any(code_is_reject(c) for c, _ in found):
            out[i] = None
    return out, problems


def code_is_reject(code: str) -> bool:
    """True for reasons that keep a row out of the database."""
    return REASONS[code][1] == REJECT


# --- across rows ----------------------------------------------------------------------------


def duplicate_rows(keys: list[str | None]) -> list[tuple[int, str]]:
    """(index, key) of every repeat of a natural key after its first row."""
    seen, repeats = set(), []
    for i, key in enumerate(keys):
        if key is None:
            continue
        if key in seen:
            repeats.append((i, key))
        seen.add(key)
    return repeats


def stacked_points(geoms: np.ndarray, threshold: int) -> tuple[list[tuple[int, str]], list[dict]]:
    """(index, detail) of points sharing an exact coordinate with ≥ threshold rows, and those places."""
    mask = shapely.get_type_id(geoms) == TYPE_ID["POINT"]
    if threshold < 2 or not mask.any():
        return [], []
    idx = np.flatnonzero(mask)
    xy = shapely.get_coordinates(np.asarray(geoms[mask], dtype=object))
    frame = pd.DataFrame({"i": idx, "x": xy[:, 0], "y": xy[:, 1]})
    sizes = frame.groupby(["x", "y"])["i"].transform("size")
    stacked = frame[sizes >= threshold]
    places = (stacked.groupby(["x", "y"]).size().sort_values(ascending=False)
              .reset_index(name="count"))  # fmt: skip
    where = [{"lon": round(r["x"], 7), "lat": round(r["y"], 7), "count": int(r["count"])}
             for r in places.to_dict("records")]  # fmt: skip
    counts = stacked.groupby(["x", "y"])["i"].transform("size")
    details = [
        f"({x}, {y}) 上共 {n} 行"
        for x, y, n in zip(stacked["x"], stacked["y"], counts, strict=True)
    ]
    return list(zip(stacked["i"].tolist(), details, strict=True)), where


def issues_of(problems: list[Problems], keys: list[str | None]) -> list[Issue]:
    """Issues (1-based row numbers) from per-row problem lists."""
    return [
        Issue(i + 1, keys[i], code, detail)
        for i, found in enumerate(problems)
        for code, detail in found
    ]
