"""`python -m loaders osm FILE`: import what OpenStreetMap holds for our layers (pyosmium).

Parks and gardens, residential land use, toilets, parking with capacity, waste baskets,
recycling and transfer stations, surveillance cameras, manholes, street lamps and roads. Codes
are stable (`osm-n123`, `osm-w456`, `osm-r789`; components keep their 16-digit code and carry the
OSM reference in `remark`), so importing the same file again changes nothing. The whole import
is one transaction.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from layers.aggregates import refresh_tables
from loaders.osm.reader import Extract, Skipped, read_osm
from loaders.osm.tags import TABLE_LABELS
from loaders.osm.writer import Written, write_table


class OsmImportError(Exception):
    """An import that cannot run (unreadable file, unknown district); message in Chinese."""


@dataclass
class Report:
    """Per-table counts and every skipped object with its reason."""

    source: str
    district: str | None
    tables: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        """The report as written by --report."""
        return {"source": self.source, "district_fallback": self.district,
                "tables": self.tables, "skipped": self.skipped}  # fmt: skip


def check_district(engine: Engine, district: str | None) -> None:
    """The --district fallback must be a loaded district (6-digit GB/T 2260 code)."""
    if district is None:
        return
    with engine.connect() as conn:
        known = conn.execute(
            text("SELECT EXISTS (SELECT 1 FROM admin_area WHERE code = :c AND level = 'district')"),
            {"c": district},
        ).scalar()
    if not known:
        raise OsmImportError(f"区县代码 {district} 不存在（需为已导入的 6 位区县代码）")


def read_file(path: Path) -> Extract:
    """Read the OSM file, turning osmium's errors into a Chinese message."""
    if not path.is_file():
        raise OsmImportError(f"文件不存在：{path}")
    try:
        return read_osm(path)
    except (RuntimeError, ValueError) as exc:
        raise OsmImportError(f"无法读取 OSM 文件 {path}：{exc}") from exc


def table_entry(table: str, extract: Extract, written: Written) -> dict:
    """Counts of one table: read, inserted, updated, unchanged, skipped by reason."""
    reasons: dict[str, int] = {}
    for item in [s for s in extract.skipped if s.table == table] + written.skipped:
        reasons[item.reason] = reasons.get(item.reason, 0) + 1
    entry = {"label": TABLE_LABELS[table], "read": extract.read.get(table, 0),
             "inserted": written.inserted, "updated": written.updated,
             "unchanged": written.unchanged, "skipped": sum(reasons.values()),
             "skipped_by_reason": reasons}  # fmt: skip
    if table == "component":
        entry["retired"] = written.retired
    return entry


def import_osm(engine: Engine, path: Path | str, district: str | None = None) -> Report:
    """Read an OSM file and write our layers in one transaction; returns the report."""
    path = Path(path)
    check_district(engine, district)
    extract = read_file(path)
    report = Report(str(path), district)
    late: list[Skipped] = []
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        for table in TABLE_LABELS:
            rows = [r for r in extract.rows if r.table == table]
            written = write_table(conn, table, rows, district)
            report.tables[table] = table_entry(table, extract, written)
            late += written.skipped
        refresh_tables(conn, set(TABLE_LABELS))
    report.skipped = [
        {"table": s.table, "osm": s.ref, "reason": s.reason} for s in extract.skipped + late
    ]
    return report


def summary(report: Report) -> str:
    """A short Chinese summary, one line per table."""
    lines = [f"OpenStreetMap 导入：{report.source}"]
    for table, t in report.tables.items():
        line = (f"  {t['label']}（{table}）：读取 {t['read']}，写入 {t['inserted'] + t['updated']}"
                f"（新增 {t['inserted']}，更新 {t['updated']}），未变 {t['unchanged']}，"
                f"跳过 {t['skipped']}")  # fmt: skip
        if t["skipped_by_reason"]:
            line += "：" + "；".join(f"{r} {n}" for r, n in t["skipped_by_reason"].items())
        if t.get("retired"):
            line += f"；旧部件标记为移除 {t['retired']}"
        lines.append(line)
    inserted = sum(t["inserted"] for t in report.tables.values())
    updated = sum(t["updated"] for t in report.tables.values())
    skipped = sum(t["skipped"] for t in report.tables.values())
    lines.append(f"合计：新增 {inserted}，更新 {updated}，跳过 {skipped}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of the `osm` sub-command."""
    parser.add_argument("file", type=Path, help="OSM 文件（.osm.pbf / .osm / .osm.bz2）")
    parser.add_argument(
        "--district", metavar="CODE", help="不在任何区县内的部件归入此区县（6 位代码）"
    )
    parser.add_argument("--report", type=Path, metavar="FILE.json", help="写出 JSON 导入报告")
    return parser


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Run the import for the command line; 0 unless something went wrong."""
    try:
        report = import_osm(engine, args.file, args.district)
    except OsmImportError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        print(f"错误：导入失败，数据库未作任何修改：{exc.orig}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("导入已中断，数据库未作任何修改", file=sys.stderr)
        return 130
    print(summary(report))
    if args.report:
        args.report.write_text(
            json.dumps(report.as_json(), ensure_ascii=False, indent=2), encoding="utf-8"
        )
        print(f"报告已写入 {args.report}")
    return 0
