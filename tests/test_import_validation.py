"""Every rejection and flag reason, --strict, and database refusals as readable messages."""

from __future__ import annotations

import json

from tests import import_helpers
from tests.import_helpers import (
    LIXIA,
    SHIZHONG,
    cli,
    codes,
    count,
    run,
    scalar,
    write_csv,
)

import_url, db = import_helpers.import_url, import_helpers.db  # module fixtures

LON, LAT = LIXIA
SQUARE = f"POLYGON (({LON} {LAT}, {LON + 0.001} {LAT}, {LON + 0.001} {LAT + 0.001}, {LON} {LAT}))"
BOWTIE = f"POLYGON (({LON} {LAT}, {LON + 0.001} {LAT + 0.001}, {LON + 0.001} {LAT}, {LON} {LAT + 0.001}, {LON} {LAT}))"
FLAT = f"POLYGON (({LON} {LAT}, {LON + 0.001} {LAT}, {LON + 0.002} {LAT}, {LON} {LAT}))"


def reasons_by_key(report) -> dict[str, set[str]]:
    """{key: {machine codes}} of a report."""
    out: dict[str, set[str]] = {}
    for issue in report.issues:
        out.setdefault(issue.key, set()).add(issue.code)
    return out


def test_geometry_reasons(db, tmp_path):
    rows = [f'LY1,G11,"{SQUARE}"', f'LY2,G11,"{BOWTIE}"', f'LY3,G11,"{FLAT}"',
            f'LY4,G11,"LINESTRING ({LON} {LAT}, {LON + 0.01} {LAT})"', 'LY5,G11,""',
            'LY6,G11,"POLYGON ((116.3 39.9, 116.4 39.9, 116.4 40, 116.3 39.9))"',
            'LY7,G11,"POLYGON ((500000 4000000, 500100 4000000, 500100 4000100, 500000 4000000))"']  # fmt: skip
    report = run(db, "green_space", write_csv(tmp_path / "g.csv", "code,kind,wkt", rows))
    assert reasons_by_key(report) == {
        "LY2": {"geometry_repaired"}, "LY3": {"invalid_geometry"}, "LY4": {"wrong_geometry_type"},
        "LY5": {"empty_geometry"}, "LY6": {"outside_extent"}, "LY7": {"outside_lonlat"},
    }  # fmt: skip
    assert report.loaded == 2 and report.rejected == 5 and report.flagged == 1
    assert scalar(db, "SELECT ST_IsValid(geom) FROM green_space WHERE code = 'LY2'") is True


def test_explicit_extent(db, tmp_path):
    path = write_csv(tmp_path / "e.csv", "code,lon,lat", ["EX1,116.35,39.95", f"EX2,{LON},{LAT}"])
    report = run(db, "camera", path, extent="116,39.5,117,40.5")
    assert reasons_by_key(report) == {"EX2": {"outside_extent"}}


def test_field_value_and_date_reasons(db, tmp_path):
    header = "code,kind,event_class_code,component_class_code,source,status,reported_at,closed_at,deadline,lon,lat"
    at = f"{LON},{LAT}"
    rows = [f"AJ0001,事件,0102,,公众举报,已结案,2024-05-01 08:00,2024-05-02 09:00,2024-05-03,{at}",
            f"AJ0002,事件,0102,,公众举报,已结案,2024-05-03 08:00,2024-05-02 09:00,,{at}",
            f"AJ0003,事件,0102,,公众举报,已结案,2024-05-01 08:00,,2024-04-01,{at}",
            f"AJ0004,事件,0102,,电话,已结案,2024-05-01 08:00,,,{at}",
            f"AJ0005,事件,0102,,公众举报,已结案,not a date,,,{at}",
            f"AJ0006,事件,0102,,公众举报,已结案,,,,{at}",
            f"AJ0007,事件,,0118,公众举报,已结案,2024-05-01 08:00,,,{at}",
            f"A!,事件,0102,,公众举报,已结案,2024-05-01 08:00,,,{at}",
            f"AJ0009,事件,0999,,公众举报,已结案,2024-05-01 08:00,,,{at}",
            f"AJ0010,,,0118,公众举报,已派遣,2024-05-01 08:00,,,{at}"]  # fmt: skip
    report = run(db, "case", write_csv(tmp_path / "c.csv", header, rows), stack_threshold=0)
    assert reasons_by_key(report) == {
        "AJ0002": {"date_order"}, "AJ0003": {"date_order"}, "AJ0004": {"bad_value"},
        "AJ0005": {"bad_value", "missing_field"}, "AJ0006": {"missing_field"},
        "AJ0007": {"class_mismatch"}, "A!": {"bad_code"}, "AJ0009": {"unknown_reference"},
    }  # fmt: skip
    assert report.loaded == 2  # AJ0001 and AJ0010 (kind 部件 derived from its class)
    assert scalar(db, "SELECT kind FROM case_record WHERE code = 'AJ0010'") == "部件"
    assert str(scalar(db, "SELECT reported_at FROM case_record WHERE code = 'AJ0001'")).startswith(
        "2024-05-01 00:00:00"
    )  # 08:00 Asia/Shanghai stored as 00:00 UTC


