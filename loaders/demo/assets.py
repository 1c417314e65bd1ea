"""Demo objects along and between the roads: components, addresses, sanitation, parking, cameras."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from geodata import catalog
from loaders.demo.base import ROAD_WIDTH, District, Road
from loaders.demo.bulk import Tables, points_ewkb
from loaders.demo.names import PLACE_KINDS, NamePool

CST = timezone(timedelta(hours=8))
# (class, road classes, spacing m, offsets across the road as fractions of half-width)
COMPONENT_RULES = [
    ("0118", ("主干路", "次干路", "支路"), 30.0, (1.0, -1.0)),  # 路灯
    ("0402", ("主干路", "次干路"), 8.0, (1.1, -1.1)),  # 行道树
    ("0103", ("主干路", "次干路", "支路"), 40.0, (0.3,)),  # 雨水井盖
    ("0102", ("主干路", "次干路", "支路"), 50.0, (-0.3,)),  # 污水井盖
    ("0101", ("主干路", "次干路"), 80.0, (0.5,)),  # 上水井盖
    ("0104", ("主干路", "次干路"), 30.0, (0.95, -0.95)),  # 雨水箅子
    ("0105", ("主干路",), 150.0, (0.6,)),  # 电力井盖
    ("0107", ("主干路", "次干路"), 120.0, (-0.6,)),  # 通讯井盖
    ("0111", ("主干路",), 200.0, (-0.5,)),  # 燃气井盖
    ("0110", ("主干路",), 250.0, (0.4,)),  # 热力井盖
    ("0117", ("主干路", "次干路"), 60.0, (1.05,)),  # 立杆
    ("0305", ("主干路", "次干路", "支路"), 80.0, (1.05, -1.05)),  # 垃圾箱
    ("0209", ("主干路", "次干路"), 150.0, (1.0,)),  # 交通标志牌
    ("0211", ("主干路",), 50.0, (0.0,)),  # 交通护栏
    ("0203", ("主干路",), 500.0, (1.0, -1.0)),  # 公交站亭
    ("0407", ("主干路",), 200.0, (-1.1,)),  # 街头坐椅
    ("0212", ("次干路", "支路"), 250.0, (1.0,)),  # 存车支架
    ("0501", ("支路",), 300.0, (1.0,)),  # 宣传栏
    ("0601", ("主干路",), 1500.0, (1.3,)),  # 重大危险源 (filling stations)
]
STATUS_P = dict(zip(catalog.COMPONENT_STATUSES, (0.925, 0.05, 0.012, 0.008, 0.005), strict=True))
# Parking lot types with their shares (order kept: it fixes the seeded random draws).
LOT_TYPES = catalog.checked(("路外", "地下", "立体", "路内"), catalog.PARKING_TYPES, "lot types")
OWNER = {"01": "市政公用事业局", "02": "交通运输局", "03": "城市管理局环卫处", "04": "园林和林业绿化局",
         "05": "住房和城乡建设局", "06": "应急管理局"}  # fmt: skip


@dataclass
class Placed:
    """Points placed in a district, with the attributes later steps reuse."""

    components: dict[str, list] = field(default_factory=dict)  # class -> [id, x, y, code, status]
    hotspots: list[tuple[float, float, str]] = field(default_factory=list)
    next_component_id: int = 1

    def of_district(self, cls: str, district: str) -> list:
        """The placed components of one class in one district (codes start with its code)."""
        return [c for c in self.components.get(cls, []) if c[3].startswith(district)]


def along(road: Road, spacing: float, offset: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Points every `spacing` metres along a road, `offset` metres across it."""
    xs, ys = [], []
    for a, b in road.segments:
        start = a + rng.uniform(0, spacing)
        t = np.arange(start, b, spacing)
        across = np.full_like(t, road.position + offset)
        xs.append(across if road.vertical else t)
        ys.append(t if road.vertical else across)
    if not xs:
        return np.empty(0), np.empty(0)
    return np.concatenate(xs), np.concatenate(ys)


def add_components(t: Tables, d: District, placed: Placed, rng) -> None:
    """Components of all six major classes along the roads, with valid 16-digit codes."""
    statuses, p = zip(*STATUS_P.items(), strict=True)
    for cls, road_classes, spacing, offsets in COMPONENT_RULES:
        xs, ys = [], []
        for road in (r for r in d.roads if r.road_class in road_classes):
            half = ROAD_WIDTH[road.road_class] / 2
            for f in offsets:
                x, y = along(road, spacing, f * half, rng)
                xs.append(x)
                ys.append(y)
        _queue_components(t, d, placed, cls, np.concatenate(xs), np.concatenate(ys), rng,
                          statuses, p)  # fmt: skip
    _park_components(t, d, placed, rng, statuses, p)


