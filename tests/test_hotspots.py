"""Gi* hotspots: PySAL equality, a planted hotspot and coldspot, FDR, and the API on the demo."""

from __future__ import annotations

import esda
import geopandas as gpd
import numpy as np
import pytest
from libpysal.weights import Queen
from scipy.stats import norm
from shapely.geometry import box, shape
from sqlalchemy import text

from analytics.hotspots import classes, gi_star
from tests.conftest import auth, district_token


def lattice(n: int = 12) -> gpd.GeoDataFrame:
    """An n × n lattice of 100 m squares."""
    cells = [
        box(x * 100, y * 100, x * 100 + 100, y * 100 + 100) for y in range(n) for x in range(n)
    ]
    return gpd.GeoDataFrame({"i": range(n * n)}, geometry=cells, crs=4548)


def planted(n: int = 12) -> np.ndarray:
    """Background 5 per cell, a 3 × 3 hot block of 30 at (2..4, 2..4) and a cold block of 0."""
    rng = np.random.default_rng(7)
    counts = rng.poisson(5, n * n).astype(float)
    grid = counts.reshape(n, n)
    grid[2:5, 2:5] = 30
    grid[7:10, 7:10] = 0
    return grid.ravel()


def test_gi_star_equals_esda_and_the_textbook_formula():
    frame, counts = lattice(), planted()
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    z, p = gi_star(counts, w)
    reference = esda.G_Local(counts, w, transform="B", star=True, permutations=0)
    assert np.allclose(z, reference.Zs, atol=1e-9, rtol=0)
    # Getis & Ord (1995) Gi* by hand for one cell: weights are the queen neighbours plus itself.
    n, x = len(counts), counts
    i = 3 * 12 + 3
    wi = np.zeros(n)
    wi[[i, *w.neighbors[i]]] = 1.0
    mean, s = x.mean(), np.sqrt((x**2).mean() - x.mean() ** 2)
    z_hand = (wi @ x - mean * wi.sum()) / (
        s * np.sqrt((n * (wi**2).sum() - wi.sum() ** 2) / (n - 1))
    )
    assert z[i] == pytest.approx(z_hand, abs=1e-9)
    assert p[i] == pytest.approx(2 * norm.sf(abs(z_hand)), abs=1e-12)


def test_the_planted_hotspot_and_coldspot_are_found():
    frame, counts = lattice(), planted()
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    labels = np.array(classes(*gi_star(counts, w))).reshape(12, 12)
    assert labels[3, 3] == "hot_99"
    assert labels[8, 8].startswith("cold")
    assert labels[0, 11] == "ns"


def test_fdr_correction_changes_a_class():
    z = np.array([2.1, 0.1, -0.2, 0.3, 0.0, 0.5])
    p = 2 * norm.sf(np.abs(z))  # the first: p = 0.036, hot_95 without correction
    assert p[0] < 0.05
    assert classes(z, p)[0] == "ns"  # BH over six tests: 0.036 × 6 > 0.10
    assert classes(np.array([2.1]), p[:1]) == ["hot_95"]


def run(client, headers, **params):
    """GET /api/analytics/hotspots."""
    return client.get("/api/analytics/hotspots", query_string=params, headers=headers)


def test_every_unit_grid_takes_part_and_matches_esda(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:
        last = conn.execute(text("SELECT max(reported_at)::date FROM case_record")).scalar()
        grids = conn.execute(text("SELECT count(*) FROM unit_grid")).scalar()
    start = (last.replace(day=1)).isoformat()
    body = run(
        client, auth(role_tokens, "operator"), **{"from": start, "to": last.isoformat()}
    ).get_json()
    feats = body["features"]
    assert len(feats) == grids and any(f["properties"]["count"] == 0 for f in feats)
    with demo_engine.connect() as conn:
        in_window = conn.execute(text("SELECT count(*) FROM case_record c WHERE reported_at >= :a "
                                      "AND reported_at < CAST(:b AS date) + 1 AND EXISTS (SELECT 1 FROM "
                                      "unit_grid g WHERE ST_Intersects(g.geom, c.geom))"),
                                 {"a": start, "b": last.isoformat()}).scalar()  # fmt: skip
    assert (
        sum(f["properties"]["count"] for f in feats) >= in_window
    )  # a case on a shared edge counts twice
    frame = gpd.GeoDataFrame({"count": [f["properties"]["count"] for f in feats]},
                             geometry=[shape(f["geometry"]) for f in feats], crs=4326).to_crs(4548)  # fmt: skip
    w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    reference = esda.G_Local(
        frame["count"].to_numpy(float), w, transform="B", star=True, permutations=0
    )
    got = np.array([f["properties"]["gi_z"] for f in feats])
    assert np.allclose(got, reference.Zs, atol=1e-5)  # answers are rounded to 6 decimals
    assert {f["properties"]["hotspot_class"] for f in feats} >= {"ns"}


def test_hexagons_and_bad_parameters(client, role_tokens):
    headers = auth(role_tokens, "leader")
    hexes = run(client, headers, cells="hex", size=800, area="370102").get_json()["features"]
    assert hexes and all(len(f["geometry"]["coordinates"][0]) == 7 for f in hexes)
    for bad in ({"from": "2024-13-01"}, {"size": 10}, {"cells": "tiles"}, {"class": "99"},
                {"from": "2025-02-01", "to": "2025-01-01"}):  # fmt: skip
        assert run(client, headers, **bad).status_code == 400
    assert run(client, auth(role_tokens, "kiosk")).status_code == 403


def test_a_district_user_gets_only_its_cells(client, demo_engine):
    with demo_engine.connect() as conn:
        street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' ORDER BY code "
                                   "LIMIT 1")).scalar()  # fmt: skip
        inside = conn.execute(text("SELECT count(*) FROM unit_grid WHERE code LIKE :s || '%'"),
                              {"s": street}).scalar()  # fmt: skip
    headers = {"Authorization": f"Bearer {district_token(demo_engine, street)}"}
    feats = run(client, headers).get_json()["features"]
    assert len(feats) == inside and all(f["id"].startswith(street) for f in feats)
    assert run(client, headers, area="370103").status_code == 403


def test_heat_payload_is_bounded_and_counts_every_case(client, role_tokens, demo_engine):
    with demo_engine.connect() as conn:
        row = conn.execute(text("SELECT ST_XMin(e) a, ST_YMin(e) b, ST_XMax(e) c, ST_YMax(e) d, "
                                "min(reported_at)::date f, max(reported_at)::date t FROM "
                                "(SELECT ST_Extent(geom) e FROM case_record) x, case_record "
                                "GROUP BY 1, 2, 3, 4")).mappings().one()  # fmt: skip
    bbox = f"{row['a'] - 0.001},{row['b'] - 0.001},{row['c'] + 0.001},{row['d'] + 0.001}"
    body = client.get("/api/analytics/heat", query_string={
        "bbox": bbox, "from": row["f"].isoformat(), "to": row["t"].isoformat()},
        headers=auth(role_tokens, "operator")).get_json()["result"]  # fmt: skip
    with demo_engine.connect() as conn:
        cases = conn.execute(text("SELECT count(*) FROM case_record")).scalar()
    assert 0 < len(body["points"]) <= 64 * 64
    assert sum(p[2] for p in body["points"]) == body["total"] == cases
    bad = client.get("/api/analytics/heat", query_string={"bbox": "1,2,3"},
                     headers=auth(role_tokens, "operator"))  # fmt: skip
    assert bad.status_code == 400
