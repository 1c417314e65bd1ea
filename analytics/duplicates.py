"""相似案卷判断 (duplicate reports): open cases that may be the same problem reported again.

For a case (one in the database, a row being imported, or a report not yet saved) the candidates
are the **open** cases of the same kind (事件 / 部件) and the same major class (大类) within
D metres (geodesic) and T hours (before or after) of it. Open means a status other than 已结案
and 已作废 (`CLOSED_STATUSES`): a closed case can no longer be dispatched twice and a voided one
was never real, so neither can be the case a new report duplicates; 待立案 … 已核查 can. Each
candidate gets a score in [0, 1], the weighted mean of four parts:

    distance  1 − d / D
    time      1 − |Δt| / T
    class     1 for the same minor class (小类), `same_major_credit` for another minor class
              of the same major class
    text      Jaccard similarity of the two descriptions' character bigrams (letters, digits and
              Chinese characters; punctuation and spaces ignored); when either description is
              empty this part and its weight are left out

A candidate whose score reaches `threshold` is a likely duplicate (疑似重复). Every default lives
in `DEFAULTS`; the API may narrow or widen D and T within `Param` limits, and the distance and
time parts then scale with the chosen window.

The SQL serves the window from indexes: a bounding box grown by D metres converted to degrees
(never smaller than D on the ellipsoid) meets the GiST index on `geom`, then `ST_DWithin` on
geography keeps what lies within D metres; `reported_at` and `status` are indexed too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, text

from analytics.contract import Analysis, Param, register
from auth.accounts import User
from errors import BadRequest, NotFound
from geodata import catalog
from geodata.areas import in_areas
from geodata.catalog import SRID


@dataclass(frozen=True)
class Rules:
    """The window, the weights of the score and the threshold of a likely duplicate."""

    distance_m: int = 100  # D: geodesic distance from the case
    hours: float = 24.0  # T: reported at most this long before or after the case
    weight_distance: float = 0.35
    weight_time: float = 0.15
    weight_class: float = 0.30
    weight_text: float = 0.20
    same_major_credit: float = 0.3  # class part for the same major but another minor class
    threshold: float = 0.65  # score from which a candidate is a likely duplicate


DEFAULTS = Rules()
CLOSED_STATUSES = catalog.checked(("已结案", "已作废"), catalog.CASE_STATUSES, "closed statuses")
OPEN_STATUSES = tuple(s for s in catalog.CASE_STATUSES if s not in CLOSED_STATUSES)
CASE_CODE = re.compile(r"^[0-9A-Za-z_-]{4,32}$")  # the case_record code CHECK
MAX_ROWS = 200
MAX_DISTANCE_M = 1000
MAX_HOURS = 168
M_PER_DEG_LAT = 110574.0  # the shortest degree of latitude (at the equator), in metres
M_PER_DEG_LON = 111319.49  # a degree of longitude on the equator; at latitude φ at least this·cosφ


def class_of(alias: str) -> str:
    """SQL: the minor class code of a case (event or component)."""
    return f"coalesce({alias}.event_class_code, {alias}.component_class_code)"


def near(c: str, s: str, c_class: str, s_class: str) -> str:
    """SQL: case `c` is open, of the kind and major class of `s`, within D metres and T hours."""
    reach_lat = f"(:distance * 1.01 / {M_PER_DEG_LAT})"
    reach_lon = (f"(:distance * 1.01 / ({M_PER_DEG_LON} * "
                 f"cos(radians(least(abs(ST_Y({s}.geom)) + 0.1, 89.0)))))")  # fmt: skip
    return (
        f"{c}.geom && ST_Expand({s}.geom, {reach_lon}, {reach_lat})"
        f" AND ST_DWithin({c}.geom::geography, {s}.geom::geography, :distance)"
        f" AND {c}.reported_at BETWEEN {s}.reported_at - :hours * interval '1 hour'"
        f" AND {s}.reported_at + :hours * interval '1 hour'"
        f" AND {c}.status = ANY(CAST(:open AS text[])) AND {c}.kind = {s}.kind"
        f" AND left({c_class}, 2) = left({s_class}, 2)"
    )


MEASURES = (
    "ST_Distance(c.geom::geography, s.geom::geography) AS distance_m, "
    "CAST(abs(extract(epoch FROM c.reported_at - s.reported_at)) / 3600 AS float8) AS hours_apart"
)
CANDIDATES = text(
    f"""
    WITH s AS (SELECT CAST(:kind AS text) AS kind, CAST(:class_code AS text) AS class_code,
                      ST_SetSRID(ST_MakePoint(:lon, :lat), {SRID}) AS geom,
                      CAST(:reported_at AS timestamptz) AS reported_at)
    SELECT c.code, {class_of("c")} AS class_code, c.class_name, c.status, c.reported_at,
           c.address, c.description, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, {MEASURES}
    FROM s JOIN case_view c ON {near("c", "s", class_of("c"), "s.class_code")}
    WHERE c.code IS DISTINCT FROM CAST(:exclude AS text)
      AND (CAST(:scope AS text[]) IS NULL OR {in_areas("c.geom", "scope")})
    """
)
SUBJECT = text(
    f"""
    SELECT c.code, c.kind, {class_of("c")} AS class_code, c.class_name, c.status, c.reported_at,
           c.address, c.description, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
    FROM case_view c
    WHERE c.code = :code AND (CAST(:scope AS text[]) IS NULL OR {in_areas("c.geom", "scope")})
    """
)


# --- the score ------------------------------------------------------------------------------


def bigrams(description: str | None) -> set[str]:
    """Character bigrams of a text's letters, digits and Chinese characters (one character: itself)."""
    chars = "".join(ch for ch in (description or "") if ch.isalnum()).lower()
    if len(chars) == 1:
        return {chars}
    return {chars[i : i + 2] for i in range(len(chars) - 1)}


