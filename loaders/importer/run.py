"""One import: read → map → convert CRS → validate → stage (COPY) → check in SQL → load, in ONE
transaction (a crash or Ctrl-C leaves the database as it was)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import Connection, Engine

from geodata.crs import CrsError, SourceCrs, check_datum, parse_crs, to_storage
from layers.aggregates import refresh_tables
from loaders.importer import validation as v
from loaders.importer import writer
from loaders.importer.mapping import (
    Mapping,
    MappingError,
    check_targets,
    combine,
    load_mapping_file,
    parse_map_args,
    resolve,
)
from loaders.importer.reader import ReadError, Source, is_csv, read_source
from loaders.importer.report import REJECT, Issue, Report
from loaders.importer.specs import LayerSpec, spec_for
from loaders.importer.values import convert, fill_defaults

MODES = ("append", "replace", "upsert")
DEFAULT_STACK_THRESHOLD = 10
EXTENT_MARGIN_DEG = 0.05  # about 5 km around the administrative areas


class ImportUsageError(ValueError):
    """A problem with the command (options, mapping, unreadable file): exit status 2."""


@dataclass
class ImportOptions:
    """Everything `python -m loaders import` was asked to do."""

    layer: str
    path: Path
    maps: list[str] = field(default_factory=list)
    mapping_file: Path | None = None
    crs: str | None = None
    towgs84: str | None = None  # datum shift of a Beijing 1954 / Xian 1980 source
    encoding: str | None = None
    sublayer: str | None = None
    mode: str = "append"
    strict: bool = False
    extent: str | None = None
    stack_threshold: int | None = None  # default: the mapping's, else 10
    progress: Callable[[str], None] = lambda message: None


@dataclass
class Prepared:
    """Validated rows ready for staging."""

    columns: list[str]
    rows: list[dict]
    geoms: np.ndarray
    keys: list[str | None]
    issues: list[Issue]
    places: list[dict] = field(default_factory=list)  # stacked coordinates


def parse_extent(value) -> tuple[float, float, float, float]:
    """`minx,miny,maxx,maxy` (text or list) → tuple of four floats."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        box = tuple(float(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise ImportUsageError(f"范围应为 minx,miny,maxx,maxy：{value}") from exc
    if len(box) != 4 or box[0] >= box[2] or box[1] >= box[3]:
        raise ImportUsageError(f"范围应为 minx,miny,maxx,maxy（min < max）：{value}")
    return box


def source_crs(opts: ImportOptions, mapping: Mapping, source: Source) -> SourceCrs:
    """--crs, else the mapping's crs, else the file's, else WGS84 for CSV / CGCS2000 if lon/lat."""
    # Every path goes through the datum check: Beijing 1954 / Xian 1980 need --towgs84.
    chosen = opts.crs or mapping.option("crs")
    if chosen:
        return parse_crs(str(chosen), opts.towgs84)
    if source.crs is not None:
        return check_datum(source.crs, opts.towgs84)
    if is_csv(opts.path):
        return parse_crs("EPSG:4326", opts.towgs84)
    bounds = shapely.total_bounds(source.geoms[source.geoms != None])  # noqa: E711
    if np.all(np.isnan(bounds)) or (bounds[0] >= -180 and bounds[2] <= 180 and bounds[1] >= -90
                                    and bounds[3] <= 90):  # fmt: skip
        return parse_crs("EPSG:4490", opts.towgs84)
    raise ImportUsageError("文件没有坐标系信息且坐标不是经纬度，请用 --crs 指定（如 --crs 4548）")


def load_mapping(opts: ImportOptions, spec: LayerSpec) -> Mapping:
    """The mapping file (if any) with --map on top, its target fields checked."""
    file_mapping = load_mapping_file(opts.mapping_file) if opts.mapping_file else None
    mapping = combine(file_mapping, parse_map_args(opts.maps))
    check_targets(mapping, spec)
    return mapping


def read(opts: ImportOptions, mapping: Mapping) -> tuple[Source, SourceCrs]:
    """Read the file and convert its geometries to EPSG:4490."""
    source = read_source(opts.path, encoding=opts.encoding or mapping.option("encoding"),
                         sublayer=opts.sublayer or mapping.option("sublayer"),
                         geometry=mapping.geometry)  # fmt: skip
    crs = source_crs(opts, mapping, source)
    source.geoms = to_storage(source.geoms, crs)
    return source, crs


