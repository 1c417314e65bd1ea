"""相似案卷判断: scores by hand, the demo's planted pairs and look-alikes, the API, scope, imports.

Expected values come from outside the code under test: geodesic distances from pyproj (GRS80, the
CGCS2000 ellipsoid), time gaps from the stored timestamps, bigram sets counted by hand or with
plain set operations written here, and the score formula written out with its documented weights.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from pyproj import Geod
from sqlalchemy import text

from analytics.duplicates import DEFAULTS, DUPLICATES, similar_open_cases, text_similarity
from tests import import_helpers
from tests.conftest import auth, district_token
from tests.import_helpers import LIXIA, count, run, write_csv
from tests.test_handlers import open_archive

import_url, db = import_helpers.import_url, import_helpers.db  # module fixtures

GEOD = Geod(ellps="GRS80")
PLANTED = "^[0-9]{14}9[1-5][0-9]{4}[12]$"  # serial 9GKKKKR, see loaders/demo/similar.py
CODE = "<a planted case>"
GROUP = {"1": "pair", "2": "other_class", "3": "far", "4": "days_apart", "5": "closed"}
# The documented defaults (docs/CASE_ANALYTICS.md), written out again on purpose.
D_M, T_H, W_D, W_T, W_C, W_X, SAME_MAJOR, THRESHOLD = 100, 24, 0.35, 0.15, 0.30, 0.20, 0.3, 0.65


def metres(lon1, lat1, lon2, lat2) -> float:
    """Geodesic distance on the GRS80 ellipsoid (pyproj)."""
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def jaccard(a: str, b: str) -> float:
    """Character-bigram Jaccard of two texts, letters/digits/CJK only (written independently)."""

    def grams(s: str) -> set[str]:
        keep = [ch for ch in s if ch.isalnum()]
        return {keep[i] + keep[i + 1] for i in range(len(keep) - 1)}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def by_hand(d: float, hours: float, same_minor: bool, sim: float | None) -> float:
    """The documented score: weighted mean of the parts, text left out when there is none."""
    parts = [(W_D, max(0, 1 - d / D_M)), (W_T, max(0, 1 - hours / T_H)),
             (W_C, 1.0 if same_minor else SAME_MAJOR)]  # fmt: skip
    if sim is not None:
        parts.append((W_X, sim))
    return sum(w * v for w, v in parts) / sum(w for w, _ in parts)


def rows_of(engine, sql: str, **params) -> list[dict]:
    """Rows of a query as dicts."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]


@pytest.fixture(scope="module")
def planted(demo_engine) -> dict[tuple[str, int], dict[int, dict]]:
    """{(group, k): {1: first/anchor, 2: second/look-alike}} of the demo's planted cases."""
    found: dict = {}
    for r in rows_of(demo_engine, "SELECT id, code, event_class_code, status, reported_at, "
                                  "description, ST_X(geom) lon, ST_Y(geom) lat FROM case_record "
                                  "WHERE code ~ :p", p=PLANTED):  # fmt: skip
        serial = r["code"][-7:]
        found.setdefault((GROUP[serial[1]], int(serial[2:6])), {})[int(serial[6])] = r
    return found


def similar(client, headers, code: str, **params):
    """GET /api/analytics/duplicates for a case."""
    return client.get("/api/analytics/duplicates", query_string={"case": code, **params},
                      headers=headers)  # fmt: skip


def results(client, headers, code: str, **params) -> dict[str, dict]:
    """{code: row} of the possible duplicates of a case."""
    resp = similar(client, headers, code, **params)
    assert resp.status_code == 200, resp.get_json()
    return {r["code"]: r for r in resp.get_json()["result"]["rows"]}


# --- the score, by hand ---------------------------------------------------------------------


def test_defaults_are_the_documented_ones_and_the_api_uses_them():
    assert (DEFAULTS.distance_m, DEFAULTS.hours, DEFAULTS.weight_distance, DEFAULTS.weight_time,
            DEFAULTS.weight_class, DEFAULTS.weight_text, DEFAULTS.same_major_credit,
            DEFAULTS.threshold) == (D_M, T_H, W_D, W_T, W_C, W_X, SAME_MAJOR, THRESHOLD)  # fmt: skip
    defaults = {p.name: p.default for p in DUPLICATES.params}
    assert defaults == {"case": None, "distance_m": D_M, "hours": T_H}