def text_similarity(a: str | None, b: str | None) -> float | None:
    """Jaccard similarity of two descriptions' bigrams (None when either has no text)."""
    ga, gb = bigrams(a), bigrams(b)
    if not ga or not gb:
        return None
    return len(ga & gb) / len(ga | gb)


def closeness(gap: float, limit: float) -> float:
    """1 at no gap, falling linearly to 0 at the limit (and beyond)."""
    return max(0.0, 1.0 - abs(gap) / limit)


def score(distance_m: float, hours_apart: float, same_minor: bool, text_sim: float | None,
          rules: Rules = DEFAULTS) -> float:  # fmt: skip
    """The similarity score in [0, 1]: weighted mean of distance, time, class and text parts."""
    parts = [(rules.weight_distance, closeness(distance_m, rules.distance_m)),
             (rules.weight_time, closeness(hours_apart, rules.hours)),
             (rules.weight_class, 1.0 if same_minor else rules.same_major_credit)]  # fmt: skip
    if text_sim is not None:
        parts.append((rules.weight_text, text_sim))
    return sum(w * v for w, v in parts) / sum(w for w, _ in parts)


def scored(row, class_code: str, description: str | None, rules: Rules) -> dict:
    """A candidate row as JSON with its measures, text similarity, score and likely flag."""
    sim = text_similarity(description, row["description"])
    value = score(
        row["distance_m"], row["hours_apart"], row["class_code"] == class_code, sim, rules
    )
    return {"code": row["code"], "class_code": row["class_code"], "class_name": row["class_name"],
            "status": row["status"], "distance_m": round(float(row["distance_m"]), 1),
            "hours_apart": round(float(row["hours_apart"]), 2),
            "text_similarity": None if sim is None else round(sim, 3), "score": round(value, 3),
            "likely": value >= rules.threshold, "reported_at": row["reported_at"].isoformat(),
            "address": row["address"], "description": row["description"],
            "lon": round(row["lon"], 7), "lat": round(row["lat"], 7)}  # fmt: skip