def columns_of(spec: LayerSpec, resolved: dict, mapping: Mapping) -> list[str]:
    """Target fields this file fills, in the spec's order; every required field must be there."""
    present = set(resolved) | set(mapping.constants) | set(spec.derive)
    missing = [f for f in spec.required() if f not in present]
    if missing:
        raise MappingError(
            f"缺少必填字段的映射：{', '.join(missing)}（用 --map 源字段=目标字段 或映射文件指定）"
        )
    return [f for f in spec.fields if f in present]


def row_dicts(columns: list[str], typed: dict[str, list], n: int) -> list[dict]:
    """One dict per row of the typed columns (None where the file does not fill a column)."""
    if not columns:
        return [{} for _ in range(n)]
    filled = [typed[c] if c in typed else [None] * n for c in columns]
    return [dict(zip(columns, values, strict=True)) for values in zip(*filled, strict=True)]


def prepare(source: Source, spec: LayerSpec, mapping: Mapping, extent,
            threshold: int) -> Prepared:  # fmt: skip
    """Map, convert and validate every row (no database needed)."""
    resolved = resolve(mapping, spec, [str(c) for c in source.frame.columns])
    columns = columns_of(spec, resolved, mapping)
    typed, bad = convert(source.frame, resolved, mapping, spec)
    n = len(source.frame)
    rows = row_dicts(columns, typed, n)
    v.derive(rows, spec)
    fill_defaults(rows, spec, mapping)
    keys = [str(r[spec.key]) if spec.key and r.get(spec.key) is not None else None for r in rows]
    geoms, geom_problems = v.geometry_problems(source.geoms, spec, extent)
    problems = [a + b for a, b in zip(v.row_problems(rows, spec), geom_problems, strict=True)]
    issues = [Issue(i + 1, keys[i], "bad_value", msg) for i, _, msg in bad]
    issues += v.issues_of(problems, keys)
    issues += [
        Issue(i + 1, k, "duplicate_key", "与前面的行重复") for i, k in v.duplicate_rows(keys)
    ]
    stacked, places = v.stacked_points(geoms, threshold)
    issues += [Issue(i + 1, keys[i], "stacked_coordinate", where) for i, where in stacked]
    return Prepared(columns, rows, geoms, keys, issues, places)


def staged_rows(prepared: Prepared, rejected: set[int]):
    """(row_no, *values, hex EWKB) for every row not rejected so far."""
    ok = [i for i in range(len(prepared.rows)) if i + 1 not in rejected]
    # Binary WKB made hex by bytes.hex() (same EWKB, lower case) is 2-3x faster than hex=True.
    wkb = shapely.to_wkb(shapely.set_srid(prepared.geoms[ok].astype(object), 4490),
                         include_srid=True) if ok else []  # fmt: skip
    rows = [prepared.rows[i] for i in ok]
    columns = [map(itemgetter(c), rows) for c in prepared.columns]
    hexes = [None if b is None else b.hex() for b in wkb]
    return zip([i + 1 for i in ok], *columns, hexes, strict=True)


def database_checks(
    conn: Connection, spec: LayerSpec, prepared: Prepared, mode: str
) -> list[Issue]:
    """Checks that need the database: references, existing keys, component district."""
    keys = prepared.keys
    issues = [Issue(r, keys[r - 1], "unknown_reference", f"{f}={val} 不在 {table} 中")
              for r, f, val, table in writer.missing_references(conn, spec, prepared.columns)]  # fmt: skip
    if mode == "append" and spec.key:
        issues += [Issue(r, k, "key_exists", "") for r, k in writer.existing_keys(conn, spec)]
    if spec.code_check == "component":
        issues += [Issue(r, c, "district_mismatch", f"编码区县 {c[:6]}，位于区县 {d}")
                   for r, c, d in writer.district_mismatches(conn)]  # fmt: skip
    return issues


