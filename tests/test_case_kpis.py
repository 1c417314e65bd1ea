"""Case KPIs (考核指标) on a hand-made town whose every count was worked out by hand.

Four streets of 2 × 2 km side by side inside 历下区 (as in test_coverage.py); a dozen cases with
known stage times in March 2026 (city clock, +08:00). Each case carries the flags a person
assigned it by reading the definitions in docs/CASE_ANALYTICS.md, and the expected figures are
sums of those flags and fractions written out below, never values from the code under test.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from fractions import Fraction

import numpy as np
import openpyxl
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, box
from sqlalchemy import text

from analytics.export import TITLES
from auth import accounts
from geodata.db import make_engine
from tests.import_helpers import codes, run, scalar, write_csv

TO_GEO = Transformer.from_crs(4548, 4490, always_xy=True)
OX, OY = 501168.0, 4056492.0  # inside 历下区 (370102)
STREETS = {"370102901": box(0, 0, 2000, 2000), "370102902": box(2000, 0, 4000, 2000),
           "370102903": box(4000, 0, 6000, 2000), "370102904": box(6000, 0, 8000, 2000)}  # fmt: skip
AT = {"901": (500, 500), "902": (2500, 500), "904": (6500, 500),
      "corner": (2000, 2000)}  # the corner is a vertex of streets 901 and 902  # fmt: skip
SANITATION, ENFORCEMENT = "城市管理局环卫处", "城市管理行政执法局"
HOUSING, MUNICIPAL = "住房和城乡建设局", "市政公用事业局"
WINDOW = {"from": "2026-03-01", "to": "2026-03-31"}
FLAGS = ("R", "D", "C", "CO", "DH", "H", "HO", "RW", "OV")
NAMES = {"R": "registered", "D": "due_to_close", "C": "closed", "CO": "closed_on_time",
         "DH": "due_to_handle", "H": "handled", "HO": "handled_on_time", "RW": "reworked",
         "OV": "overdue_open"}  # fmt: skip
# code, place, department, reported, registered, dispatched, handled, verified, closed, deadline,
# status, rework_count, flags assigned by hand (R 立案, D 应结案, C 结案, CO 按期结案, DH 应处置,
# H 处置, HO 按期处置, RW 返工, OV 超期未结) as of the end of March.
CASES = [
    ("K01", "901", SANITATION, "03-01 07:00", "03-01 07:30", "03-01 08:00", "03-01 20:00",
     "03-01 21:00", "03-01 22:00", "03-02 07:00", "已结案", 0, "R D C CO DH H HO"),  # 23:00 UTC
    ("K02", "901", SANITATION, "03-05 08:00", "03-05 08:10", "03-05 08:20", "03-07 12:00",
     "03-07 13:00", "03-07 14:00", "03-06 08:00", "已结案", 1, "R D C DH H RW"),  # late
    ("K03", "901", ENFORCEMENT, "03-10 08:00", "03-10 08:30", "03-10 09:00", None, None, None,
     "03-11 08:00", "已派遣", 0, "R D DH OV"),  # still open, past its deadline
    ("K04", "901", ENFORCEMENT, "03-31 20:00", "03-31 20:30", "03-31 21:00", None, None, None,
     "04-01 20:00", "已派遣", 0, "R"),  # not yet due at the end of March
    ("K05", "901", ENFORCEMENT, "03-12 08:00", "03-12 08:30", None, None, None, None,
     "03-13 08:00", "已作废", 0, ""),  # voided
    ("K06", "901", HOUSING, "03-15 10:00", "03-15 10:30", "03-15 11:00", "03-16 09:00",
     "04-02 09:00", "04-02 10:00", "03-16 10:00", "已结案", 2, "R D DH H HO RW OV"),  # closed in April
    ("K07", "901", SANITATION, "02-28 23:00", "03-01 00:10", "03-01 00:20", "03-01 05:00",
     "03-01 06:00", "03-01 07:00", "03-01 23:00", "已结案", 0, ""),  # reported in February
    ("K08", "901", SANITATION, "03-20 08:00", None, None, None, None, None, "03-21 08:00",
     "待立案", 0, ""),  # never registered
    ("K09", "901", None, "03-25 08:00", "03-25 08:30", None, None, None, None, "03-26 08:00",
     "已立案", 0, "R D OV"),  # never dispatched: 未派遣
    ("K13", "corner", SANITATION, "03-08 08:00", "03-08 08:10", "03-08 08:20", "03-08 12:00",
     "03-08 13:00", "03-08 14:00", "03-09 08:00", "已结案", 0, "R D C CO DH H HO"),
    ("K14", "901", ENFORCEMENT, "03-20 09:00", "03-20 09:10", "03-20 09:20", "03-21 09:00",
     "03-21 10:00", "03-22 09:00", None, "已结案", 0, "R D C DH H"),  # no deadline: never on time
    ("K16", "901", ENFORCEMENT, "03-31 23:50", "04-01 00:20", None, None, None, None,
     "04-02 08:00", "已立案", 0, ""),  # registered only in April
    ("K10", "902", MUNICIPAL, "03-03 08:00", "03-03 08:05", "03-03 08:10", "03-03 10:00",
     "03-03 11:00", "03-03 12:00", "03-04 08:00", "已结案", 0, "R D C CO DH H HO"),
    ("K11", "902", MUNICIPAL, "03-04 08:00", "03-04 08:05", "03-04 08:10", "03-04 13:00",
     "03-04 14:00", "03-04 15:00", "03-05 08:00", "已结案", 0, "R D C CO DH H HO"),
    ("K12", "902", MUNICIPAL, "04-01 08:00", "04-01 08:05", "04-01 08:10", "04-01 13:00",
     "04-01 14:00", "04-01 15:00", "04-02 08:00", "已结案", 0, ""),  # reported in April
    ("K15", "904", MUNICIPAL, "03-18 08:00", "03-18 08:05", "03-18 08:10", "03-18 13:00",
     "03-18 14:00", "03-18 15:00", "03-19 08:00", "已结案", 0, "R D C CO DH H HO"),
]  # fmt: skip


def geo(geom):
    """Town metres (EPSG:4548 around OX, OY) to stored EPSG:4490 lon/lat."""
    return shapely.transform(geom, lambda xy: np.column_stack(
        TO_GEO.transform(xy[:, 0] + OX, xy[:, 1] + OY)))  # fmt: skip


def moment(day_time: str | None) -> str | None:
    """'MM-DD HH:MM' in 2026 on the city clock (+08:00)."""
    return None if day_time is None else f"2026-{day_time}:00+08"


@pytest.fixture(scope="module")
def town(scratch):
    """A scratch city with the four streets, the cases, a leader and a district user of 902."""
    url = scratch.create_city("onemap_kpis")
    engine = make_engine(url)
    with engine.begin() as conn:
        for code, g in STREETS.items():
            conn.execute(text("INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
                              "(:c, 'street', :n, '370102', ST_GeomFromEWKT(:g))"),
                         {"c": code, "n": f"测试街道{code[-1]}",
                          "g": f"SRID=4490;{shapely.MultiPolygon([geo(g)]).wkt}"})  # fmt: skip
        for code, place, dept, *times, status, rework, _flags in CASES:
            stages = dict(zip(("rep", "reg", "dis", "han", "ver", "clo", "dl"), map(moment, times),
                              strict=True))  # fmt: skip
            conn.execute(text(
                "INSERT INTO case_record (code, kind, event_class_code, source, department, status,"
                " rework_count, reported_at, registered_at, dispatched_at, handled_at, verified_at,"
                " closed_at, deadline, geom) VALUES (:code, '事件', '0102', '监督员上报', :dept,"
                " :status, :rework, :rep, :reg, :dis, :han, :ver, :clo, :dl, ST_GeomFromEWKT(:g))"),
                {"code": f"AJ{code}", "dept": dept, "status": status, "rework": rework, **stages,
                 "g": f"SRID=4490;{geo(Point(AT[place])).wkt}"})  # fmt: skip
        tokens = {}
        for role in ("leader", "district", "kiosk"):
            areas = ["370102902"] if role == "district" else []
            accounts.add_user(conn, f"kpi_{role}", role, "kpi-password-1", areas=areas)
            tokens[role] = accounts.create_token(conn, f"kpi_{role}", "t", 1)[1]
    from app import create_app
    from settings import Settings

    client = create_app(Settings(DATABASE_URL=url)).server.test_client()
    yield {"engine": engine, "client": client, "tokens": tokens}
    engine.dispose()


def get(town, suffix: str = "", role: str = "leader", **params):
    """GET /api/analytics/case-kpis{suffix} on the town's app as a role."""
    headers = {"Authorization": f"Bearer {town['tokens'][role]}"}
    return town["client"].get(f"/api/analytics/case-kpis{suffix}", query_string=params,
                              headers=headers)  # fmt: skip


