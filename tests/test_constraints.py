"""The database itself refuses bad codes, wrong geometry types, invalid and out-of-range geometry."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

SQUARE = (
    "MULTIPOLYGON(((117.00 36.60, 117.001 36.60, 117.001 36.601, 117.00 36.601, 117.00 36.60)))"
)
BOWTIE = (
    "MULTIPOLYGON(((117.00 36.60, 117.001 36.601, 117.001 36.60, 117.00 36.601, 117.00 36.60)))"
)
POINT = "POINT(117.0005 36.6005)"


@pytest.fixture()
def conn(engine):
    """A connection whose work is rolled back after the test."""
    with engine.connect() as c:
        tx = c.begin()
        c.execute(text(
            "INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
            "('370102001', 'street', '测试街道', '370102', ST_GeomFromText(:g, 4490)),"
            "('370102001001', 'community', '测试社区', '370102001', ST_GeomFromText(:g, 4490))"
        ), {"g": SQUARE})  # fmt: skip
        yield c
        tx.rollback()


def insert_grid(conn, code: str, wkt: str = SQUARE, srid: int = 4490) -> None:
    """Insert one unit grid in the test community."""
    conn.execute(
        text("INSERT INTO unit_grid (code, community_code, geom) "
             "VALUES (:code, '370102001001', ST_GeomFromText(:wkt, :srid))"),
        {"code": code, "wkt": wkt, "srid": srid},
    )  # fmt: skip


def insert_component(conn, code: str, class_code: str = "0101", wkt: str = POINT) -> None:
    """Insert one component."""
    conn.execute(
        text("INSERT INTO component (code, class_code, geom) "
             "VALUES (:code, :cls, ST_GeomFromText(:wkt, 4490))"),
        {"code": code, "cls": class_code, "wkt": wkt},
    )  # fmt: skip


def refused(conn, fn, *args) -> str:
    """Run fn inside a savepoint; return the database's error message (fails if accepted)."""
    sp = conn.begin_nested()
    with pytest.raises((IntegrityError, DBAPIError)) as info:
        fn(conn, *args)
    sp.rollback()
    return str(info.value.orig)


def test_valid_rows_are_accepted(conn):
    insert_grid(conn, "370102001001001")
    insert_grid(conn, "37010200100102")  # 14-digit CJ/T 213-2005 code
    insert_component(conn, "3701020101000001")
    conn.execute(text("INSERT INTO component_class VALUES ('01101', '01', '公用设施', '上水井盖')"))
    insert_component(conn, "37010201101000001", class_code="01101")  # GB/T 47678.5 17 digits
    area = conn.execute(text("SELECT area_m2 FROM unit_grid WHERE code='370102001001001'")).scalar()
    assert 9_000 < area < 11_000  # ~ 89 m x 111 m at 36.6 N


@pytest.mark.parametrize("code", ["3701020010010", "3701020010010011", "37010200100100A"])
def test_grid_code_wrong_length_or_chars(conn, code):
    assert "ck_unit_grid_code" in refused(conn, insert_grid, code)


def test_grid_code_of_another_community(conn):
    assert "ck_unit_grid_code" in refused(conn, insert_grid, "370102001002001")


def test_component_code_length_and_class(conn):
    assert "ck_component_code" in refused(conn, insert_component, "370102010100001")
    # class digits 0102 in the code but class 0101 in the row
    assert "ck_component_code" in refused(conn, insert_component, "3701020102000001")


def test_polygon_as_component_point(conn):
    message = refused(conn, insert_component, "3701020101000002", "0101", SQUARE)
    assert "Geometry type" in message


def test_invalid_polygon(conn):
    assert "ck_unit_grid_geom_valid" in refused(conn, insert_grid, "370102001001003", BOWTIE)


def test_wrong_srid(conn):
    assert "SRID" in refused(conn, insert_grid, "370102001001004", SQUARE, 4326)


def test_projected_coordinates_in_4490(conn):
    projected = "POINT(500000 4050000)"  # Gauss-Krueger metres mislabelled as degrees
    message = refused(conn, insert_component, "3701020101000003", "0101", projected)
    assert "ck_component_geom_in_range" in message


def test_unknown_component_status(conn):
    def bad_status(c):
        c.execute(text(
            "INSERT INTO component (code, class_code, status, geom) "
            "VALUES ('3701020101000004', '0101', '良好', ST_GeomFromText(:w, 4490))"
        ), {"w": POINT})  # fmt: skip

    assert "ck_component_status" in refused(conn, bad_status)


def test_case_stages_in_order(conn):
    def closed_before_reported(c):
        c.execute(text(
            "INSERT INTO case_record (code, kind, event_class_code, source, status, reported_at,"
            " registered_at, geom) VALUES ('C0001', '事件', '0102', '公众举报', '已立案',"
            " '2026-05-02 10:00+08', '2026-05-01 10:00+08', ST_GeomFromText(:w, 4490))"
        ), {"w": POINT})  # fmt: skip

    assert "registered_at_order" in refused(conn, closed_before_reported)


def test_admin_code_must_extend_parent(conn):
    def stray_community(c):
        c.execute(text(
            "INSERT INTO admin_area (code, level, name, parent_code, geom) VALUES "
            "('370103001001', 'community', '错位社区', '370102001', ST_GeomFromText(:g, 4490))"
        ), {"g": SQUARE})  # fmt: skip

    assert "ck_admin_area_parent_prefix" in refused(conn, stray_community)