def test_text_similarity_counts_character_bigrams():
    # 井盖 盖破 破损 | 井盖 盖破 破损 损严 严重 → 3 shared of 5
    assert text_similarity("井盖破损", "井盖破损严重") == pytest.approx(3 / 5)
    # punctuation and spaces do not count: 井盖 盖破 破损 vs 井盖 盖破 破损 损了 → 3 / 4
    assert text_similarity("井盖，破损！", "井盖 破损了") == pytest.approx(3 / 4)
    assert text_similarity("垃圾", "垃圾") == 1.0 and text_similarity("垃圾", "广告") == 0.0
    assert text_similarity("", "垃圾") is None and text_similarity(None, "垃圾") is None


def test_a_hand_made_report_not_yet_saved_is_scored_by_hand(demo_engine, planted):
    anchor = planted[("pair", 1)][1]
    lon, lat = anchor["lon"] + 0.0002, anchor["lat"] + 0.0001
    at = anchor["reported_at"] + timedelta(minutes=90)
    words = anchor["description"][:8] + "有人反映"
    cls = anchor["event_class_code"]
    with demo_engine.connect() as conn:
        got = {r["code"]: r for r in similar_open_cases(conn, "事件", cls, lon, lat, at, words)}
        other_minor = next(c for c in sorted(
            r["code"] for r in conn.execute(text("SELECT code FROM event_class")).mappings())
            if c[:2] == cls[:2] and c != cls)  # fmt: skip
        cousin = {r["code"]: r for r in similar_open_cases(conn, "事件", other_minor, lon, lat, at,
                                                           "另一件事")}  # fmt: skip
        component = similar_open_cases(conn, "部件", cls, lon, lat, at, words)
    d = metres(anchor["lon"], anchor["lat"], lon, lat)
    row = got[anchor["code"]]
    assert row["distance_m"] == pytest.approx(d, abs=0.06)
    assert row["hours_apart"] == pytest.approx(1.5, abs=0.006)
    sim = jaccard(words, anchor["description"])
    assert row["text_similarity"] == pytest.approx(sim, abs=5e-4)
    assert row["score"] == pytest.approx(by_hand(d, 1.5, True, sim), abs=5e-4)
    assert row["likely"] is (by_hand(d, 1.5, True, sim) >= THRESHOLD)
    # Same major class, another minor class, unrelated words: a candidate, but not likely.
    expected = by_hand(d, 1.5, False, jaccard("另一件事", anchor["description"]))
    assert cousin[anchor["code"]]["score"] == pytest.approx(expected, abs=5e-4)
    assert expected < THRESHOLD and cousin[anchor["code"]]["likely"] is False
    assert anchor["code"] not in {r["code"] for r in component}  # 部件 0102 is not 事件 0102


# --- the demo's planted pairs and look-alikes -----------------------------------------------


def test_the_demo_plants_pairs_and_lookalikes(planted):
    groups = {}
    for (group, _k), members in planted.items():
        assert set(members) == {1, 2}
        groups[group] = groups.get(group, 0) + 1
    assert groups == {"pair": 24, "other_class": 6, "far": 6, "days_apart": 6, "closed": 6}


def test_planted_duplicates_are_found_both_ways_with_hand_scores(client, role_tokens, planted):
    headers = auth(role_tokens, "operator")
    pairs = [m for (g, _), m in planted.items() if g == "pair"]
    for first, second in ((m[1], m[2]) for m in pairs):
        d = metres(first["lon"], first["lat"], second["lon"], second["lat"])
        hours = abs((second["reported_at"] - first["reported_at"]).total_seconds()) / 3600
        assert 2 < d < 46 and hours < 2  # what was planted
        expected = by_hand(d, hours, True, jaccard(first["description"], second["description"]))
        for a, b in ((first, second), (second, first)):
            row = results(client, headers, a["code"])[b["code"]]
            assert row["distance_m"] == pytest.approx(d, abs=0.06)
            assert row["hours_apart"] == pytest.approx(hours, abs=0.006)
            assert row["score"] == pytest.approx(expected, abs=5e-4)
            assert row["likely"] is True and expected >= THRESHOLD


def test_lookalikes_are_not_found(client, role_tokens, planted, demo_engine):
    headers = auth(role_tokens, "operator")
    for (group, _k), m in planted.items():
        if group == "pair":
            continue
        anchor, look = m[1], m[2]
        d = metres(anchor["lon"], anchor["lat"], look["lon"], look["lat"])
        hours = abs((look["reported_at"] - anchor["reported_at"]).total_seconds()) / 3600
        same = anchor["event_class_code"] == look["event_class_code"]
        # Each look-alike misses exactly one condition (checked here, independently).
        assert {"other_class": anchor["event_class_code"][:2] != look["event_class_code"][:2]
                and d < 20 and hours <= 1,
                "far": same and d > D_M and hours <= 1.5,
                "days_apart": same and d < 20 and hours > 4 * 24,
                "closed": same and d < 20 and hours == 2 and look["status"] == "已结案",
                }[group]  # fmt: skip
        assert look["code"] not in results(client, headers, anchor["code"])
        if group != "closed":  # a closed case may still list the open ones like it
            assert anchor["code"] not in results(client, headers, look["code"])