def kpis(town, role: str = "leader", **params) -> dict:
    """The result of a successful KPI request."""
    resp = get(town, role=role, **params)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["result"]


def hand_counts(codes_in: set[str]) -> dict[str, int]:
    """The hand-assigned flags of those cases, summed."""
    tally = Counter(f for c in CASES if c[0] in codes_in for f in c[-1].split())
    return {NAMES[f]: tally[f] for f in FLAGS}


def pct(part: int, whole: int) -> float:
    """An exact percentage, for comparison with pytest.approx."""
    return float(Fraction(100 * part, whole))


def counts_of(row: dict) -> dict[str, int]:
    """The nine counts of a result row."""
    return {NAMES[f]: row[NAMES[f]] for f in FLAGS}


def test_street_counts_are_the_hand_counts(town):
    body = kpis(town, by="street", **WINDOW)
    rows = {r["code"]: r for r in body["rows"]}
    assert set(rows) == set(STREETS)  # every street, also 903 without any case
    assert counts_of(rows["370102901"]) == hand_counts(
        {"K01", "K02", "K03", "K04", "K06", "K09", "K13", "K14"}
    )  # K13: the lower code wins
    assert counts_of(rows["370102902"]) == hand_counts({"K10", "K11"})
    assert counts_of(rows["370102904"]) == hand_counts({"K15"})
    s901 = rows["370102901"]
    assert (s901["registered"], s901["due_to_close"], s901["closed"], s901["closed_on_time"],
            s901["due_to_handle"], s901["handled"], s901["handled_on_time"], s901["reworked"],
            s901["overdue_open"]) == (8, 7, 4, 2, 6, 5, 3, 2, 3)  # fmt: skip
    assert s901["closure_rate"] == pytest.approx(pct(4, 7), abs=0.005)
    assert s901["on_time_closure_rate"] == pytest.approx(pct(2, 7), abs=0.005)
    assert s901["on_time_handling_rate"] == pytest.approx(50.0)
    assert s901["rework_rate"] == pytest.approx(pct(2, 7), abs=0.005)
    assert s901["score"] == pytest.approx((pct(2, 7) + 50 + 100 - pct(2, 7)) / 3, abs=0.005)
    assert s901["grade"] == "D"  # 50: D is 40–60
    assert body["from"] == "2026-03-01" and body["to"] == "2026-03-31"
    assert body["as_of"].startswith("2026-04-01T00:00:00+08")


