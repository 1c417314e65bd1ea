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
    # 案件考核指标 (analytics/case_kpis.py)
    "by": "统计单元", "as_of": "统计截止时间", "registered": "立案数",
    "due_to_close": "应结案数", "closed": "结案数", "closed_on_time": "按期结案数",
    "due_to_handle": "应处置数", "handled": "处置数", "handled_on_time": "按期处置数",
    "reworked": "返工数", "overdue_open": "超期未结数", "closure_rate": "结案率(%)",
    "on_time_closure_rate": "按期结案率(%)", "on_time_handling_rate": "按期处置率(%)",
    "rework_rate": "返工率(%)", "score": "综合得分", "grade": "等级",
    # 相似案卷判断 (analytics/duplicates.py); its "score" is the 综合得分 of four parts
    "class_code": "类别代码", "class_name": "类别", "status": "状态", "distance_m": "距离(m)",
    "hours_apart": "时间间隔(小时)", "text_similarity": "描述相似度", "likely": "疑似重复",
    "reported_at": "上报时间", "address": "地址", "description": "描述",
    "case_code": "案件编号", "case_class_name": "案件类别", "case_status": "案件状态",
    "case_reported_at": "案件上报时间", "max_distance_m": "距离范围(m)",
    "max_hours": "时间范围(小时)", "threshold": "疑似重复阈值", "likely_count": "疑似重复数",
    # 停车 (analytics/parking.py)
    "lot_id": "停车场ID", "lot_type": "类型", "capacity": "泊位数", "utilisation": "利用率",
    "turnover": "周转率", "vehicles": "驶入车辆数", "turnover_source": "周转来源",
    "peak_hour": "高峰时段(时)", "peak_occupied": "最高占用", "hours_full": "满位小时数",
    "observed_hours": "观测小时数", "coverage": "观测覆盖率", "occupied_now": "当前占用",
    "occupancy_now": "当前占用率", "observed_at": "读数时间", "lots": "停车场数",
    "lots_unknown_capacity": "容量未知停车场数",
    # 停车缺口 (analytics/parking.py, parking-shortage)
    "cell_id": "网格编号", "supply": "供给泊位数", "demand": "高峰需求(车位)",
    "peak_at": "需求高峰时刻", "ratio": "峰值占用率", "shortage": "缺口(车位，需求−90%供给)",
    "hours_short": "紧张小时数(≥90%)", "hours_observed": "观测小时数",
    "short_share": "紧张小时占比", "cells": "网格数", "cells_short": "紧张网格数",
    "lots_outside_cells": "网格外停车场数", "cells_kind": "网格类型", "full_share": "满位阈值",
    # 排水一张图 (analytics/drainage.py): 上游汇水范围, 数据质量检查, 管线隐患排查
    "object": "对象", "land_use": "用地性质", "well": "排入检查井", "at_object": "起点类型",
    "at_code": "起点编码", "kind": "类别", "upstream_pipes": "上游管线数",
    "upstream_wells": "上游检查井数", "upstream_length_m": "上游管线长度(m)",
    "hidden_pipes": "管辖范围外管线数", "parcels": "地块数", "parcel_area_m2": "地块面积(m²)",
    "grids": "单元网格数", "grid_area_m2": "单元网格面积(m²)", "loops": "环路数",
    "check": "检查项代码", "check_label": "检查项", "detail": "说明", "value": "数值",
    "from_well": "起点井", "to_well": "终点井", "diameter_mm": "管径(mm)", "material": "材质",
    "build_year": "建设年代", "pipes_checked": "检查管线数", "issues": "问题数",
    "truncated": "列表已截断", "pieces_without_outfall": "无排口的管网片数",
    "outfalls_matched": "匹配检查井的排口数", "no_outfall": "未连通排口", "reverse_slope": "倒坡",
    "diameter_decrease": "下游管径变小", "loop": "环路", "level": "风险等级", "reasons": "原因",
    "age_years": "管龄(年)", "slope_pct": "坡度(%)", "waterlogging_count": "周边内涝点数",
    "alarm_count": "周边告警数", "case_count": "两端井案件数", "length_m": "长度(m)",
    "age_points": "管龄得分", "material_points": "材质得分", "diameter_points": "管径得分",
    "slope_points": "坡度得分", "reverse_slope_points": "倒坡得分",
    "waterlogging_points": "内涝点得分", "alarms_points": "告警得分", "cases_points": "案件得分",
    "area_code": "区域代码", "to": "评估日期", "days": "统计天数", "year": "评估年份",
    "pipes": "管线数", "top": "列出条数", "length_km": "长度(km)", "mean_score": "平均风险分",
    "max_score": "最高风险分", "level_高": "高风险管线", "level_中": "中风险管线",
    "level_低": "低风险管线", "key": "因子代码", "label": "因子", "weight": "权重",
    "zero": "得 0 分的值", "full": "得满分的值", "unknown": "缺数据时得分", "rule": "规则",
}  # fmt: skip
SHEETS = {"by_area": "分区", "parks": "公园", "sites": "选址", "rows": "明细", "rules": "规则",
          "totals": "合计"}  # fmt: skip


def tables_of(result: dict) -> dict[str, list[dict]]:
    """The lists of rows in a result (by_area, parks, sites…), in a stable order; a flat record
    (such as the KPIs' totals) is a table of one row."""
    return {k: v if isinstance(v, list) else [v] for k, v in result.items()
            if (isinstance(v, list) and v and isinstance(v[0], dict)) or is_record(v)}  # fmt: skip


def is_record(value) -> bool:
    """A non-empty dict of scalars (one row)."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(v, str | int | float | bool) or v is None for v in value.values())
    )


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