def stage_and_check(conn: Connection, spec: LayerSpec, prepared: Prepared, report: Report,
                    progress) -> None:  # fmt: skip
    """COPY the rows that passed into the staging table, then the SQL checks."""
    rejected = report.rows_with(REJECT)
    progress(f"写入数据库：暂存 {len(prepared.rows) - len(rejected)} 行…")
    writer.create_stage(conn, spec, prepared.columns)
    writer.copy_rows(conn, prepared.columns, staged_rows(prepared, rejected))
    more = database_checks(conn, spec, prepared, report.mode)
    report.issues += more
    writer.drop_rows(conn, {i.row for i in more if i.severity == REJECT})
    if spec.layer == "case":
        flag_duplicates(conn, prepared, report, progress)


def flag_duplicates(conn: Connection, prepared: Prepared, report: Report, progress) -> None:
    """Flag (never reject) staged cases like an open case in the database or earlier in the file."""
    # Imported here: the analytics package loads every analysis (seconds), only cases need it.
    from analytics.duplicates import staged_duplicates

    progress("查找相似案卷…")
    placeholders = {i.row for i in report.issues if i.code == "stacked_coordinate"}
    found = staged_duplicates(conn, writer.STAGE, prepared.columns, skip_rows=placeholders,
                              with_database=report.mode != "replace")  # fmt: skip
    report.possible_duplicates = found
    report.issues += [Issue(f["row"], f["code"], "possible_duplicate", duplicate_detail(f))
                      for f in found]  # fmt: skip


def duplicate_detail(found: dict) -> str:
    """The matching case, the score, the distance and the time gap, in words."""
    where = f"文件第 {found['match_row']} 行的" if found["match_row"] else "数据库中的"
    return (
        f"与{where}未结案件 {found['match_code']} 相似度 {found['score']:.2f}"
        f"（相距 {found['distance_m']:.0f} 米，间隔 {found['hours_apart']:.1f} 小时）"
    )


def run_import(engine: Engine, opts: ImportOptions) -> Report:
    """Import one file into one layer; the report says what happened."""
    try:
        spec = spec_for(opts.layer)
    except KeyError as exc:
        raise ImportUsageError(exc.args[0]) from exc
    if opts.mode not in MODES or (opts.mode == "upsert" and not spec.key):
        raise ImportUsageError(f"图层 {spec.layer} 没有自然键，不能使用 upsert 模式")
    try:
        return execute(engine, opts, spec)
    except (MappingError, ReadError, CrsError) as exc:
        raise ImportUsageError(str(exc)) from exc


def execute(engine: Engine, opts: ImportOptions, spec: LayerSpec) -> Report:
    """Read and validate, then stage, check and load inside one transaction."""
    mapping = load_mapping(opts, spec)
    opts.progress(f"读取 {opts.path.name}…")
    source, crs = read(opts, mapping)
    report = Report(spec.layer, opts.path.name, opts.mode, opts.strict, crs=crs.label,
                    read=len(source.frame))  # fmt: skip
    extent_option = opts.extent or mapping.option("extent")
    with engine.connect() as conn, conn.begin() as trans:
        writer.begin_import(conn)
        extent = (parse_extent(extent_option) if extent_option
                  else writer.city_extent(conn, EXTENT_MARGIN_DEG))  # fmt: skip
        report.extent = [round(x, 6) for x in extent] if extent else None
        opts.progress(f"校验 {report.read} 行…")
        threshold = opts.stack_threshold
        if threshold is None:
            threshold = int(mapping.option("stack_threshold", DEFAULT_STACK_THRESHOLD))
        prepared = prepare(source, spec, mapping, extent, threshold)
        report.issues, report.stacked_coordinates = prepared.issues, prepared.places
        stage_and_check(conn, spec, prepared, report, opts.progress)
        if opts.strict and report.rejected:
            report.file_rejected, report.error = True, "严格模式：文件中有错误，整个文件未导入"
            trans.rollback()
            return report
        try:
            report.loaded = writer.load(conn, spec, prepared.columns, opts.mode)
        except writer.DatabaseRejected as exc:
            report.file_rejected, report.error = True, str(exc)
            trans.rollback()
            return report
        opts.progress("更新低级别瓦片预聚合…")
        refresh_tables(conn, {spec.table})
    return report