def test_zero_denominators_give_null_rates_not_zero(town):
    s903 = next(r for r in kpis(town, by="street", **WINDOW)["rows"] if r["code"] == "370102903")
    assert counts_of(s903) == dict.fromkeys(NAMES.values(), 0)
    for key in ("closure_rate", "on_time_closure_rate", "on_time_handling_rate", "rework_rate",
                "score", "grade", "rank"):  # fmt: skip
        assert s903[key] is None, key


def test_ranking_order_ties_and_totals(town):
    body = kpis(town, by="street", **WINDOW)
    assert [(r["code"], r["rank"], r["grade"]) for r in body["rows"]] == [
        ("370102902", 1, "A"), ("370102904", 1, "A"), ("370102901", 3, "D"),
        ("370102903", None, None)]  # fmt: skip
    every = {"K01", "K02", "K03", "K04", "K06", "K09", "K13", "K14", "K10", "K11", "K15"}
    totals = body["totals"]
    assert counts_of(totals) == hand_counts(every)
    assert (totals["registered"], totals["due_to_close"], totals["closed_on_time"],
            totals["due_to_handle"], totals["handled_on_time"], totals["reworked"]) == (
        11, 10, 5, 9, 6, 2)  # fmt: skip
    assert totals["score"] == pytest.approx((50 + pct(6, 9) + 80) / 3, abs=0.005)
    assert totals["grade"] == "C" and totals["name"] == "合计"


