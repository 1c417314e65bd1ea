"""Occupancy readings sent in batches: POST /api/parking/readings and `python -m loaders
parking-readings`, on a scratch city holding only the lots each test makes for itself."""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from auth import accounts
from geodata.db import make_engine
from services.parking_ingest import MAX_BATCH, ingest_readings
from settings import PROJECT_ROOT

PATH = "/api/parking/readings"
PASSWORD = "ingest-password-1"
ROLES = ("admin", "operator", "leader", "planner", "kiosk", "district")
SERIAL = itertools.count(1)
BEIJING = timezone(timedelta(hours=8))
# A whole UTC hour two days ago: every test's readings are in the past and hour-aligned.
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)


@pytest.fixture(scope="module")
def city(scratch):
    """A scratch city, an app on it, and an API token per role (district: one district)."""
    url = scratch.create_city("onemap_parking_ingest")
    engine = make_engine(url)
    tokens = {}
    with engine.begin() as conn:
        district = conn.execute(text(
            "SELECT code FROM admin_area WHERE level = 'district' ORDER BY code LIMIT 1")).scalar()  # fmt: skip
        for role in ROLES:
            areas = [district] if role == "district" else []
            accounts.add_user(conn, f"pi_{role}", role, PASSWORD, areas=areas)
            tokens[role] = accounts.create_token(conn, f"pi_{role}", "t", 1)[1]
    from app import create_app
    from settings import Settings

    client = create_app(Settings(DATABASE_URL=url)).server.test_client()
    yield {"engine": engine, "client": client, "tokens": tokens, "url": url}
    engine.dispose()


def new_lot(city, capacity: int | None) -> tuple[str, int]:
    """A parking lot of its own for one test: (code, id)."""
    code = f"TEST-P{next(SERIAL):04d}"
    with city["engine"].begin() as conn:
        lot_id = conn.execute(text(
            "INSERT INTO parking_lot (code, name, capacity, lot_type, geom) VALUES "
            "(:c, '测试停车场', :cap, '路外', ST_SetSRID(ST_MakePoint(117.02, 36.67), 4490)) "
            "RETURNING id"), {"c": code, "cap": capacity}).scalar()  # fmt: skip
    return code, lot_id


def readings_of(city, lot_id: int) -> list[tuple]:
    """A lot's stored readings (time in UTC, occupied, entries), oldest first."""
    with city["engine"].connect() as conn:
        return [(t.astimezone(UTC), o, e) for t, o, e in conn.execute(text(
            "SELECT observed_at, occupied, entries FROM parking_occupancy WHERE lot_id = :l "
            "ORDER BY observed_at"), {"l": lot_id}).all()]  # fmt: skip


def all_readings(city) -> list[tuple]:
    """Every stored reading, to compare the table before and after."""
    with city["engine"].connect() as conn:
        return conn.execute(text("SELECT * FROM parking_occupancy ORDER BY 1, 2")).all()


def post(city, body, role: str = "operator", **params):
    """POST a batch with a role's API token."""
    headers = {"Authorization": f"Bearer {city['tokens'][role]}"}
    return city["client"].post(PATH, json=body, headers=headers, query_string=params)


def at(minutes: int = 0, zone: str = "+00:00") -> str:
    """ISO 8601 text of HOUR plus some minutes, in UTC unless another offset is given."""
    return (HOUR + timedelta(minutes=minutes)).isoformat().replace("+00:00", zone)


def reasons(resp) -> dict[int, str]:
    """Rejected rows of an answer: index → reason."""
    return {r["index"]: r["reason"] for r in resp.get_json()["rejected"]}


# --- validation: every bad row with its reason ------------------------------------------------