def ranked(rows: list[dict]) -> list[dict]:
    """Best first: score, then distance, then code."""
    return sorted(rows, key=lambda r: (-r["score"], r["distance_m"], r["code"]))[:MAX_ROWS]


# --- searches -------------------------------------------------------------------------------


def window_params(rules: Rules) -> dict:
    """The bound parameters of the window."""
    return {"distance": float(rules.distance_m), "hours": float(rules.hours),
            "open": list(OPEN_STATUSES)}  # fmt: skip


def similar_open_cases(conn: Connection, kind: str, class_code: str, lon: float, lat: float,
                       reported_at: datetime, description: str | None = None, *,
                       scope: Sequence[str] | None = None, rules: Rules = DEFAULTS,
                       exclude: str | None = None) -> list[dict]:  # fmt: skip
    """Open cases that may report the same problem as this report (saved or not), best first."""
    rows = conn.execute(CANDIDATES, {
        **window_params(rules), "kind": kind, "class_code": class_code, "lon": lon, "lat": lat,
        "reported_at": reported_at, "exclude": exclude, "scope": list(scope) if scope else None,
    }).mappings()  # fmt: skip
    return ranked([scored(r, class_code, description, rules) for r in rows])


def case_code(raw) -> str:
    """A case code from untrusted input, or 400."""
    if not isinstance(raw, str) or not CASE_CODE.match(raw):
        raise BadRequest("参数 case 必须是案件编号（4–32 位字母、数字、下划线或连字符）")
    return raw


def similar_to_case(conn: Connection, code: str, scope: Sequence[str] | None = None,
                    rules: Rules = DEFAULTS) -> dict:  # fmt: skip
    """The case (within `scope`, else 404) and its possible duplicates among the open cases there."""
    subject = conn.execute(SUBJECT, {"code": code, "scope": list(scope) if scope else None})
    case = subject.mappings().first()
    if case is None:
        raise NotFound(f"没有编号为 {code} 的案件，或您无权查看")
    rows = similar_open_cases(conn, case["kind"], case["class_code"], case["lon"], case["lat"],
                              case["reported_at"], case["description"], scope=scope, rules=rules,
                              exclude=code)  # fmt: skip
    return {"case_code": code, "case_class_name": case["class_name"],
            "case_status": case["status"], "case_reported_at": case["reported_at"].isoformat(),
            "max_distance_m": rules.distance_m, "max_hours": rules.hours,
            "threshold": rules.threshold, "count": len(rows),
            "likely_count": sum(r["likely"] for r in rows), "rows": rows}  # fmt: skip


def duplicates(conn: Connection, params: dict, user: User) -> dict:
    """The analysis: possible duplicates of one case, both limited to the user's areas."""
    rules = replace(DEFAULTS, distance_m=params["distance_m"], hours=params["hours"])
    return similar_to_case(conn, case_code(params["case"]), user.scope, rules)


# --- imports: every staged row against the database and the earlier rows of its file -------


IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def staged_fields(table: str, columns: Sequence[str]) -> tuple[str, str]:
    """SQL of a staged row's class and description (`s`), from the columns its file filled."""
    if not IDENT.match(table):
        raise ValueError(f"bad table name {table!r}")
    present = [f"s.{c}" for c in ("event_class_code", "component_class_code") if c in columns]
    text_sql = "s.description" if "description" in columns else "CAST(NULL AS text)"
    return f"coalesce({', '.join(present)}, NULL)", text_sql


def set_open_rows_aside(conn: Connection, table: str, columns: Sequence[str], skip: list[int],
                        rules: Rules) -> None:  # fmt: skip
    """The open staged rows in a temporary table `<table>_open` of their own, indexed by position."""
    s_class, s_text = staged_fields(table, columns)
    conn.execute(text(f"DROP TABLE IF EXISTS {table}_open"))
    conn.execute(text(
        f"CREATE TEMP TABLE {table}_open ON COMMIT DROP AS SELECT s.row_no, s.code, s.kind, "
        f"s.status, s.reported_at, s.geom, {s_class} AS class_code, {s_text} AS description "
        f"FROM {table} s WHERE s.status = ANY(CAST(:open AS text[])) "
        f"AND s.row_no <> ALL(CAST(:skip AS int[]))"), {**window_params(rules), "skip": skip})  # fmt: skip
    conn.execute(text(f"CREATE INDEX ON {table}_open USING gist (geom)"))
    conn.execute(text(f"ANALYZE {table}_open"))