def _park_components(t, d: District, placed: Placed, rng, statuses, p) -> None:
    """Benches, old trees, sculptures and fountains inside parks; toilets as components."""
    for cls, per_park in (("0407", 6), ("0401", 1), ("0406", 1), ("0410", 1), ("0301", 1)):
        xs, ys = [], []
        for _size, _cell, geom in d.parks:
            if geom.is_empty:
                continue
            minx, miny, maxx, maxy = geom.bounds
            k = rng.poisson(per_park)
            xs.append(rng.uniform(minx, maxx, k))
            ys.append(rng.uniform(miny, maxy, k))
        if xs:
            _queue_components(t, d, placed, cls, np.concatenate(xs), np.concatenate(ys), rng,
                              statuses, p)  # fmt: skip


def _queue_components(t, d: District, placed: Placed, cls, x, y, rng, statuses, p) -> None:
    """Give points codes, statuses and grid codes and queue them."""
    grids = d.lattice.grid_codes(x, y)
    keep = np.array([g is not None for g in grids], dtype=bool)
    x, y = x[keep], y[keep]
    grids = [g for g in grids if g is not None]
    n = len(x)
    if n == 0:
        return
    known = placed.components.setdefault(cls, [])
    serial0 = sum(1 for c in known if c[3][:6] == d.lattice.district_code)
    codes = [f"{d.lattice.district_code}{cls}{serial0 + i + 1:06d}" for i in range(n)]
    status = rng.choice(statuses, size=n, p=p)
    ids = np.arange(placed.next_component_id, placed.next_component_id + n)
    placed.next_component_id += n
    initial = [f"{y_}-{m:02d}-01" for y_, m in zip(rng.integers(2008, 2024, n).tolist(),
                                                    rng.integers(1, 13, n).tolist(), strict=True)]  # fmt: skip
    owner = OWNER[cls[:2]]
    t.add("component", ("id", "code", "class_code", "department", "owner", "maintainer",
                        "grid_code", "status", "initial_date", "data_source", "geom"),
          zip(ids.tolist(), codes, [cls] * n, [owner] * n, [owner] * n,
              [f"{d.lattice.district_name}{owner[:4]}养护中心"] * n, grids, status.tolist(), initial,
              ["实测"] * n, points_ewkb(x, y), strict=True))  # fmt: skip
    known.extend(zip(ids.tolist(), x.tolist(), y.tolist(), codes, status.tolist(), strict=True))