def test_each_bad_row_is_rejected_with_its_reason_and_nothing_is_written(city):
    code, _ = new_lot(city, 10)
    before = all_readings(city)
    future = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    almost_now = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()  # inside the 5-min skew
    batch = [
        {"lot_code": code, "at": at(0), "occupied": 4},  # 0 good
        {"lot_code": "NO-SUCH-LOT", "at": at(0), "occupied": 1},  # 1 unknown lot
        {"lot_code": code, "at": future, "occupied": 1},  # 2 future
        {"lot_code": code, "at": at(15), "occupied": -1},  # 3 negative
        {"lot_code": code, "at": at(30), "occupied": 11},  # 4 over capacity 10
        {"lot_code": code, "at": at(45), "occupied": 2.5},  # 5 not an integer
        {"lot_code": code, "at": "yesterday", "occupied": 1},  # 6 not ISO 8601
        {"lot_code": code, "at": "2026-01-05", "occupied": 1},  # 7 a date without a time
        {"lot_code": code, "at": at(0, "+08:00"), "occupied": 3},  # 8 good: 8 hours earlier
        {"lot_code": code, "at": HOUR.astimezone(BEIJING).isoformat(), "occupied": 5},  # 9 = row 0
        {"lot_code": code, "occupied": 1},  # 10 no time
        "not an object",  # 11
        {"lot_code": code, "at": at(50), "occupied": True},  # 12 a boolean is not a count
        {"lot_code": code, "at": almost_now, "occupied": 10},  # 13 good: at capacity, skew
        {"lot_code": code, "at": at(55), "occupied": 1, "entries": -3},  # 14 bad entries
    ]
    resp = post(city, batch)
    assert resp.status_code == 422
    body = resp.get_json()
    assert (body["received"], body["valid"], body["written"]) == (15, 3, False)
    assert (body["inserted"], body["updated"], body["unchanged"]) == (0, 0, 0)
    got = reasons(resp)
    assert sorted(got) == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14]
    assert "没有这个停车场" in got[1] and "未来" in got[2]
    assert all("非负整数" in got[i] for i in (3, 5, 12, 14))
    assert "超过车位数 10" in got[4]
    assert "ISO 8601" in got[6] and "ISO 8601" in got[7]
    assert "批次内重复" in got[9] and "第 1 条" in got[9]  # 9 is the same instant as row 0
    assert "缺少字段：at" in got[10] and "对象" in got[11]
    lot_codes = {r["index"]: r["lot_code"] for r in body["rejected"]}
    assert lot_codes[1] == "NO-SUCH-LOT" and lot_codes[11] is None
    assert all_readings(city) == before  # all or nothing: the table is exactly as it was


def test_partial_writes_the_good_rows_and_reports_the_others(city):
    code, lot_id = new_lot(city, 10)
    batch = [
        {"lot_code": code, "at": at(0), "occupied": 4},
        {"lot_code": code, "at": at(15), "occupied": 99},
        {"lot_code": code, "at": at(30, "+08:00"), "occupied": "7", "entries": "2"},  # CSV-like
        {"lot_code": code, "at": at(45).replace("+00:00", ""), "occupied": 0},  # no zone
    ]
    resp = post(city, batch, partial="true")
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["valid"], body["written"], body["inserted"], body["partial"]) == (3, True, 3, True)
    assert reasons(resp).keys() == {1}
    # A time without a zone is on the city clock (UTC+8): 8 hours before the same UTC digits.
    assert readings_of(city, lot_id) == [
        (HOUR - timedelta(hours=8) + timedelta(minutes=30), 7, 2),
        (HOUR - timedelta(hours=8) + timedelta(minutes=45), 0, None),
        (HOUR, 4, None),
    ]


def test_partial_in_the_body_and_nothing_valid_is_422(city):
    code, lot_id = new_lot(city, 5)
    resp = post(city, {"readings": [{"lot_code": code, "at": at(0), "occupied": 6}],
                       "partial": True})  # fmt: skip
    assert resp.status_code == 422 and resp.get_json()["written"] is False
    assert readings_of(city, lot_id) == []


