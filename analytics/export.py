"""Exports of analysis results: CSV of the main table and an XLSX workbook of every table.

Pure functions of a result dict (no Flask, no Dash): scalars go to a summary sheet, each list of
rows to a sheet of its own, with Chinese column titles.
"""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook

MAIN_TABLES = ("by_area", "sites", "rows", "parks")
TITLES = {
    "code": "编码", "name": "名称", "area_name": "区域", "coverage_pct": "覆盖率(%)",
    "coverage_pct_euclidean": "覆盖率-直线(%)", "coverage_pct_network": "覆盖率-步行(%)",
    "residential_area_m2": "居住用地面积(m²)", "covered_area_m2": "覆盖面积(m²)",
    "population": "人口", "served_population": "服务人口", "area_m2": "面积(m²)",
    "radius_m": "服务半径(m)", "served_area_m2": "服务居住用地(m²)", "size_class": "规模",
    "historic_district": "历史地段", "rank": "名次", "lon": "经度", "lat": "纬度",
    "gain_m2": "新增覆盖(m²)", "gain_pct": "覆盖率增量(%)", "coverage_pct_after": "选址后覆盖率(%)",
    "count": "数量", "area_km2": "面积(km²)", "per_km2": "密度(个/km²)",
    "road_length_m": "道路长度(m)", "covered_length_m": "覆盖长度(m)",
    "min_area_m2": "最小面积(m²)", "historic_only": "仅历史地段",
}  # fmt: skip
SHEETS = {"by_area": "分区", "parks": "公园", "sites": "选址", "rows": "明细", "rules": "规则"}


def tables_of(result: dict) -> dict[str, list[dict]]:
    """The lists of rows in a result (by_area, parks, sites…), in a stable order."""
    return {k: v for k, v in result.items() if isinstance(v, list) and v and isinstance(v[0], dict)}


def summary_of(result: dict) -> dict:
    """The scalar figures of a result."""
    return {k: v for k, v in result.items() if isinstance(v, str | int | float | bool) or v is None}


def main_table(result: dict) -> list[dict]:
    """The table a CSV export holds: the first of by_area, sites, rows, parks that exists."""
    tables = tables_of(result)
    return next((tables[k] for k in MAIN_TABLES if k in tables), [])


def to_csv(rows: list[dict]) -> str:
    """Rows as CSV with Chinese headers (UTF-8 with BOM, so spreadsheet programs read Chinese)."""
    out = io.StringIO()
    if rows:
        keys = list(rows[0])
        writer = csv.writer(out)
        writer.writerow([TITLES.get(k, k) for k in keys])
        writer.writerows([[r.get(k) for k in keys] for r in rows])
    return "\ufeff" + out.getvalue()


def to_xlsx(result: dict, title: str) -> bytes:
    """A workbook: 汇总 (the figures) and one sheet per table."""
    book = Workbook()
    sheet = book.active
    sheet.title = "汇总"
    sheet.append(["分析", title])
    for key, value in summary_of(result).items():
        sheet.append([TITLES.get(key, key), value])
    for key, rows in tables_of(result).items():
        page = book.create_sheet(SHEETS.get(key, key)[:31])
        keys = list(rows[0])
        page.append([TITLES.get(k, k) for k in keys])
        for r in rows:
            page.append([r.get(k) for k in keys])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