def test_department_grouping(town):
    body = kpis(town, by="department", **WINDOW)
    rows = {r["name"]: r for r in body["rows"]}
    assert set(rows) == {SANITATION, ENFORCEMENT, HOUSING, MUNICIPAL, "未派遣"}
    assert counts_of(rows[SANITATION]) == hand_counts({"K01", "K02", "K13"})
    assert counts_of(rows[ENFORCEMENT]) == hand_counts({"K03", "K04", "K14"})
    assert counts_of(rows[HOUSING]) == hand_counts({"K06"})
    assert counts_of(rows[MUNICIPAL]) == hand_counts({"K10", "K11", "K15"})
    assert counts_of(rows["未派遣"]) == hand_counts({"K09"}) and rows["未派遣"]["code"] is None
    # 环卫处: 2/3 on time closed, 2/3 on time handled, 1/3 reworked; 执法局 (0 + 0 + 100) / 3 and
    # 住建局 (0 + 100 + 0) / 3 tie; nobody was dispatched for 未派遣, so it has no score.
    assert rows[SANITATION]["score"] == pytest.approx(pct(2, 3), abs=0.005)
    assert rows[ENFORCEMENT]["score"] == rows[HOUSING]["score"] == pytest.approx(100 / 3, abs=0.005)
    ranks = {name: (r["rank"], r["grade"]) for name, r in rows.items()}
    assert ranks == {MUNICIPAL: (1, "A"), SANITATION: (2, "C"), ENFORCEMENT: (3, "E"),
                     HOUSING: (3, "E"), "未派遣": (None, None)}  # fmt: skip
    assert [r["rank"] for r in body["rows"]] == [1, 2, 3, 3, None]
    assert body["totals"]["registered"] == 11


def test_districts_list_every_district_in_scope(town):
    body = kpis(town, by="district", **WINDOW)
    with town["engine"].connect() as conn:
        districts = conn.execute(text("SELECT count(*) FROM admin_area WHERE level = 'district'"))
        districts = districts.scalar()
    assert len(body["rows"]) == districts > 100
    assert body["rows"][0]["code"] == "370102" and body["rows"][0]["registered"] == 11
    assert all(r["registered"] == 0 and r["rank"] is None for r in body["rows"][1:])


def test_a_district_user_sees_only_its_street(town):
    body = kpis(town, role="district", by="street", **WINDOW)
    assert [r["code"] for r in body["rows"]] == ["370102902"]
    # K13 lies on the street's corner: inside the user's areas, so it counts for them here.
    assert counts_of(body["rows"][0]) == hand_counts({"K10", "K11", "K13"})
    depts = kpis(town, role="district", by="department", **WINDOW)["rows"]
    assert {r["name"]: r["registered"] for r in depts} == {MUNICIPAL: 2, SANITATION: 1}
    assert get(town, role="district", area="370102901", **WINDOW).status_code == 403
    assert get(town, role="kiosk", **WINDOW).status_code == 403


def test_area_parameter_limits_the_rows_and_cases(town):
    body = kpis(town, by="department", area="370102904", **WINDOW)
    assert [(r["name"], r["registered"]) for r in body["rows"]] == [(MUNICIPAL, 1)]


