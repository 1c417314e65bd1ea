"""The analytics contract and the first analysis, checked against an independent computation."""

from __future__ import annotations

import geopandas as gpd
import pytest
from sqlalchemy import text

from analytics.contract import ANALYSES, Analysis, Param
from errors import BadRequest
from tests.conftest import auth, district_token


def expected_counts(engine, level: str, table: str = "case_record") -> dict[str, int]:
    """Objects per area by geopandas' spatial join (points on a boundary count for each area)."""
    with engine.connect() as conn:
        areas = gpd.read_postgis(text("SELECT code, geom FROM admin_area WHERE level = :l"), conn,
                                 params={"l": level}, geom_col="geom")  # fmt: skip
        points = gpd.read_postgis(text(f"SELECT id, geom FROM {table}"), conn, geom_col="geom")
    joined = gpd.sjoin(points, areas, predicate="intersects", how="inner")
    counts = joined.groupby("code").size().to_dict()
    return {code: int(counts.get(code, 0)) for code in areas["code"]}


def run(client, headers, **params):
    """GET /api/analytics/area_counts with the parameters."""
    return client.get("/api/analytics/area_counts", query_string=params, headers=headers)


def test_area_counts_match_an_independent_spatial_join(client, role_tokens, demo_engine):
    body = run(client, auth(role_tokens, "leader"), layer="case", level="street").get_json()
    got = {r["code"]: r["count"] for r in body["result"]["rows"]}
    assert got == expected_counts(demo_engine, "street")
    assert sum(got.values()) > 1000 and body["output"] == "table"
    counts = [r["count"] for r in body["result"]["rows"]]
    assert counts == sorted(counts, reverse=True)


def test_area_counts_stay_inside_a_district_users_areas(client, demo_engine):
    with demo_engine.connect() as conn:
        street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' "
                                   "ORDER BY code LIMIT 1")).scalar()  # fmt: skip
        in_street = conn.execute(text(
            "SELECT count(*) FROM case_record c JOIN admin_area a ON ST_Intersects(c.geom, a.geom) "
            "WHERE a.code = :s"), {"s": street}).scalar()  # fmt: skip
    headers = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    rows = run(client, headers, layer="case", level="street").get_json()["result"]["rows"]
    assert [r["code"] for r in rows] == [street] and rows[0]["count"] == in_street
    districts = run(client, headers, layer="case", level="district").get_json()["result"]["rows"]
    assert (
        sum(r["count"] for r in districts) == in_street
    )  # objects outside the street are not counted


@pytest.mark.parametrize(("params", "status"), [
    ({"layer": "green_space"}, 400), ({"level": "country"}, 400), ({"parent": "12ab"}, 400),
    ({"colour": "red"}, 400), ({"layer": "camera"}, 403)])  # fmt: skip
def test_parameters_are_validated_once_into_4xx(client, role_tokens, params, status):
    resp = run(client, auth(role_tokens, "planner"), **params)
    assert resp.status_code == status and resp.get_json()["error"]


def test_role_without_analytics_is_refused_and_unknown_analysis_is_404(client, role_tokens):
    assert run(client, auth(role_tokens, "kiosk")).status_code == 403
    assert client.get("/api/analytics", headers=auth(role_tokens, "kiosk")).status_code == 403
    listed = client.get("/api/analytics", headers=auth(role_tokens, "planner")).get_json()
    assert "area_counts" in {a["id"] for a in listed["analyses"]}
    missing = client.get("/api/analytics/nothing", headers=auth(role_tokens, "planner"))
    assert missing.status_code == 404


def test_cached_results_follow_the_data_version(client, role_tokens, demo_engine):
    headers = auth(role_tokens, "leader")
    first = run(client, headers, layer="case", level="street").get_json()
    again = run(client, headers, layer="case", level="street").get_json()
    assert again == first
    with demo_engine.begin() as conn:  # move one case into another street, then back
        case_id, old = conn.execute(
            text("SELECT id, geom FROM case_record ORDER BY id LIMIT 1")
        ).one()
        target = conn.execute(text(
            "SELECT ST_PointOnSurface(geom) FROM admin_area WHERE level = 'street' AND NOT "
            "ST_Intersects(geom, (SELECT geom FROM case_record WHERE id = :i)) ORDER BY code LIMIT 1"),
            {"i": case_id}).scalar()  # fmt: skip
        conn.execute(
            text("UPDATE case_record SET geom = :g WHERE id = :i"), {"g": target, "i": case_id}
        )
    try:
        moved = run(client, headers, layer="case", level="street").get_json()
        assert moved["data_version"] > first["data_version"]
        assert moved["result"]["rows"] != first["result"]["rows"]
        assert {r["code"]: r["count"] for r in moved["result"]["rows"]} == expected_counts(
            demo_engine, "street"
        )
    finally:
        with demo_engine.begin() as conn:
            conn.execute(
                text("UPDATE case_record SET geom = :g WHERE id = :i"), {"g": old, "i": case_id}
            )


def test_a_parameter_parses_its_kind_within_limits():
    radius = Param("radius", "半径", "int", 300, low=50, high=2000)
    assert radius.parse("500") == 500 and radius.parse(None) == 300
    for bad in ("49", "2001", "3.5", "x", True):
        with pytest.raises(BadRequest):
            radius.parse(bad)
    analysis = Analysis("t", "测试", "", "table", (radius,), (), run=lambda c, p, u: {})
    assert analysis.parse({}) == {"radius": 300}
    with pytest.raises(BadRequest):
        analysis.parse({"radius": "100", "extra": "1"})
    assert set(ANALYSES) >= {"area_counts"}
