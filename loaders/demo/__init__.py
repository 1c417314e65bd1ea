"""The demo city (`python -m loaders demo`): a realistic, seeded city inside real Jinan districts.

Besides the cases of `cases`, each district holds planted near-duplicate reports and look-alikes
that must not match them (`similar`: case codes whose serial is 9GKKKKR, see there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from shapely import wkb
from shapely.geometry import box
from sqlalchemy import Connection, text

from geodata.models import Base
from layers.aggregates import refresh_tables
from loaders.demo import assets, base, cases, drainage, similar
from loaders.demo.bulk import Tables
from loaders.demo.lattice import build_lattice, to_metric

CST = timezone(timedelta(hours=8))
YEAR_END = datetime(2026, 10, 31, 23, 59, tzinfo=CST)
PARKING_DAYS = 14


@dataclass(frozen=True)
class Scale:
    """How big a demo city is."""

    districts: tuple[str, ...]
    window_m: float | None  # square window (m) around the first district's centre, or whole
    cases: int


SCALES = {
    "small": Scale(("370102",), 2600.0, 4_000),
    "city": Scale(("370102",), None, 100_000),
    "large": Scale(("370102", "370103", "370104", "370105"), None, 1_000_000),
}
# Tables the demo writes, in the models' dependency order (parents before children).
DEMO_TABLES = {
    "admin_area", "unit_grid", "road", "land_parcel", "green_space", "component", "geocode",
    "sanitation_facility", "parking_lot", "parking_occupancy", "camera", "drain_well",
    "drain_pipe", "drain_outfall", "pump_station", "waterlogging_point", "sensor", "alarm",
    "case_record",
}  # fmt: skip
LOAD_ORDER = [t.name for t in Base.metadata.sorted_tables if t.name in DEMO_TABLES]
CLEARED = [t for t in reversed(LOAD_ORDER) if t != "admin_area"] + ["responsibility_grid"]


def district_boundaries(conn: Connection, codes: tuple[str, ...]) -> list[tuple[str, str, object]]:
    """(code, name, metric boundary) of the requested districts, which must be loaded."""
    rows = conn.execute(
        text("SELECT code, name, ST_AsBinary(geom) FROM admin_area "
             "WHERE level = 'district' AND code = ANY(:codes) ORDER BY code"),
        {"codes": list(codes)},
    ).all()  # fmt: skip
    if len(rows) != len(codes):
        raise LookupError("演示城市需要先导入济南市区县边界（python -m loaders boundaries）")
    return [(c, n, to_metric(wkb.loads(bytes(g)))) for c, n, g in rows]


def clear_demo(conn: Connection) -> None:
    """Remove the city's data but keep cities, districts and the code lists."""
    conn.execute(text(f"TRUNCATE {', '.join(CLEARED)} RESTART IDENTITY CASCADE"))
    conn.execute(text("DELETE FROM admin_area WHERE level IN ('community', 'street')"))


def generate(conn: Connection, scale: str, seed: int, log=print) -> dict[str, int]:
    """Generate the demo city into the database (inside the caller's transaction)."""
    spec = SCALES[scale]
    rng = np.random.default_rng(seed)
    conn.execute(text("SET LOCAL statement_timeout = 0"))  # the large scale COPYs for minutes
    clear_demo(conn)
    t = Tables()
    placed = assets.Placed()
    next_lot, next_sensor, serial = 1, 1, 1
    start = YEAR_END - timedelta(days=365)
    total_area = 0.0
    districts, built = [], []
    for code, name, boundary in district_boundaries(conn, spec.districts):
        if spec.window_m:
            c = boundary.representative_point()
            boundary = boundary.intersection(box(c.x - spec.window_m / 2, c.y - spec.window_m / 2,
                                                 c.x + spec.window_m / 2, c.y + spec.window_m / 2))  # fmt: skip
        districts.append((code, name, boundary))
        total_area += boundary.area
    for code, name, boundary in districts:
        began = time.monotonic()
        placed.hotspots = []  # cases cluster around this district's own places
        d = base.District(build_lattice(code, name, boundary, rng))
        c = boundary.representative_point()
        d.historic_centre = (c.x, c.y)
        base.add_admin_and_grids(t, d.lattice)
        d.roads = base.build_roads(d.lattice, rng)
        base.add_roads(t, d.roads)
        base.assign_land_use(d, rng)
        base.place_parks(d, rng)
        base.add_parcels_and_green(t, d, rng)
        assets.add_components(t, d, placed, rng)
        assets.add_geocodes(t, d, placed, rng)
        assets.add_sanitation(t, d, placed, rng)
        next_lot = assets.add_parking(t, d, placed, rng, YEAR_END - timedelta(days=PARKING_DAYS),
                                      PARKING_DAYS, next_lot)  # fmt: skip
        assets.add_cameras(t, d, rng)
        wells = drainage.add_drainage(t, d, rng)
        next_sensor = cases.add_sensors(t, wells, placed, YEAR_END, rng, next_sensor, code)
        n_cases = int(spec.cases * boundary.area / total_area)
        serial = cases.add_cases(t, d, placed, n_cases, start, YEAR_END, rng, serial)
        built.append(d)
        log(
            f"  {name}: {len(d.lattice.cells)} 个单元网格，生成用时 {time.monotonic() - began:.1f} 秒"
        )
    began = time.monotonic()
    similar.add_similar_reports(t, built, YEAR_END, seed)  # own stream, after all the rest
    written = t.copy_into(conn, LOAD_ORDER)
    conn.execute(text("ANALYZE"))
    log(f"  写入数据库用时 {time.monotonic() - began:.1f} 秒")
    began = time.monotonic()
    refresh_tables(conn)
    log(f"  低级别瓦片预聚合用时 {time.monotonic() - began:.1f} 秒")
    return written
