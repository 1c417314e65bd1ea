"""Command line of the loaders: `python -m loaders <command> …`."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from auth import accounts
from errors import OneMapError
from geodata.db import engine_for, is_migrated, migrate
from layers.aggregates import refresh_tables
from layers.check import check_registry
from loaders import demo, osm
from loaders.boundaries import load_shandong
from loaders.importer.run import MODES, ImportOptions, ImportUsageError, run_import
from loaders.importer.specs import SPECS
from loaders.users import add_arguments as add_user_arguments
from loaders.users import ensure_demo_users, report_demo_users, run_token, run_user
from services.alarms import FIELDS as ALARM_FIELDS
from services.alarms import REQUIRED as ALARM_REQUIRED
from services.alarms import ingest_alarms
from services.parking_ingest import FIELDS as READING_FIELDS
from services.parking_ingest import OPTIONAL, ingest_readings
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
    print("数据库已创建并迁移到最新版本" if fresh else "数据库已迁移到最新版本")
    return 0


def cmd_boundaries(args, settings: Settings) -> int:
    """Load the Shandong city and district boundaries."""
    engine = prepared_engine(settings)
    with engine.begin() as conn:
        n = load_shandong(conn)
    print(f"已导入山东省行政区划边界 {n} 个")
    return 0


def cmd_demo(args, settings: Settings) -> int:
    """Generate the demo city (replaces streets, communities and all city data)."""
    engine = prepared_engine(settings)
    with engine.begin() as conn:
        if conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM admin_area)")).scalar():
            load_shandong(conn)
        began = time.monotonic()
        print(f"生成演示城市：规模 {args.scale}，随机种子 {args.seed}")
        written = demo.generate(conn, args.scale, args.seed)
    for table, n in written.items():
        print(f"  {table:22s} {n:>10,d}")
    print(f"演示城市已导入，共用时 {time.monotonic() - began:.0f} 秒")
    return 0


def cmd_aggregates(args, settings: Settings) -> int:
    """Rebuild the pre-aggregated low-zoom tiles of every point layer."""
    engine = prepared_engine(settings)
    began = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        done = refresh_tables(conn)
    for layer, n in done.items():
        print(f"  {layer:22s} {n:>10,d}")
    print(f"低级别瓦片预聚合已重建：{len(done)} 个图层，用时 {time.monotonic() - began:.1f} 秒")
    return 0


def cmd_bootstrap(args, settings: Settings) -> int:
    """Migrate, load the demo city when the database is empty, and make sure users exist."""
    engine = prepared_engine(settings)
    if database_is_empty(engine):
        args.scale, args.seed = settings.demo_scale, 1
        cmd_demo(args, settings)
    else:
        print("数据库已有数据，跳过初始数据导入")
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            stale = refresh_tables(conn, set())  # missing or out-of-date low-zoom counts only
        if stale:
            print(f"已重建 {len(stale)} 个点图层的低级别瓦片预聚合")
    with engine.begin() as conn:
        report_demo_users(ensure_demo_users(conn, settings.admin_password))
    check_registry(engine)
    return 0


def cmd_user(args, settings: Settings) -> int:
    """Manage users."""
    return run_user(args, prepared_engine(settings))


def cmd_token(args, settings: Settings) -> int:
    """Manage API tokens."""
    return run_token(args, prepared_engine(settings))


def progress(message: str) -> None:
    """Progress lines, flushed at once (they show how far a long import got)."""
    print(message, flush=True)


def cmd_import(args, settings: Settings) -> int:
    """Import a file into a layer; exit 1 when rows (or the file) were rejected, 2 on misuse."""
    opts = ImportOptions(
        layer=args.layer, path=Path(args.file), maps=args.map or [], mapping_file=args.mapping,
        crs=args.crs, towgs84=args.towgs84, encoding=args.encoding, sublayer=args.sublayer,
        mode=args.mode, strict=args.strict, extent=args.extent,
        stack_threshold=args.stack_threshold, progress=progress,
    )  # fmt: skip
    engine = prepared_engine(settings)
    try:
        report = run_import(engine, opts)
    except ImportUsageError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("导入已中断，数据库未改动", file=sys.stderr)
        return 130
    print(report.summary())
    with engine.begin() as conn:
        accounts.audit(conn, "cli", "import", args.layer, {"file": args.file, "read": report.read,
                       "loaded": report.loaded, "rejected": report.rejected})  # fmt: skip
    if args.report:
        report.write_json(Path(args.report))
        print(f"报告已写入 {args.report}")
    return 1 if report.rejected else 0


def add_import_parser(sub) -> None:
    """`import <layer> <file> [options]`."""
    p = sub.add_parser("import", help="导入 GeoJSON/Shapefile/GeoPackage/CSV 文件到图层")
    p.add_argument("layer", choices=list(SPECS), help="目标图层")
    p.add_argument("file", help="源文件（.geojson .shp .gpkg .csv .csv.gz）")
    p.add_argument("--map", action="append", metavar="SRC=DST", help="字段映射：源字段=目标字段")
    p.add_argument("--mapping", type=Path, metavar="FILE.yaml", help="YAML 映射文件")
    p.add_argument("--crs", help="源坐标系：EPSG:4326、4548、gk117、gk3-39、gcj02、bd09")
    p.add_argument(
        "--towgs84",
        metavar="DX,DY,DZ[,RX,RY,RZ,S]",
        help="北京1954/西安1980 坐标系到 WGS84 的三或七参数（同 PROJ +towgs84）",
    )
    p.add_argument("--encoding", help="文本编码，如 gbk（Shapefile 默认按 .cpg）")
    p.add_argument("--sublayer", help="GeoPackage 等多图层文件中的图层名")
    p.add_argument("--mode", choices=MODES, default="append", help="追加、替换或按编码更新")
    p.add_argument("--strict", action="store_true", help="任何一行有错误则整个文件不导入")
    p.add_argument("--report", metavar="FILE.json", help="写出 JSON 导入报告")
    p.add_argument("--extent", metavar="MINX,MINY,MAXX,MAXY", help="城市范围（默认行政区划范围）")
    p.add_argument("--stack-threshold", type=int, metavar="N",
                   help="同一坐标上至少 N 行时标记为堆叠（默认 10 或映射文件中的值，0 关闭）")  # fmt: skip
    p.set_defaults(func=cmd_import)


def cmd_osm(args, settings: Settings) -> int:
    """Import an OpenStreetMap extract into the city layers."""
    engine = prepared_engine(settings)
    status = osm.run(args, engine)
    with engine.begin() as conn:
        accounts.audit(conn, "cli", "import", "osm", {"file": str(args.file), "status": status})
    return status


def read_batch_csv(path: Path, required, fields) -> list[dict]:
    """The rows of a batch CSV (UTF-8, a header naming at least `required`) as dicts of `fields`;
    ValueError if the file is unusable."""
    if not path.is_file():
        raise ValueError(f"文件不存在：{path}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"CSV 缺少列：{', '.join(missing)}（需要 {', '.join(required)}）")
            return [{k: row.get(k) for k in fields} for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"无法读取 CSV 文件 {path}：{exc}") from exc


def print_rejected(report: dict, code_key: str) -> None:
    """The rejected rows of a batch report with their CSV line (header is line 1)."""
    for item in report["rejected"][:100]:
        print(f"  第 {item['index'] + 2} 行 {item[code_key] or ''}：{item['reason']}")
    if len(report["rejected"]) > 100:
        print(f"  …… 另有 {len(report['rejected']) - 100} 行被拒绝")
    if report["rejected"] and not report["partial"]:
        print("整批未写入：修正被拒绝的行后重新提交，或加 --partial 只写入有效行")


def print_readings_report(report: dict) -> None:
    """The readings ingest report in Chinese."""
    state = "已写入" if report["written"] else "未写入任何读数"
    print(f"停车读数：收到 {report['received']}，有效 {report['valid']}，{state}"
          f"（新增 {report['inserted']}，更正 {report['updated']}，未变 {report['unchanged']}），"
          f"拒绝 {len(report['rejected'])}")  # fmt: skip
    print_rejected(report, "lot_code")


def cmd_parking_readings(args, settings: Settings) -> int:
    """Ingest a CSV of occupancy readings; exit 2 when rows were rejected or the file is unusable."""
    rows = read_batch_csv(Path(args.file), READING_FIELDS, (*READING_FIELDS, *OPTIONAL))
    engine = prepared_engine(settings)
    with engine.begin() as conn:
        report = ingest_readings(conn, rows, partial=args.partial)
        accounts.audit(conn, "cli", "parking_readings", "parking_occupancy",
                       {k: v for k, v in report.items() if k != "rejected"}
                       | {"file": args.file, "rejected": len(report["rejected"])})  # fmt: skip
    print_readings_report(report)
    return 2 if report["rejected"] else 0


def print_alarms_report(report: dict) -> None:
    """The alarm ingest report in Chinese."""
    state = "已写入" if report["written"] else "未写入任何告警"
    print(f"告警：收到 {report['received']}，有效 {report['valid']}，{state}"
          f"（新增 {report['inserted']}，已存在 {report['existing']}），"
          f"拒绝 {len(report['rejected'])}")  # fmt: skip
    print_rejected(report, "sensor_code")


def cmd_alarms(args, settings: Settings) -> int:
    """Ingest a CSV of sensor alarms; exit 2 when rows were rejected or the file is unusable."""
    rows = read_batch_csv(Path(args.file), ALARM_REQUIRED, ALARM_FIELDS)
    engine = prepared_engine(settings)
    with engine.begin() as conn:
        report = ingest_alarms(conn, rows, partial=args.partial)
        accounts.audit(conn, "cli", "alarm_ingest", "alarm",
                       {k: v for k, v in report.items() if k not in ("rejected", "ids")}
                       | {"file": args.file, "rejected": len(report["rejected"])})  # fmt: skip
    print_alarms_report(report)
    return 2 if report["rejected"] else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="python -m loaders", description="城管一张图 数据工具")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="创建扩展并迁移数据库").set_defaults(func=cmd_migrate)
    sub.add_parser("boundaries", help="导入山东省市、区县边界").set_defaults(func=cmd_boundaries)
    demo_parser = sub.add_parser("demo", help="生成演示城市（替换现有城市数据）")
    demo_parser.add_argument("--scale", choices=sorted(demo.SCALES), default="city")
    demo_parser.add_argument("--seed", type=int, default=1)
    demo_parser.set_defaults(func=cmd_demo)
    sub.add_parser("bootstrap", help="迁移；数据库为空时导入初始数据").set_defaults(
        func=cmd_bootstrap
    )
    sub.add_parser("aggregates", help="重建点图层低级别瓦片的预聚合").set_defaults(
        func=cmd_aggregates
    )
    osm_parser = osm.add_arguments(sub.add_parser("osm", help="导入 OpenStreetMap 数据"))
    osm_parser.set_defaults(func=cmd_osm)
    add_import_parser(sub)
    readings = sub.add_parser(
        "parking-readings", help="导入停车占用读数 CSV（lot_code, at, occupied）"
    )
    readings.add_argument("file", help="CSV 文件（UTF-8，表头 lot_code,at,occupied）")
    readings.add_argument(
        "--partial", action="store_true", help="只写入有效行（默认有任何错误则整批不写入）"
    )
    readings.set_defaults(func=cmd_parking_readings)
    alarms = sub.add_parser(
        "alarms", help="导入物联感知告警 CSV（sensor_code, raised_at, level, message）"
    )
    alarms.add_argument(
        "file", help="CSV 文件（UTF-8，表头 sensor_code,raised_at,level[,message]）"
    )
    alarms.add_argument(
        "--partial", action="store_true", help="只写入有效行（默认有任何错误则整批不写入）"
    )
    alarms.set_defaults(func=cmd_alarms)
    add_user_arguments(sub)
    sub.choices["user"].set_defaults(func=cmd_user)
    sub.choices["token"].set_defaults(func=cmd_token)
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
    except OneMapError as exc:  # e.g. an empty or oversized batch of readings
        print(f"错误：{exc.message}", file=sys.stderr)
        return 2
    except (LookupError, ValueError) as exc:  # unknown user, bad role or area, short password
        print(f"错误：{exc}", file=sys.stderr)
        return 2