def test_unknown_capacity_takes_any_count(city):
    code, lot_id = new_lot(city, None)
    resp = post(city, [{"lot_code": code, "at": at(0), "occupied": 5000}])
    assert resp.status_code == 200 and readings_of(city, lot_id) == [(HOUR, 5000, None)]


# --- idempotency ---------------------------------------------------------------------------------


def test_the_same_batch_twice_adds_no_rows_and_a_correction_replaces(city):
    code, lot_id = new_lot(city, 100)
    batch = [{"lot_code": code, "at": at(15 * i), "occupied": 10 + i} for i in range(8)]
    first = post(city, batch).get_json()
    assert (first["inserted"], first["updated"], first["unchanged"]) == (8, 0, 0)
    count = len(all_readings(city))
    again = post(city, batch).get_json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 8)
    assert len(all_readings(city)) == count
    # The same instant written in another zone is the same reading; its new value replaces.
    fix = post(city, [{"lot_code": code, "at": at(0, "+00:00").replace("+00:00", "Z"),
                       "occupied": 50, "entries": 3}]).get_json()  # fmt: skip
    assert (fix["inserted"], fix["updated"]) == (0, 1)
    stored = readings_of(city, lot_id)
    assert len(stored) == 8 and stored[0] == (HOUR, 50, 3) and stored[1] == (
        HOUR + timedelta(minutes=15), 11, None)  # fmt: skip
    # Re-sent without entries: the stored count stays, nothing changes.
    keep = post(city, [{"lot_code": code, "at": at(0), "occupied": 50}]).get_json()
    assert keep["unchanged"] == 1 and readings_of(city, lot_id)[0] == (HOUR, 50, 3)


# --- what the figures read follows at once ----------------------------------------------------


def test_a_batch_bumps_the_data_version_and_the_hourly_rollup(city):
    code, lot_id = new_lot(city, 10)

    def version():
        with city["engine"].connect() as conn:
            return conn.execute(text("SELECT version FROM data_version "
                                     "WHERE table_name = 'parking_occupancy'")).scalar()  # fmt: skip

    was = version()
    post(city, [{"lot_code": code, "at": at(0), "occupied": 5},
                {"lot_code": code, "at": at(30), "occupied": 7}])  # fmt: skip
    assert version() > was
    with city["engine"].connect() as conn:
        status = conn.execute(text("SELECT occupied, occupancy_level FROM parking_lot_status "
                                   "WHERE code = :c"), {"c": code}).one()  # fmt: skip
        hour = conn.execute(text("SELECT observed_s, occupied_s, max_occupied, readings "
                                 "FROM parking_hourly WHERE lot_id = :l AND hour = :h"),
                            {"l": lot_id, "h": HOUR}).one()  # fmt: skip
    assert tuple(status) == (7, "较满")  # the latest reading: 7 of 10
    # By hand: 5 held 30 min, then 7 held (at most an hour) for the other 30 min of this hour.
    assert tuple(hour) == (3600, 5 * 1800 + 7 * 1800, 7, 2)


def test_the_heat_layer_follows_a_new_reading_without_a_restart(city):
    code, _ = new_lot(city, 10)
    moment = HOUR - timedelta(days=5)  # no other test writes readings this early
    headers = {"Authorization": f"Bearer {city['tokens']['operator']}"}

    def heat() -> dict:
        resp = city["client"].get("/api/analytics/parking-heat", headers=headers,
                                  query_string={"at": moment.isoformat()})  # fmt: skip
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["result"]

    before = heat()  # cached now: the next answer must come from the new data version
    assert (before["lots_with_reading"], before["occupied"]) == (0, 0)
    taken = (moment - timedelta(minutes=10)).isoformat()
    assert post(city, [{"lot_code": code, "at": taken, "occupied": 6}]).status_code == 200
    after = heat()
    assert (after["lots_with_reading"], after["occupied"], after["capacity"]) == (1, 6, 10)


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["leader", "planner", "kiosk", "district"])
def test_roles_other_than_operator_and_admin_are_refused(city, role):
    code, lot_id = new_lot(city, 10)
    resp = post(city, [{"lot_code": code, "at": at(0), "occupied": 1}], role=role)
    assert resp.status_code == 403 and "值班员" in resp.get_json()["error"]
    assert readings_of(city, lot_id) == []