def test_wider_window_on_request(client, role_tokens, planted):
    anchor, look = planted[("days_apart", 1)][1], planted[("days_apart", 1)][2]
    assert look["code"] in results(client, auth(role_tokens, "planner"), anchor["code"],
                                   hours=168)  # fmt: skip


# --- the API: parameters, unknown cases, roles, scope ---------------------------------------


@pytest.mark.parametrize("params", [
    {}, {"case": "x;DROP"}, {"case": "AB"}, {"case": "A" * 40}, {"case": CODE, "distance_m": "5"},
    {"case": CODE, "distance_m": "abc"}, {"case": CODE, "distance_m": "5000"},
    {"case": CODE, "hours": "0"}, {"case": CODE, "hours": "1000"}, {"case": CODE, "hours": "nan"},
    {"case": CODE, "radius": "100"}])  # fmt: skip
def test_bad_parameters_are_400(client, role_tokens, planted, params):
    code = planted[("pair", 1)][1]["code"]
    query = {k: code if v == CODE else v for k, v in params.items()}
    resp = client.get("/api/analytics/duplicates", query_string=query,
                      headers=auth(role_tokens, "planner"))  # fmt: skip
    assert resp.status_code == 400 and resp.get_json()["error"]


def test_unknown_case_is_404_and_kiosk_is_refused(client, role_tokens, planted):
    assert similar(client, auth(role_tokens, "planner"), "NOSUCHCASE0001").status_code == 404
    code = planted[("pair", 1)][1]["code"]
    assert similar(client, auth(role_tokens, "kiosk"), code).status_code == 403


def test_export_has_chinese_headers(client, role_tokens, planted):
    resp = client.get("/api/analytics/duplicates/export.csv",
                      query_string={"case": planted[("pair", 1)][1]["code"]},
                      headers=auth(role_tokens, "planner"))  # fmt: skip
    head = resp.data.decode("utf-8-sig").splitlines()[0]
    assert resp.status_code == 200 and "距离(m)" in head and "描述相似度" in head


def street_of(engine, code: str) -> str | None:
    """The street a case lies in."""
    found = rows_of(engine, "SELECT a.code FROM admin_area a JOIN case_record c "
                            "ON ST_Intersects(c.geom, a.geom) WHERE a.level = 'street' "
                            "AND c.code = :c ORDER BY a.code LIMIT 1", c=code)  # fmt: skip
    return found[0]["code"] if found else None


def test_a_district_user_sees_only_its_areas(client, role_tokens, demo_engine, planted):
    pair = next(
        m
        for (g, _), m in sorted(planted.items())
        if g == "pair"
        and street_of(demo_engine, m[1]["code"]) == street_of(demo_engine, m[2]["code"])
    )
    street = street_of(demo_engine, pair[1]["code"])
    headers = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    assert pair[2]["code"] in results(client, headers, pair[1]["code"])
    outside = next(m[1]["code"] for m in planted.values()
                   if street_of(demo_engine, m[1]["code"]) != street)  # fmt: skip
    assert similar(client, headers, outside).status_code == 404  # as the archive: not yours
    # A case of the street with an open case like it just outside (independent SQL).
    edge = rows_of(demo_engine, """
        SELECT k.code AS inside, r.code AS outside FROM admin_area a
        JOIN case_record k ON ST_Intersects(k.geom, a.geom)
        JOIN case_record r ON NOT ST_Intersects(r.geom, a.geom)
         AND r.status NOT IN ('已结案', '已作废') AND r.kind = k.kind
         AND left(coalesce(r.event_class_code, r.component_class_code), 2)
           = left(coalesce(k.event_class_code, k.component_class_code), 2)
         AND ST_DWithin(k.geom::geography, r.geom::geography, 900)
         AND abs(extract(epoch FROM r.reported_at - k.reported_at)) < 160 * 3600
        WHERE a.code = :s ORDER BY k.code, r.code LIMIT 1""", s=street)[0]  # fmt: skip
    wide = {"distance_m": 1000, "hours": 168}
    admin = results(client, auth(role_tokens, "admin"), edge["inside"], **wide)
    mine = results(client, headers, edge["inside"], **wide)
    assert edge["outside"] in admin and edge["outside"] not in mine
    assert all(street_of(demo_engine, c) == street for c in mine)