def test_admin_and_unit_grid_codes(db, tmp_path):
    admin = write_csv(tmp_path / "a.csv", "code,level,name,parent_code,wkt", [
        f'370102001,street,解放路街道,370102,"{SQUARE}"',
        f'370102001001,community,甲社区,370102001,"{SQUARE}"',
        f'370103001002,community,乙社区,370102001,"{SQUARE}"',
        f'3701020010,community,丙社区,370102001,"{SQUARE}"'])  # fmt: skip
    report = run(db, "admin_area", admin)
    assert reasons_by_key(report) == {
        "370103001002": {"parent_mismatch"},
        "3701020010": {"bad_code"},
    }
    grids = write_csv(tmp_path / "u.csv", "code,community_code,wkt", [
        f'370102001001001,,"{SQUARE}"', f'37010200100102,370102001001,"{SQUARE}"',
        f'370102001002001,370102001001,"{SQUARE}"', f'3701020010010,,"{SQUARE}"',
        f'370102001009001,,"{SQUARE}"', f'370102001001001,,"{SQUARE}"'])  # fmt: skip
    report = run(db, "unit_grid", grids)
    assert reasons_by_key(report) == {
        "370102001002001": {"community_mismatch"}, "3701020010010": {"bad_code"},
        "370102001009001": {"unknown_reference"}, "370102001001001": {"duplicate_key"},
    }  # fmt: skip
    assert report.loaded == 2
    assert scalar(db, "SELECT community_code FROM unit_grid WHERE code = '370102001001001'") == (
        "370102001001"
    )


def test_component_codes_and_district(db, tmp_path):
    lixia, shizhong = f"{LON},{LAT}", f"{SHIZHONG[0]},{SHIZHONG[1]}"
    rows = [f"3701020118000001,0118,,{lixia}", f"3701020118000002,,,{lixia}",
            f"3701020118000003,0305,,{lixia}", f"370102011800000,0118,,{lixia}",
            f"3701020118000004,0118,,{shizhong}", f"3701020118000005,0118,999999999999999,{lixia}",
            f"37010201180000006,01180,,{lixia}"]  # fmt: skip
    report = run(
        db, "component", write_csv(tmp_path / "p.csv", "code,class_code,grid_code,lon,lat", rows)
    )
    assert reasons_by_key(report) == {
        "3701020118000003": {"class_mismatch"}, "370102011800000": {"bad_code"},
        "3701020118000004": {"district_mismatch"}, "3701020118000005": {"unknown_reference"},
        "37010201180000006": {"unknown_reference"},  # 5-digit class 01180 is not in the list
    }  # fmt: skip
    assert report.loaded == 2
    assert scalar(
        db, "SELECT class_code || status FROM component WHERE code = '3701020118000002'"
    ) == ("0118完好")  # class derived from the code, status from the column default


def test_stacked_coordinates_are_flagged_not_rejected(db, tmp_path):
    rows = [f"DUI{i:03d},{LON},{LAT}" for i in range(12)] + [f"DUI100,{LON + 0.01},{LAT}"]
    path = write_csv(tmp_path / "s.csv", "code,lon,lat", rows)
    report = run(db, "camera", path)
    assert (report.loaded, report.rejected, report.flagged) == (13, 0, 12)
    assert report.stacked_coordinates == [{"lon": LON, "lat": LAT, "count": 12}]
    assert codes(run(db, "camera", path, mode="upsert", stack_threshold=20)) == {}


def test_strict_rejects_the_whole_file(import_url, db, tmp_path):
    path = write_csv(tmp_path / "strict.csv", "code,lon,lat", ["ST1,117.07,36.65", "ST2,,"])
    out = tmp_path / "strict.json"
    result = cli(import_url, "import", "camera", str(path), "--strict", "--report", str(out))
    assert result.returncode == 1
    assert "严格模式" in result.stdout and "导入 0 行，拒绝 2 行" in result.stdout
    assert count(db, "camera", "code LIKE 'ST%'") == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["file_rejected"] is True and report["rows"][0]["code"] == "empty_geometry"


def test_database_constraint_violation_is_a_clean_message(import_url, db, tmp_path):
    rows = [f"DB{i},{LON},{LAT + i * 1e-4},{90 if i != 7 else 400}" for i in range(20)]
    path = write_csv(tmp_path / "dir.csv", "code,lon,lat,direction_deg", rows)
    result = cli(import_url, "import", "camera", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "ck_camera_direction" in result.stdout and "第 8 行" in result.stdout
    assert "整个文件未导入" in result.stdout
    assert count(db, "camera", "code LIKE 'DB%'") == 0


def test_replace_refused_by_references_leaves_table(db, tmp_path):
    grids = write_csv(tmp_path / "g.csv", "code,wkt", [f'370102001001003,"{SQUARE}"'])
    before = count(db, "unit_grid")
    parts = write_csv(tmp_path / "p.csv", "code,grid_code,lon,lat",
                      [f"3701020118000010,370102001001001,{LON},{LAT}"])  # fmt: skip
    assert run(db, "component", parts).loaded == 1
    report = run(db, "unit_grid", grids, mode="replace")
    assert report.file_rejected and "fk_component_grid_code_unit_grid" in report.error
    assert count(db, "unit_grid") == before


def test_specs_match_the_models():
    from geoalchemy2 import Geometry

    from loaders.importer.specs import SPECS

    for spec in SPECS.values():
        assert set(spec.fields) <= set(spec.model.columns.keys()), spec.layer
        geom = spec.model.columns["geom"].type
        assert isinstance(geom, Geometry) and geom.geometry_type == spec.geometry, spec.layer
        assert spec.key is None or spec.model.columns[spec.key].unique, spec.layer
        assert all(f in spec.fields for f in [*spec.choices, *spec.stages, *spec.derive])
