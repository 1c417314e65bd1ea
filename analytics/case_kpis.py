"""考核指标 (case KPIs): counts, 结案率, 按期结案率, 按期处置率, 返工率 and overdue cases per
district, street, community or department, with a composite score, a grade A–E and a rank.

Who counts is defined once, in `COHORT` and `COUNTS` below (docs/CASE_ANALYTICS.md says the same
in words). The cohort of a window [from, to] is the cases the shared case filter reads (reported
in the window, class, source, inside the user's areas) that were registered (立案) by the end of
the window and are not voided. Every count is taken at the end of the window (`:at`, or now when
the window has not ended yet), so the figures of a past period do not change later.

Rates are in %, null when their denominator is zero (shown as 「—」, never 0). The score is the
mean of 按期结案率, 按期处置率 and (100 − 返工率), null unless all three exist; grades follow the
score (A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E); rows with a score are ranked by it, highest first,
equal scores sharing a rank.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import Connection, text

from analytics.case_filters import CASE_PARAMS, case_filter
from analytics.contract import Analysis, Param, register
from analytics.coverage import allowed
from auth.accounts import User
from errors import BadRequest, Forbidden
from geodata import catalog
from geodata.areas import area_name, in_areas

BY = ("district", "street", "community", "department")
NO_DEPARTMENT = "未派遣"
VOIDED = catalog.checked(("已作废",), catalog.CASE_STATUSES, "voided status")[0]
GRADES = ((90.0, "A"), (75.0, "B"), (60.0, "C"), (40.0, "D"))  # else E

# The cohort, on top of the shared case filter: registered by the end of the window, not voided.
COHORT = "c.registered_at < :at AND c.status <> :voided"
CLOSED = "c.closed_at < :at"
HANDLED = "c.dispatched_at < :at AND c.handled_at < :at"
LAPSED = "(c.deadline IS NULL OR c.deadline < :at)"  # its deadline has passed, or it has none
DUE = f"({CLOSED} OR {LAPSED})"
COUNTS = {
    "registered": "true",  # 立案数: the whole cohort
    "due_to_close": DUE,  # 应结案数
    "closed": CLOSED,  # 结案数
    "closed_on_time": f"{CLOSED} AND c.closed_at <= c.deadline",  # 按期结案数
    "due_to_handle": f"c.dispatched_at < :at AND ({HANDLED} OR {LAPSED})",  # 应处置数
    "handled": HANDLED,  # 处置数
    "handled_on_time": f"{HANDLED} AND c.handled_at <= c.deadline",  # 按期处置数
    "reworked": f"{DUE} AND c.rework_count > 0",  # 返工数: due cases sent back at least once
    "overdue_open": f"NOT coalesce({CLOSED}, false) AND c.deadline < :at",  # 超期未结数
}
RATES = {  # rate → (numerator, denominator)
    "closure_rate": ("closed", "due_to_close"),  # 结案率
    "on_time_closure_rate": ("closed_on_time", "due_to_close"),  # 按期结案率
    "on_time_handling_rate": ("handled_on_time", "due_to_handle"),  # 按期处置率
    "rework_rate": ("reworked", "due_to_close"),  # 返工率
}
CASE_FIELDS = (
    "c.closed_at, c.deadline, c.dispatched_at, c.handled_at, c.rework_count"  # COUNTS reads
)
COUNT_COLUMNS = ", ".join(
    f"count(*) FILTER (WHERE {rule}) AS {name}" for name, rule in COUNTS.items()
)


def area_sql(where: str) -> str:
    """SQL: every area of the level inside the areas (:f_scope), with its counts (null if none).

    Each case belongs to one listed area, so the rows add up to the totals: the area its unit grid
    code (单元网格编码, as registered) begins with; a case without a grid of a listed area (such
    as imported data) is placed by its point, by a spatial join the GiST index of case_record
    serves (the lowest code when it lies on a shared boundary).
    """
    return f"""
    WITH areas AS MATERIALIZED (
      SELECT a.code, a.name, a.geom FROM admin_area a WHERE a.level = :level
        AND (CAST(:f_scope AS text[]) IS NULL OR {in_areas("a.geom", "f_scope", polygonal=True)})),
    cohort AS MATERIALIZED (
      SELECT c.id, c.geom, {CASE_FIELDS}, g.code AS by_grid
      FROM case_record c LEFT JOIN areas g ON g.code = left(c.grid_code, :code_length)
      WHERE {where} AND {COHORT}),
    loose AS MATERIALIZED (SELECT * FROM cohort WHERE by_grid IS NULL),
    cases AS (
      SELECT c.by_grid AS grp, {CASE_FIELDS} FROM cohort c WHERE c.by_grid IS NOT NULL
      UNION ALL
      (SELECT DISTINCT ON (c.id) a.code AS grp, {CASE_FIELDS}
       FROM loose c JOIN areas a ON a.geom && c.geom AND ST_Intersects(a.geom, c.geom)
       ORDER BY c.id, a.code)),
    counts AS (SELECT c.grp, {COUNT_COLUMNS} FROM cases c GROUP BY c.grp)
    SELECT areas.code, areas.name, counts.* FROM areas LEFT JOIN counts ON counts.grp = areas.code
    ORDER BY areas.code"""


def department_sql(where: str) -> str:
    """SQL: the counts per department of the cases (null department: not dispatched)."""
    return f"""
    SELECT c.department AS code, {COUNT_COLUMNS} FROM case_record c WHERE {where} AND {COHORT}
    GROUP BY c.department ORDER BY c.department NULLS LAST"""


def grade(score: float | None) -> str | None:
    """The grade A–E of a score (A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E)."""
    if score is None:
        return None
    return next((g for low, g in GRADES if score >= low), "E")


def figures(counts: dict) -> dict:
    """The counts with their rates, composite score and grade."""
    out = {name: int(counts.get(name) or 0) for name in COUNTS}
    exact = {rate: (100.0 * out[num] / out[den] if out[den] else None)
             for rate, (num, den) in RATES.items()}  # fmt: skip
    out |= {rate: None if v is None else round(v, 2) for rate, v in exact.items()}
    parts = (exact["on_time_closure_rate"], exact["on_time_handling_rate"],
             None if exact["rework_rate"] is None else 100.0 - exact["rework_rate"])  # fmt: skip
    out["score"] = None if None in parts else round(sum(parts) / 3, 2)
    out["grade"] = grade(out["score"])
    return out


def ranked(rows: list[dict]) -> list[dict]:
    """Rows with a rank by score (equal scores share one; no score, no rank), best first."""
    scores = [r["score"] for r in rows if r["score"] is not None]
    for r in rows:
        r["rank"] = None if r["score"] is None else 1 + sum(s > r["score"] for s in scores)
    return sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0))


def areas_of(conn: Connection, code: str | None, user: User) -> tuple[str, ...] | None:
    """The areas to report on: the `area` parameter (checked) or the user's own areas."""
    if code is None:
        return tuple(user.scope) if user.scope else None
    if not allowed(user, code):
        raise Forbidden("该区域不在您的管辖范围内")
    if area_name(conn, code) is None:
        raise BadRequest(f"没有代码为 {code} 的行政区划")
    return (code,)