def door_addresses(d: District, rng) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Door-plate points every 20 m on both sides of named roads: x, y, road, number."""
    xs, ys, roads, numbers = [], [], [], []
    for road in d.roads:
        if road.road_class == "街巷" and rng.random() < 0.5:
            continue
        half = ROAD_WIDTH[road.road_class] / 2 + 8
        for side, parity in ((1, 1), (-1, 0)):
            x, y = along(road, 20.0, side * half, rng)
            n = len(x)
            xs.append(x)
            ys.append(y)
            roads += [road.name] * n
            numbers += [f"{2 * i + 2 - parity}号" for i in range(n)]
    return np.concatenate(xs), np.concatenate(ys), roads, numbers


def add_geocodes(t: Tables, d: District, placed: Placed, rng) -> None:
    """Door plates, buildings in residential cells and POIs (markets, schools…) as geocodes."""
    lat = d.lattice
    x, y, roads, numbers = door_addresses(d, rng)
    address = [f"济南市{lat.district_name}{r}{n}" for r, n in zip(roads, numbers, strict=True)]
    _queue_geocodes(
        t,
        d,
        x,
        y,
        catalog.GEOCODE_KINDS[0],
        address,
        roads,
        numbers,
        [None] * len(x),
        [None] * len(x),
    )
    bx, by, bnames = [], [], []
    for key, cell in lat.cells.items():
        if d.parcel_use.get(key) != "R":
            continue
        inner = cell.geom.buffer(-15) if cell.geom.area > 3000 else cell.geom
        minx, miny, maxx, maxy = (cell.geom if inner.is_empty else inner).bounds  # thin cells
        k = int(rng.integers(3, 9))
        bx.append(rng.uniform(minx, maxx, k))
        by.append(rng.uniform(miny, maxy, k))
        bnames += [f"{cell.code[-3:]}小区{j + 1}号楼" for j in range(k)]
    bx, by = np.concatenate(bx), np.concatenate(by)
    _queue_geocodes(t, d, bx, by, "楼牌", [f"济南市{lat.district_name}{b}" for b in bnames],
                    [None] * len(bx), [None] * len(bx), bnames, [None] * len(bx))  # fmt: skip
    _add_pois(t, d, placed, rng)


def _add_pois(t: Tables, d: District, placed: Placed, rng) -> None:
    """Points of interest; markets, schools and building sites become case hotspots."""
    pool = NamePool(rng)
    cells = list(d.lattice.cells.values())
    n = max(5, int(sum(c.geom.area for c in cells) / 1e6 * 12))
    picks = rng.choice(len(cells), size=n, replace=False)
    xs, ys, names = [], [], []
    for idx in picks:
        c = cells[idx].geom.representative_point()
        kind = str(rng.choice(PLACE_KINDS))
        xs.append(c.x)
        ys.append(c.y)
        names.append(pool.take(kind))
        if kind in ("农贸市场", "小学", "中学") or rng.random() < 0.08:
            placed.hotspots.append((c.x, c.y, kind))
    lat = d.lattice
    _queue_geocodes(t, d, np.array(xs), np.array(ys), "兴趣点",
                    [f"济南市{lat.district_name}{nm}" for nm in names], [None] * n, [None] * n,
                    [None] * n, names)  # fmt: skip


def _queue_geocodes(t, d: District, x, y, kind, address, roads, numbers, buildings, pois) -> None:
    """Queue geocode rows with their admin codes and unit grid."""
    grids = d.lattice.grid_codes(x, y)
    keep = [i for i, g in enumerate(grids) if g is not None]
    ewkb = points_ewkb(x[keep], y[keep])
    dc = d.lattice.district_code
    t.add("geocode", ("address", "kind", "road_name", "door_number", "building", "poi_name",
                      "district_code", "street_code", "community_code", "grid_code", "geom"),
          [(address[i], kind, roads[i], numbers[i], buildings[i], pois[i], dc, grids[i][:9],
            grids[i][:12], grids[i], g) for i, g in zip(keep, ewkb, strict=True)])  # fmt: skip


def add_sanitation(t: Tables, d: District, placed: Placed, rng) -> None:
    """Toilets (3–6 per km2), bins, collection points, transfer stations, one treatment plant."""
    lat = d.lattice
    cells = list(lat.cells.values())
    rows = []
    for n, cell in enumerate(cells):
        if rng.random() < 0.045:
            p = cell.geom.representative_point()
            rows.append((f"HC{cell.code}", f"{cell.code[-3:]}号公厕", catalog.SANITATION_KINDS[0], 12.0, "蹲位",
                         "06:00-22:00", p.x, p.y))  # fmt: skip
        if n % 32 == 0:
            p = cell.geom.centroid
            rows.append((f"SJ{cell.code}", "垃圾收集点", "垃圾收集点", 4.0, "桶", "05:00-21:00",
                         p.x + 10, p.y))  # fmt: skip
    for street in sorted(set(lat.streets.values())):
        cell = next(c for c in cells if c.code.startswith(street))
        p = cell.geom.representative_point()
        rows.append((f"ZZ{street}", "垃圾中转站", "垃圾中转站", 150.0, "吨/日", "全天", p.x, p.y))
    if lat.district_code == "370102":
        p = cells[-1].geom.representative_point()
        rows.append(("CL370102", "生活垃圾处理厂", "垃圾处理厂", 2000.0, "吨/日", "全天", p.x, p.y))
    for _id, x, y, code, _status in placed.of_district("0305", lat.district_code)[::2]:
        rows.append((f"LT{code}", "果皮箱", "垃圾箱", 0.12, "立方米", None, x, y))
    x = np.array([r[-2] for r in rows])
    y = np.array([r[-1] for r in rows])
    t.add("sanitation_facility", ("code", "name", "kind", "capacity", "capacity_unit",
                                  "opening_hours", "geom"),
          [(*r[:-2], g) for r, g in zip(rows, points_ewkb(x, y), strict=True)])  # fmt: skip


PROFILES = ("office", "residential", "commercial", "hospital")


def occupancy_profile(kind: str, hours: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Expected share of spaces in use by hour of day for a lot kind."""
    day = (hours >= 8) & (hours < 19)
    evening = (hours >= 17) & (hours < 22)
    night = (hours >= 20) | (hours < 7)
    if kind == "office":
        return np.where(weekend, 0.15 + 0.15 * day, 0.1 + 0.8 * day)
    if kind == "residential":
        return 0.45 + 0.45 * night - 0.1 * (day & ~weekend)
    if kind == "commercial":
        base = 0.1 + 0.55 * ((hours >= 10) & (hours < 22)) + 0.2 * evening
        return np.where(weekend, base * 1.3, base)
    return 0.2 + 0.75 * day  # hospital