def test_an_empty_window_is_an_empty_result(town):
    empty = {"from": "2020-01-01", "to": "2020-01-31"}
    streets = kpis(town, by="street", **empty)
    assert len(streets["rows"]) == 4
    assert all(r["registered"] == 0 and r["score"] is None for r in streets["rows"])
    depts = kpis(town, by="department", **empty)
    assert depts["rows"] == [] and depts["totals"]["registered"] == 0
    assert depts["totals"]["closure_rate"] is None


@pytest.mark.parametrize("bad", [
    {"by": "country"}, {"by": "grid"}, {"from": "2026-13-01"},
    {"from": "2026-04-01", "to": "2026-03-01"}, {"class": "99"}, {"source": "电话"},
    {"area": "12ab"}, {"area": "370102999"}, {"status": "已结案"}, {"colour": "red"}])  # fmt: skip
def test_bad_values_are_400_with_a_chinese_message(town, bad):
    resp = get(town, **{**WINDOW, **bad})
    assert resp.status_code == 400
    message = resp.get_json()["error"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in message), message


def cell(value):
    """A JSON value as the export writes it (None → empty)."""
    return "" if value is None else str(value)


def test_csv_and_xlsx_exports_equal_the_json(town):
    params = {"by": "department", **WINDOW}
    rows = kpis(town, **params)["rows"]
    key_of = {TITLES[k]: k for k in rows[0]}  # every column has its own Chinese title
    assert len(key_of) == len(rows[0]) and {"按期结案率(%)", "返工率(%)", "等级"} <= set(key_of)
    resp = get(town, "/export.csv", **params)
    assert resp.status_code == 200
    table = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    keys = [key_of[t] for t in table[0]]
    assert sorted(keys) == sorted(rows[0])
    assert table[1:] == [[cell(r[k]) for k in keys] for r in rows]
    resp = get(town, "/export.xlsx", **params)
    assert resp.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(resp.data))
    got = [list(r) for r in book["明细"].iter_rows(values_only=True)]
    keys = [key_of[t] for t in got[0]]
    assert sorted(keys) == sorted(rows[0])
    assert got[1:] == [[r[k] for k in keys] for r in rows]
    totals = [list(r) for r in book["合计"].iter_rows(values_only=True)]
    body = get(town, "", **params).get_json()["result"]["totals"]
    assert totals[1] == [body[key_of[t]] for t in totals[0]]


def test_importer_maps_rework_count(town, tmp_path):
    header = "code,event_class_code,source,status,reported_at,rework_count,lon,lat"
    lon, lat = geo(Point(AT["904"])).coords[0]
    at = f"{lon:.7f},{lat:.7f}"
    rows = [f"IMP01,0102,公众举报,已结案,2024-05-01 08:00,2,{at}",
            f"IMP02,0102,公众举报,已结案,2024-05-01 09:00,,{at}",
            f"IMP03,0102,公众举报,已结案,2024-05-01 10:00,-1,{at}",
            f"IMP04,0102,公众举报,已结案,2024-05-01 11:00,1.5,{at}"]  # fmt: skip
    report = run(town["engine"], "case", write_csv(tmp_path / "k.csv", header, rows),
                 stack_threshold=0)  # fmt: skip
    assert report.loaded == 2 and codes(report) == {"bad_value": 2}
    sql = "SELECT rework_count FROM case_record WHERE code = :c"
    assert scalar(town["engine"], sql, c="IMP01") == 2
    assert scalar(town["engine"], sql, c="IMP02") == 0  # empty: the column's default


def test_demo_cases_have_a_realistic_rework_share(demo_engine):
    with demo_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT avg((rework_count > 0)::int) FILTER (WHERE verified_at IS NOT NULL) AS share,"
            " count(*) FILTER (WHERE verified_at IS NULL AND rework_count > 0) AS unverified,"
            " max(rework_count) AS most FROM case_record")).mappings().one()  # fmt: skip
    assert 0.03 < row["share"] < 0.10
    assert row["unverified"] == 0 and row["most"] == 2