def staged_sql(table: str, columns: Sequence[str], with_database: bool) -> str:
    """SQL pairing staged rows with earlier open rows of the file and open cases in the database.

    Each side is a LATERAL subquery kept apart (OFFSET 0), so every staged row probes the GiST
    index of the other side instead of the planner joining all rows of a class with each other.
    """
    s_class, s_text = staged_fields(table, columns)
    head = (f"SELECT s.row_no, s.code, {s_class} AS class_code, {s_text} AS description, m.* "
            f"FROM {table} s CROSS JOIN LATERAL")  # fmt: skip
    tail = "OFFSET 0) m WHERE s.row_no <> ALL(CAST(:skip AS int[]))"
    in_file = (f"{head} (SELECT e.code AS match_code, e.row_no AS match_row, "
               f"e.class_code AS match_class, e.description AS match_description, "
               f"{MEASURES.replace('c.', 'e.')} FROM {table}_open e WHERE e.row_no < s.row_no "
               f"AND {near('e', 's', 'e.class_code', s_class)} {tail}")  # fmt: skip
    if not with_database:
        return in_file
    in_database = (f"{head} (SELECT c.code, CAST(NULL AS integer), {class_of('c')}, "
                   f"c.description, {MEASURES} FROM case_record c WHERE c.code <> s.code "
                   f"AND {near('c', 's', class_of('c'), s_class)} {tail}")  # fmt: skip
    return f"{in_file} UNION ALL {in_database}"


def staged_duplicates(conn: Connection, table: str, columns: Sequence[str], *,
                      skip_rows: Sequence[int] = (), with_database: bool = True,
                      rules: Rules = DEFAULTS) -> list[dict]:  # fmt: skip
    """Per staged row, its best likely duplicate (row, code, match_code, match_row, score…)."""
    if "code" not in columns or not {"event_class_code", "component_class_code"} & set(columns):
        return []
    skip = sorted(skip_rows)
    set_open_rows_aside(conn, table, columns, skip, rules)
    sql = text(staged_sql(table, columns, with_database))
    best: dict[int, tuple[float, dict]] = {}
    for r in conn.execute(sql, {**window_params(rules), "skip": skip}).mappings():
        sim = text_similarity(r["description"], r["match_description"])
        value = score(r["distance_m"], r["hours_apart"], r["class_code"] == r["match_class"], sim,
                      rules)  # fmt: skip
        if value < rules.threshold or value <= best.get(r["row_no"], (-1.0, {}))[0]:
            continue
        best[r["row_no"]] = (value, {
            "row": r["row_no"], "code": r["code"], "match_code": r["match_code"],
            "match_row": r["match_row"], "score": round(value, 3),
            "distance_m": round(float(r["distance_m"]), 1),
            "hours_apart": round(float(r["hours_apart"]), 2)})  # fmt: skip
    return [best[k][1] for k in sorted(best)]


DUPLICATES = register(Analysis(
    id="duplicates", title="相似案卷判断",
    description="某案件附近（默认 100 米、前后 24 小时内）同类未结案件及相似度（距离、时间、类别、"
                "描述文字），相似度达到阈值的为疑似重复。",
    output="table",
    params=(Param("case", "案件编号", "text", required=True),
            Param("distance_m", "距离范围(米)", "int", DEFAULTS.distance_m, low=10,
                  high=MAX_DISTANCE_M),
            Param("hours", "时间范围(小时)", "float", DEFAULTS.hours, low=0.5, high=MAX_HOURS)),
    tables=("case_record",), run=duplicates,
))  # fmt: skip