def end_of(stop: datetime) -> datetime:
    """When the counts are taken: the end of the window, or now if it has not ended yet."""
    return min(stop, datetime.now(stop.tzinfo))


def case_kpis(conn: Connection, params: dict, user: User) -> dict:
    """KPI rows (code, name, counts, rates in %, score, grade, rank) per area or department."""
    cases = dataclasses.replace(case_filter(params, user),
                                scope=areas_of(conn, params["area"], user))  # fmt: skip
    at = end_of(cases.bounds()[1])
    values = {**cases.bind(), "at": at, "voided": VOIDED, "level": params["by"],
              "code_length": catalog.ADMIN_CODE_LENGTHS.get(params["by"])}  # fmt: skip
    if params["by"] == "department":
        found = conn.execute(text(department_sql(cases.where("c"))), values).mappings().all()
        rows = [
            {"code": r["code"], "name": r["code"] or NO_DEPARTMENT, **figures(r)} for r in found
        ]
    else:
        found = conn.execute(text(area_sql(cases.where("c"))), values).mappings().all()
        rows = [{"code": r["code"], "name": r["name"], **figures(r)} for r in found]
    totals = {"name": "合计", **figures({k: sum(r[k] for r in rows) for k in COUNTS})}
    return {"by": params["by"], "from": cases.start.isoformat(), "to": cases.stop.isoformat(),
            "as_of": at.isoformat(), "rows": ranked(rows), "totals": totals}  # fmt: skip


CASE_KPIS = register(Analysis(
    id="case-kpis", title="案件考核指标",
    description="按区县、街道、社区或处置部门统计立案数、结案率、按期结案率、按期处置率、返工率与"
                "超期未结案件，按综合得分评定等级（A–E）并排名。",
    output="table",
    params=(Param("by", "统计单元", "choice", "district", choices=BY),
            *(p for p in CASE_PARAMS if p.name != "status"), Param("area", "区域", "area")),
    tables=("case_record", "admin_area"), run=case_kpis, cached=True,
))  # fmt: skip