# --- the case archive (Dash callback) -------------------------------------------------------


def test_the_archive_shows_similar_cases(client, role_tokens, demo_engine, planted):
    first, second = planted[("pair", 2)][1], planted[("pair", 2)][2]
    shown = open_archive(client, auth(role_tokens, "leader"), "case", first["id"])
    assert "相似案卷" in shown and second["code"] in shown and "疑似重复" in shown
    assert "'list': 'similar'" in shown  # the zoom button of the similar case
    oldest = rows_of(demo_engine, "SELECT id FROM case_record ORDER BY reported_at LIMIT 1")[0]
    assert "未发现相似案卷" in open_archive(
        client, auth(role_tokens, "leader"), "case", oldest["id"]
    )


# --- the import report ----------------------------------------------------------------------


def test_the_import_flags_duplicates_and_still_imports_them(db, tmp_path):
    lon, lat = LIXIA
    header = "code,event_class_code,source,status,reported_at,description,lon,lat"
    first = write_csv(tmp_path / "a.csv", header, [
        f"DUP0001,0102,监督员上报,已派遣,2024-06-01 08:00,幸福路12号门前暴露垃圾,{lon},{lat}",
        f"DUP0002,0505,监督员上报,已结案,2024-06-01 08:00,幸福路12号门前车辆乱停,{lon},{lat}"])  # fmt: skip
    assert run(db, "case", first).possible_duplicates == []  # other major classes
    near = (lon + 0.0003, lat)  # about 27 m east
    rows = [
        f"DUP0101,0102,公众举报,已立案,2024-06-01 09:30,幸福路12号暴露垃圾没人管,{near[0]},{near[1]}",
        f"DUP0102,0102,公众举报,待立案,2024-06-01 10:00,幸福路12号暴露垃圾,{near[0]},{near[1]}",
        f"DUP0103,0505,公众举报,已立案,2024-06-01 09:00,幸福路12号门前车辆乱停,{lon},{lat}",
        f"DUP0104,0102,公众举报,已立案,2024-06-01 09:30,幸福路12号门前暴露垃圾,{lon + 0.01},{lat}",
    ]  # fmt: skip
    report = run(db, "case", write_csv(tmp_path / "b.csv", header, rows))
    assert (report.loaded, report.rejected, report.flagged) == (4, 0, 2)
    assert count(db, "case_record", "code LIKE 'DUP01%'") == 4  # flagged rows are imported
    flags = {f["row"]: f for f in report.possible_duplicates}
    assert set(flags) == {1, 2}  # DUP0103 matches only a closed case, DUP0104 is 890 m away
    d = metres(lon, lat, *near)
    expected = by_hand(d, 1.5, True, jaccard("幸福路12号暴露垃圾没人管", "幸福路12号门前暴露垃圾"))
    assert flags[1]["match_code"] == "DUP0001" and flags[1]["match_row"] is None
    assert flags[1]["score"] == pytest.approx(expected, abs=5e-4)
    assert flags[1]["distance_m"] == pytest.approx(d, abs=0.06)
    # DUP0102: the earlier row of the same file is the closer match (same spot, 30 minutes).
    expected = by_hand(0.0, 0.5, True, jaccard("幸福路12号暴露垃圾", "幸福路12号暴露垃圾没人管"))
    assert (flags[2]["match_code"], flags[2]["match_row"]) == ("DUP0101", 1)
    assert flags[2]["score"] == pytest.approx(expected, abs=5e-4)
    issues = [i.as_dict() for i in report.issues]
    assert {(i["row"], i["key"], i["severity"]) for i in issues} == {
        (1, "DUP0101", "flagged"), (2, "DUP0102", "flagged")}  # fmt: skip
    assert "DUP0001" in issues[0]["detail"] and "疑似重复" in report.summary()


def test_rows_on_a_placeholder_coordinate_are_not_compared(db, tmp_path):
    lon, lat = LIXIA[0] + 0.005, LIXIA[1]
    rows = [f"PH{i:04d},0505,公众举报,已派遣,2024-07-01 0{i}:00,车辆乱停,{lon},{lat}"
            for i in range(1, 5)]  # fmt: skip
    header = "code,event_class_code,source,status,reported_at,description,lon,lat"
    report = run(db, "case", write_csv(tmp_path / "p.csv", header, rows), stack_threshold=3)
    assert report.loaded == 4 and report.possible_duplicates == []
    assert {i.code for i in report.issues} == {"stacked_coordinate"}