def add_parking(t: Tables, d: District, placed: Placed, rng, start: datetime, days: int,
                first_id: int) -> int:  # fmt: skip
    """Parking lots (~5 per km2) and 15-minute occupancy readings; some lots chronically full."""
    cells = list(d.lattice.cells.values())
    n = max(4, int(sum(c.geom.area for c in cells) / 1e6 * 5))
    picks = rng.choice(len(cells), size=n, replace=False)
    steps = np.arange(days * 96)
    times = [start + timedelta(minutes=15 * int(s)) for s in steps]
    hours = (steps % 96) / 4.0
    weekend = np.array([tm.weekday() >= 5 for tm in times])
    lots, readings = [], []
    for k, idx in enumerate(picks):
        lot_id = first_id + k
        cell = cells[idx]
        p = cell.geom.representative_point()
        cap = int(np.clip(rng.lognormal(4.6, 0.7), 20, 1200))
        kind = str(rng.choice(PROFILES, p=[0.3, 0.35, 0.25, 0.1]))
        full = rng.random() < 0.12
        lot_type = str(rng.choice(LOT_TYPES, p=[0.45, 0.3, 0.1, 0.15]))
        fee = float(rng.choice([2.0, 3.0, 5.0, 8.0]))
        lots.append((lot_id, f"TC{cell.code}", f"{cell.code[-3:]}号停车场", cap, lot_type,
                     f"首小时{fee:g}元", fee, p.x, p.y))  # fmt: skip
        share = occupancy_profile(kind, hours, weekend) * (1.35 if full else rng.uniform(0.7, 1.0))
        share = np.clip(share + rng.normal(0, 0.05, len(steps)), 0, 1)
        occ = np.round(share * cap).astype(int)
        readings.extend(zip([lot_id] * len(times), times, occ.tolist(), strict=True))
    x = np.array([lt[-2] for lt in lots])
    y = np.array([lt[-1] for lt in lots])
    t.add("parking_lot", ("id", "code", "name", "capacity", "lot_type", "fee", "fee_per_hour",
                          "geom"),
          [(*lt[:-2], g) for lt, g in zip(lots, points_ewkb(x, y), strict=True)])  # fmt: skip
    t.add("parking_occupancy", ("lot_id", "observed_at", "occupied"), readings)
    return first_id + n


def add_cameras(t: Tables, d: District, rng) -> None:
    """Cameras at main-road crossings, looking along a road; about 5% offline."""
    verticals = [r for r in d.roads if r.vertical and r.road_class in ("主干路", "次干路")]
    horizontals = [r for r in d.roads if not r.vertical and r.road_class in ("主干路", "次干路")]
    xs, ys, rows = [], [], []
    for v in verticals:
        for h in horizontals:
            if "主干路" not in (v.road_class, h.road_class) or rng.random() < 0.3:
                continue
            x, y = v.position + 12, h.position + 12
            xs.append(x)
            ys.append(y)
            direction = float((rng.choice([0, 90, 180, 270]) + rng.normal(0, 8)) % 360)
            rows.append((f"{v.name}与{h.name}路口", direction, float(rng.uniform(60, 90)),
                         float(rng.uniform(80, 150)), bool(rng.random() > 0.05)))  # fmt: skip
    if not rows:
        return
    x, y = np.array(xs), np.array(ys)
    grids = d.lattice.grid_codes(x, y)
    codes = [f"SX{g or d.lattice.district_code}{i:04d}" for i, g in enumerate(grids)]
    t.add("camera", ("code", "name", "direction_deg", "fov_deg", "range_m", "online",
                     "stream_url", "geom"),
          [(c, *r, f"rtsp://video.onemap.local/live/{c}", g)
           for c, r, g in zip(codes, rows, points_ewkb(x, y), strict=True)])  # fmt: skip


def demo_start(year_end: datetime, days: int) -> datetime:
    """Start of the occupancy window ending at `year_end`."""
    return (year_end - timedelta(days=days)).astimezone(CST)