def test_admin_token_works_and_anonymous_is_401(city):
    code, lot_id = new_lot(city, 10)
    resp = post(city, [{"lot_code": code, "at": at(0), "occupied": 1}], role="admin")
    assert resp.status_code == 200 and readings_of(city, lot_id) == [(HOUR, 1, None)]
    anonymous = city["client"].application.test_client().post(PATH, json=[])
    assert anonymous.status_code == 401


def test_a_cookie_session_needs_the_same_origin(city):
    code, lot_id = new_lot(city, 10)
    browser = city["client"].application.test_client()
    form = browser.get("/login").get_data(as_text=True)
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    signed_in = browser.post("/login", data={"username": "pi_operator", "password": PASSWORD,
                                             "csrf_token": csrf},
                             headers={"Origin": "http://localhost"})  # fmt: skip
    assert signed_in.status_code == 302
    batch = [{"lot_code": code, "at": at(0), "occupied": 1}]
    assert browser.post(PATH, json=batch).status_code == 403  # no Origin: refused as cross-site
    cross = browser.post(PATH, json=batch, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "跨站" in cross.get_json()["error"]
    assert readings_of(city, lot_id) == []
    assert browser.post(PATH, json=batch, headers={"Origin": "http://localhost"}).status_code == 200
    assert readings_of(city, lot_id) == [(HOUR, 1, None)]


@pytest.mark.parametrize(
    ("body", "params", "message"),
    [
        (None, {}, "JSON 数组"),
        ({"lot_code": "x"}, {}, "JSON 数组"),
        ([], {}, "没有读数"),
        ([{}] * (MAX_BATCH + 1), {}, "一次最多"),
        ([{"lot_code": "x", "at": "x", "occupied": 1}], {"partial": "maybe"}, "partial"),
    ],
)
def test_bad_batches_are_400_with_a_chinese_message(city, body, params, message):
    resp = post(city, body, **params)
    assert resp.status_code == 400 and message in resp.get_json()["error"]


def test_odd_values_never_cause_a_500(city):
    code, _ = new_lot(city, 10)
    odd = [{"lot_code": "a\x00b", "at": at(0), "occupied": 1},
           {"lot_code": ["x"], "at": at(0), "occupied": 1},
           {"lot_code": code, "at": "0001-01-01T00:00:00+08:00", "occupied": 1},
           {"lot_code": code, "at": "9999-12-31T23:59:59-08:00", "occupied": 1},
           {"lot_code": code, "at": 1700000000, "occupied": 1},
           {"lot_code": code, "at": at(0), "occupied": 10**30},
           {"lot_code": code, "at": at(0), "occupied": "9" * 5000},
           {"lot_code": code, "at": at(0), "occupied": {"n": 1}}]  # fmt: skip
    resp = post(city, odd)
    assert resp.status_code == 422 and sorted(reasons(resp)) == list(range(len(odd)))


# --- the command line ---------------------------------------------------------------------------


def run_cli(city, *args: str) -> subprocess.CompletedProcess:
    """`python -m loaders …` against the scratch city."""
    env = {**os.environ, "DATABASE_URL": city["url"]}
    return subprocess.run([sys.executable, "-m", "loaders", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def write_csv(path, rows: list[dict]) -> str:
    """A readings CSV with the header lot_code, at, occupied."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["lot_code", "at", "occupied"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def cli(city, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`main([...])` of the loaders in this process (importing them anew costs seconds)."""
    from loaders.cli import main

    monkeypatch.setenv("DATABASE_URL", city["url"])
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out + out.err


def test_cli_all_or_nothing_then_partial(city, tmp_path, monkeypatch, capsys):
    code, lot_id = new_lot(city, 20)
    rows = [{"lot_code": code, "at": at(0), "occupied": 3},
            {"lot_code": code, "at": at(15), "occupied": 21},
            {"lot_code": code, "at": "2026-13-01T00:00", "occupied": 3}]  # fmt: skip
    path = write_csv(tmp_path / "readings.csv", rows)
    refused = run_cli(city, "parking-readings", path)  # the real command, once
    assert refused.returncode == 2, refused.stderr
    assert "第 3 行" in refused.stdout and "超过车位数 20" in refused.stdout
    assert "第 4 行" in refused.stdout and "整批未写入" in refused.stdout
    assert readings_of(city, lot_id) == []
    status, out = cli(city, monkeypatch, capsys, "parking-readings", path, "--partial")
    assert status == 2 and "新增 1" in out and "第 3 行" in out
    assert readings_of(city, lot_id) == [(HOUR, 3, None)]
    good = write_csv(tmp_path / "good.csv", [rows[0]])
    status, out = cli(city, monkeypatch, capsys, "parking-readings", good)
    assert status == 0 and "未变 1" in out
    assert readings_of(city, lot_id) == [(HOUR, 3, None)]


def test_cli_refuses_a_file_without_the_columns(city, tmp_path, monkeypatch, capsys):
    path = tmp_path / "wrong.csv"
    path.write_text("lot,time,count\nA,2026-01-01T00:00,1\n", encoding="utf-8")
    status, out = cli(city, monkeypatch, capsys, "parking-readings", str(path))
    assert status == 2 and "缺少列" in out
    status, out = cli(city, monkeypatch, capsys, "parking-readings", str(tmp_path / "absent.csv"))
    assert status == 2 and "不存在" in out
    path.write_bytes("lot_code,at,occupied\n停车,2026-01-01T00:00,1\n".encode("gbk"))
    status, out = cli(city, monkeypatch, capsys, "parking-readings", str(path))
    assert status == 2 and "无法读取" in out


# --- the rollups kept by the triggers equal a recomputation from scratch --------------------

HOLD = timedelta(hours=1)
HOURLY_COLUMNS = ("observed_s", "occupied_s", "full_s", "max_occupied", "arrivals", "readings",
                  "counted")  # fmt: skip
CITY = ZoneInfo("Asia/Shanghai")


def expected_rollups(city, lot_ids: list[int]) -> tuple[dict, dict]:
    """The hourly and daily rows of docs/PARKING.md, recomputed in Python from the stored
    readings: a reading holds until the next one, at most an hour; arrivals are entries, else the
    rise since a reading at most an hour older; full = occupied ≥ 90 % of a known capacity."""
    hourly: dict = {}

    def row(lot_id, hour):
        return hourly.setdefault((lot_id, hour), {"observed_s": 0, "occupied_s": 0, "full_s": 0,
                                                  "max_occupied": None, "arrivals": 0,
                                                  "readings": 0, "counted": 0})  # fmt: skip

    with city["engine"].connect() as conn:
        capacity = dict(conn.execute(text("SELECT id, capacity FROM parking_lot "
                                          "WHERE id = ANY(:ids)"), {"ids": lot_ids}).all())  # fmt: skip
    for lot_id in lot_ids:
        readings = readings_of(city, lot_id)
        for i, (t, occupied, entries) in enumerate(readings):
            end = min([t + HOLD] + [n for n, _, _ in readings[i + 1 : i + 2]])
            start = t
            while start < end:
                hour = start.replace(minute=0, second=0, microsecond=0)
                stop = min(end, hour + timedelta(hours=1))
                seconds, r = (stop - start).total_seconds(), row(lot_id, hour)
                r["observed_s"] += seconds
                r["occupied_s"] += occupied * seconds
                if capacity[lot_id] is not None and occupied * 10 >= capacity[lot_id] * 9:
                    r["full_s"] += seconds
                r["max_occupied"] = max(occupied, r["max_occupied"] or 0)
                start = stop
            r = row(lot_id, t.replace(minute=0, second=0, microsecond=0))
            r["readings"] += 1
            if entries is not None:
                r["counted"] += 1
                r["arrivals"] += entries
            elif i > 0 and t - readings[i - 1][0] <= HOLD:
                r["arrivals"] += max(occupied - readings[i - 1][1], 0)
    daily: dict = {}
    for (lot_id, hour), r in sorted(hourly.items()):
        local = hour.astimezone(CITY)
        d = daily.setdefault((lot_id, local.date()), {
            **{c: 0 for c in HOURLY_COLUMNS}, "max_occupied": None,
            "occupied_by_hour": [0.0] * 24, "observed_by_hour": [0.0] * 24})  # fmt: skip
        for c in HOURLY_COLUMNS:
            if c != "max_occupied":
                d[c] += r[c]
        if r["max_occupied"] is not None:
            d["max_occupied"] = max(r["max_occupied"], d["max_occupied"] or 0)
        d["occupied_by_hour"][local.hour] = r["occupied_s"]
        d["observed_by_hour"][local.hour] = r["observed_s"]
    return hourly, daily


def stored_rollups(city, lot_ids: list[int]) -> tuple[dict, dict]:
    """The hourly and daily rows the triggers keep, in the same shape."""
    with city["engine"].connect() as conn:
        hourly = {(r.lot_id, r.hour.astimezone(UTC)): {c: getattr(r, c) for c in HOURLY_COLUMNS}
                  for r in conn.execute(text("SELECT * FROM parking_hourly WHERE lot_id = ANY(:ids)"),
                                        {"ids": lot_ids})}  # fmt: skip
        columns = (*HOURLY_COLUMNS, "occupied_by_hour", "observed_by_hour")
        daily = {(r.lot_id, r.day): {c: getattr(r, c) for c in columns}
                 for r in conn.execute(text("SELECT * FROM parking_daily WHERE lot_id = ANY(:ids)"),
                                       {"ids": lot_ids})}  # fmt: skip
    return hourly, daily


def check_rollups(city, lot_ids: list[int]) -> dict:
    """The stored rollups equal the recomputation (whole-second times: every sum is exact)."""
    expected, stored = expected_rollups(city, lot_ids), stored_rollups(city, lot_ids)
    assert stored[0] == expected[0]
    assert stored[1] == expected[1]
    return expected[1]


def send(city, rows: list[dict], partial: bool = False) -> dict:
    """A batch through the ingest service, committed."""
    with city["engine"].begin() as conn:
        return ingest_readings(conn, rows, partial=partial)


def test_the_rollups_after_ingests_equal_a_recomputation_from_scratch(city):
    (a, a_id), (b, b_id), (c, c_id) = new_lot(city, 10), new_lot(city, None), new_lot(city, 40)
    lots = [a_id, b_id, c_id]
    start = HOUR - timedelta(hours=30)  # 30 hours of history: it crosses a city-clock midnight
    # Lot a: every 15 min, 0–9 of 10 spaces, entries counted at every fourth reading, and one
    # reading of 10 (the peak of its day, 12 h 30 min in).
    history = [(a_id, start + timedelta(minutes=15 * k), 10 if k == 50 else (3 * k) % 10,
                2 if k % 4 == 0 else None) for k in range(120)]  # fmt: skip
    history += [(b_id, start + timedelta(minutes=20 * k), k % 13, None)
                for k in list(range(30)) + list(range(40, 70))]  # a gap of 3 h 20 min  # fmt: skip
    history += [(c_id, start + timedelta(hours=k), (7 * k) % 41, None) for k in range(30)]
    with city["engine"].begin() as conn:
        conn.execute(text("INSERT INTO parking_occupancy (lot_id, observed_at, occupied, entries) "
                          "VALUES (:l, :t, :o, :e)"),
                     [{"l": lot, "t": t, "o": o, "e": e} for lot, t, o, e in history])  # fmt: skip
    check_rollups(city, lots)

    def iso(hours: float, minutes: int = 0) -> str:
        return (start + timedelta(hours=hours, minutes=minutes)).isoformat()

    # New readings between stored ones, in a few hours of a stored day; lot b: inside its gap.
    report = send(city, [{"lot_code": a, "at": iso(5, 5), "occupied": 9},
                         {"lot_code": a, "at": iso(5, 20), "occupied": 1, "entries": 4},
                         {"lot_code": a, "at": iso(6, 50), "occupied": 8},
                         {"lot_code": b, "at": iso(11, 10), "occupied": 12},
                         {"lot_code": b, "at": iso(12), "occupied": 3}])  # fmt: skip
    assert report["inserted"] == 5
    check_rollups(city, lots)
    # The same lot and times again with other values (corrections), one unchanged; lot a's peak
    # reading is lowered to 0, so its day's peak must fall to the day's next highest reading.
    peak = start + timedelta(minutes=15 * 50)
    assert check_rollups(city, lots)[(a_id, peak.astimezone(CITY).date())]["max_occupied"] == 10
    report = send(city, [{"lot_code": a, "at": iso(5, 5), "occupied": 2},
                         {"lot_code": a, "at": iso(10), "occupied": 9, "entries": 5},
                         {"lot_code": a, "at": peak.isoformat(), "occupied": 0},
                         {"lot_code": b, "at": iso(12), "occupied": 3}])  # fmt: skip
    assert (report["updated"], report["unchanged"]) == (3, 1)
    days = check_rollups(city, lots)
    assert days[(a_id, peak.astimezone(CITY).date())]["max_occupied"] == 9
    # A partial batch: one row refused, the good ones written at two distant times of lot c.
    report = send(city, [{"lot_code": c, "at": iso(1, 30), "occupied": 40},
                         {"lot_code": "NO-SUCH-LOT", "at": iso(2), "occupied": 1},
                         {"lot_code": c, "at": iso(25, 45), "occupied": 39}], partial=True)  # fmt: skip
    assert report["written"] and report["inserted"] == 2 and len(report["rejected"]) == 1
    check_rollups(city, lots)
    # Readings deleted: the emptied hours and a lot-day left without readings disappear.
    with city["engine"].begin() as conn:
        conn.execute(text("DELETE FROM parking_occupancy WHERE lot_id = :l AND observed_at < :t"),
                     {"l": c_id, "t": start + timedelta(hours=26)})  # fmt: skip
    after = check_rollups(city, lots)
    assert len([k for k in after if k[0] == c_id]) < len([k for k in days if k[0] == c_id])


# --- speed --------------------------------------------------------------------------------------


def test_ten_thousand_readings(city):
    lots = [new_lot(city, 500)[0] for _ in range(500)]
    batch = [{"lot_code": code, "at": at(15 * i), "occupied": (7 * i + n) % 500}
             for n, code in enumerate(lots) for i in range(20)]  # fmt: skip
    assert len(batch) == 10_000
    began = time.perf_counter()
    resp = post(city, batch)
    took = time.perf_counter() - began
    assert resp.status_code == 200 and resp.get_json()["inserted"] == 10_000
    began = time.perf_counter()
    with city["engine"].begin() as conn:
        again = ingest_readings(conn, batch)
    service = time.perf_counter() - began
    assert again["unchanged"] == 10_000
    print(f"\n10,000 readings (500 lots × 20): POST {took:.2f} s; the same again "
          f"(nothing changes) through the service {service:.2f} s")  # fmt: skip
