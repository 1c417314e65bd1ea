"""Invariants of the demo city (small scale): codes, tiling, drainage flow, coverage, determinism."""

from __future__ import annotations

import itertools

import pytest
import shapely
from shapely import wkb
from sqlalchemy import text

from geodata.db import make_engine
from loaders import demo
from loaders.demo.lattice import to_metric


@pytest.fixture(scope="module")
def city(scratch):
    """A scratch database holding the small demo city, seed 1."""
    engine = make_engine(scratch.create_city("onemap_demo", demo_scale="small"))
    yield engine
    engine.dispose()


def scalar(engine, sql: str, **params):
    """One value from a query."""
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_component_codes_match_class_and_district(city):
    assert scalar(city, "SELECT count(*) FROM component") > 15_000
    wrong_district = scalar(city, """
        SELECT count(*) FROM component c JOIN admin_area a
          ON a.level = 'district' AND ST_Contains(a.geom, c.geom)
        WHERE left(c.code, 6) <> a.code""")  # fmt: skip
    assert wrong_district == 0
    majors = scalar(city, "SELECT count(DISTINCT left(class_code, 2)) FROM component")
    assert majors == 6
    share_ok = scalar(city, "SELECT avg((status = '完好')::int) FROM component")
    assert 0.85 < share_ok < 0.97
    assert scalar(city, "SELECT count(*) FROM component WHERE status IN ('破损', '丢失')") > 100


def test_grids_tile_their_community(city):
    worst = scalar(city, """
        SELECT max(abs(c.area_m2 - g.sum_area) + ST_Area(ST_SymDifference(c.geom, g.u)::geography))
        FROM admin_area c JOIN (
          SELECT community_code, sum(area_m2) sum_area, ST_Union(geom) u
          FROM unit_grid GROUP BY community_code) g ON g.community_code = c.code
        WHERE c.level = 'community'""")  # fmt: skip
    assert worst < 5.0  # m2: no gaps, no overlaps (sum of parts equals the whole)
    mean_area = scalar(city, "SELECT avg(area_m2) FROM unit_grid WHERE area_m2 > 5000")
    assert 7_000 < mean_area < 12_000  # ~100 m x 100 m


def test_grid_sequence_runs_west_east_north_south(city):
    with city.connect() as conn:
        rows = conn.execute(text(
            "SELECT community_code, ST_Y(ST_Centroid(geom)), ST_X(ST_Centroid(geom)) "
            "FROM unit_grid WHERE area_m2 > 8000 ORDER BY code")).all()  # fmt: skip
    for (c1, y1, x1), (c2, y2, x2) in itertools.pairwise(rows):
        if c1 == c2 and abs(y1 - y2) < 0.0002:  # same row
            assert x2 > x1
        elif c1 == c2:
            assert y2 < y1  # next row is further south


def test_pipes_flow_downhill_to_outfalls(city):
    assert scalar(city, "SELECT count(*) FROM drain_pipe WHERE end_invert_m >= start_invert_m") == 0
    misdrawn = scalar(city, """
        SELECT count(*) FROM drain_pipe p JOIN drain_well w ON w.code = p.from_well
        WHERE ST_Distance(ST_StartPoint(p.geom)::geography, w.geom::geography) > 1""")  # fmt: skip
    assert misdrawn == 0
    unreachable = scalar(city, """
        WITH RECURSIVE reach AS (
          SELECT w.code FROM drain_well w
          WHERE EXISTS (SELECT 1 FROM drain_outfall o
                        WHERE ST_DWithin(o.geom::geography, w.geom::geography, 10))
          UNION
          SELECT p.from_well FROM drain_pipe p JOIN reach r ON p.to_well = r.code)
        SELECT count(*) FROM drain_well WHERE code NOT IN (SELECT code FROM reach)""")  # fmt: skip
    assert unreachable == 0
    assert scalar(city, "SELECT count(*) FROM drain_well") > 50


def test_park_coverage_is_realistic(city):
    """Independent computation in shapely: 500 m for parks >= 5000 m2, 300 m for 2000-5000 m2."""
    with city.connect() as conn:
        parks = conn.execute(
            text("SELECT ST_AsBinary(geom), area_m2, historic_district FROM green_space")
        ).all()
        homes = (
            conn.execute(text("SELECT ST_AsBinary(geom) FROM land_parcel WHERE land_use = 'R'"))
            .scalars()
            .all()
        )
    zones = []
    for g, area, historic in parks:
        radius = 500 if area >= 5000 else 300 if area >= 2000 or (historic and area >= 1000) else 0
        if radius:
            zones.append(to_metric(wkb.loads(bytes(g))).buffer(radius))
    served = shapely.union_all(zones)
    homes_m = shapely.union_all([to_metric(wkb.loads(bytes(h))) for h in homes])
    coverage = homes_m.intersection(served).area / homes_m.area
    assert 0.6 <= coverage <= 0.9, coverage
    sizes = [a for _, a, _ in parks]
    assert min(sizes) < 2000 and max(sizes) > 5000 and any(2000 <= a < 5000 for a in sizes)


def test_parking_readings(city):
    per_lot = scalar(city, "SELECT min(n) FROM (SELECT count(*) n FROM parking_occupancy "
                           "GROUP BY lot_id) x")  # fmt: skip
    assert per_lot == 14 * 96
    over = scalar(city, "SELECT count(*) FROM parking_occupancy o JOIN parking_lot l "
                        "ON l.id = o.lot_id WHERE o.occupied > l.capacity")  # fmt: skip
    assert over == 0
    chronically_full = scalar(city, """
        SELECT count(*) FROM (SELECT o.lot_id FROM parking_occupancy o
          JOIN parking_lot l ON l.id = o.lot_id GROUP BY o.lot_id
          HAVING avg((o.occupied >= 0.95 * l.capacity)::int) > 0.2) x""")  # fmt: skip
    assert chronically_full >= 1


def test_cases_are_realistic(city):
    overdue = scalar(city, "SELECT avg(overdue::int) FROM case_record")
    assert 0.02 < overdue < 0.3
    assert scalar(city, "SELECT count(*) FROM case_record WHERE kind = '部件' "
                        "AND component_id IS NULL") == 0  # fmt: skip
    near_duplicates = scalar(city, """
        SELECT count(*) FROM case_record a JOIN case_record b
          ON a.id < b.id AND a.event_class_code = b.event_class_code
         AND ST_DWithin(a.geom::geography, b.geom::geography, 30)
         AND abs(extract(epoch FROM a.reported_at - b.reported_at)) < 7200""")  # fmt: skip
    assert near_duplicates > 20
    top_share = scalar(city, """
        SELECT sum(n)::float / (SELECT count(*) FROM case_record) FROM (
          SELECT count(*) n FROM case_record GROUP BY grid_code ORDER BY 1 DESC
          LIMIT (SELECT count(*) / 20 FROM unit_grid)) x""")  # fmt: skip
    assert top_share > 0.3  # 5% of grids hold far more than 5% of cases: hot places


def test_same_seed_same_city(city):
    digest = """SELECT md5(string_agg(code, ',' ORDER BY code)) FROM (
                  SELECT code FROM component UNION ALL SELECT code FROM case_record) x"""
    first = scalar(city, digest)
    with city.begin() as conn:
        demo.generate(conn, "small", 1, log=lambda _m: None)
    assert scalar(city, digest) == first
