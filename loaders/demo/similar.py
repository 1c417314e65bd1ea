"""Planted near-duplicate reports (相似案卷) and the look-alikes that must not match them.

Drawn from their own random stream (`STREAM`) and queued after every other row, so the rest of
the demo city is exactly what it would be without them. Each district gets, in the last 60 hours
of the year (so the cases are still open):

- `PAIRS` near-duplicate pairs: the same event class reported twice, 3–45 m and 10–110 minutes
  apart, in similar words, by an inspector and then a citizen (both open);
- `LOOKALIKES` of each kind, each beside an open anchor case of its own: another major class at
  the same spot within the hour; the same class 300–500 m away within 90 minutes; the same class
  at the same spot 4–6 days earlier (still open); the same class at the same spot reported two
  hours earlier but already closed.

Codes are ordinary case codes whose 7-digit serial is `9GKKKKR`: G the group (1 pair, 2 other
class, 3 far away, 4 days apart, 5 closed), KKKK the number in its group, R 1 for the first
report or the anchor and 2 for the second report or the look-alike. Normal serials stay far below
9,000,000, so `code ~ '9[1-5][0-9]{4}[12]$'` finds exactly these.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from geodata import catalog
from loaders.demo.base import District
from loaders.demo.bulk import Tables, points_ewkb
from loaders.demo.cases import CASE_COLUMNS, DEPARTMENT, EVENT_MIX

STREAM = 1_200_012  # mixed into the seed: issue #12, this stream only
PAIRS = 24
LOOKALIKES = 6
GROUPS = {"pair": 1, "other_class": 2, "far": 3, "days_apart": 4, "closed": 5}
SPACING_M = 250.0  # between planted places: no planted case lies within 100 m of another group
COLUMN_DEFAULTS = {"overdue": False, "rework_count": 0}
INSPECTOR, CITIZEN = catalog.checked(("监督员上报", "公众举报"), catalog.CASE_SOURCES, "sources")
DISPATCHED, REGISTERED, CLOSED = catalog.checked(("已派遣", "已立案", "已结案"),
                                                 catalog.CASE_STATUSES, "statuses")  # fmt: skip
# event class -> two ways people describe the same problem at {place}
WORDINGS = {
    "0102": ("{place}门前有暴露垃圾，堆放多日无人清理", "{place}附近暴露垃圾堆放多日，无人清理"),
    "0505": ("{place}路边机动车乱停放，占用人行道", "{place}门前多辆机动车乱停放占用人行道"),
    "0201": ("{place}电线杆上张贴大量非法小广告", "{place}附近电线杆上贴满非法小广告"),
    "0504": ("{place}商户店外经营，占道摆放货物", "{place}店外经营，货物占道摆放到人行道"),
    "0507": ("{place}人行道上乱堆物堆料影响通行", "{place}门口乱堆物堆料，影响行人通行"),
    "0404": ("{place}下水道堵塞，污水外溢", "{place}路边下水道堵塞，污水外溢到路面"),
}  # fmt: skip


def add_similar_reports(t: Tables, districts: list[District], end: datetime, seed: int) -> None:
    """Queue the planted pairs and look-alikes of every district (after all other cases)."""
    rng = np.random.default_rng([seed, STREAM])
    for d in districts:
        places = Places(d, rng)
        rows = []
        for k in range(1, PAIRS + 1):
            rows += _pair(d, places, k, end, rng)
        for kind in ("other_class", "far", "days_apart", "closed"):
            for k in range(1, LOOKALIKES + 1):
                rows += _lookalike(d, places, kind, k, end, rng)
        x = np.array([r.pop("x") for r in rows])
        y = np.array([r.pop("y") for r in rows])
        geoms = points_ewkb(x, y)
        t.add("case_record", CASE_COLUMNS, [
            tuple(g if c == "geom" else r.get(c, COLUMN_DEFAULTS.get(c)) for c in CASE_COLUMNS)
            for r, g in zip(rows, geoms, strict=True)])  # fmt: skip


class Places:
    """Random places inside the district's unit grids, at least SPACING_M from each other."""

    def __init__(self, d: District, rng):
        self.d, self.rng = d, rng
        self.cells = list(d.lattice.cells.values())
        self.taken: list[tuple[float, float]] = []

    def take(self, near: tuple[float, float] | None = None) -> tuple[float, float]:
        """A new place (300–500 m from `near` when given); the least crowded draw if none is free."""
        best, best_gap = near, -1.0
        for _ in range(400):
            if near is None:
                c = self.cells[int(self.rng.integers(len(self.cells)))].geom.representative_point()
                x, y = c.x + self.rng.uniform(-20, 20), c.y + self.rng.uniform(-20, 20)
            else:
                x, y = self.beside(*near, 300, 500)
            if self.d.lattice.grid_codes(np.array([x]), np.array([y]))[0] is None:
                continue
            gap = min((float(np.hypot(x - a, y - b)) for a, b in self.taken), default=np.inf)
            if gap > best_gap:
                best, best_gap = (x, y), gap
            if gap >= SPACING_M:
                break
        self.taken.append(best)
        return best

    def beside(self, x: float, y: float, low: float, high: float) -> tuple[float, float]:
        """A point low–high metres from (x, y), inside a unit grid (else the place itself)."""
        for _ in range(50):
            angle, r = self.rng.uniform(0, 2 * np.pi), self.rng.uniform(low, high)
            bx, by = x + r * np.cos(angle), y + r * np.sin(angle)
            if self.d.lattice.grid_codes(np.array([bx]), np.array([by]))[0] is not None:
                return bx, by
        return x, y

    def name(self, x: float, y: float) -> str:
        """A door address on the nearest road, as people would name the spot."""
        road = min(self.d.roads, key=lambda r: abs((x if r.vertical else y) - r.position))
        along = y if road.vertical else x
        return f"{road.name}{2 * int(abs(along) % 2000 // 20) + 2}号"


def _pair(d: District, places: Places, k: int, end: datetime, rng) -> list[dict]:
    """Two reports of one problem: 3–45 m and 10–110 minutes apart, in similar words."""
    x, y = places.take()
    cls = _event_class(rng)
    first = end - timedelta(hours=float(rng.uniform(3, 60)))
    bx, by = places.beside(x, y, 3, 45)
    later = first + timedelta(minutes=float(rng.uniform(10, 110)))
    place = places.name(x, y)
    return [
        _case(d, "pair", k, 1, cls, x, y, first, WORDINGS[cls][0], place, DISPATCHED, end, rng),
        _case(d, "pair", k, 2, cls, bx, by, later, WORDINGS[cls][1], place, REGISTERED, end, rng),
    ]  # fmt: skip


def _lookalike(d: District, places: Places, kind: str, k: int, end: datetime, rng) -> list[dict]:
    """An open anchor case and one look-alike of the given kind beside it."""
    x, y = places.take()
    cls = _event_class(rng)
    at = end - timedelta(hours=float(rng.uniform(3, 60)))
    place = places.name(x, y)
    anchor = _case(d, kind, k, 1, cls, x, y, at, WORDINGS[cls][0], place, DISPATCHED, end, rng)
    jx, jy = places.beside(x, y, 1, 15)
    if kind == "other_class":
        other = next(c for c in _shuffled(rng) if c[:2] != cls[:2])
        look = _case(d, kind, k, 2, other, jx, jy,
                     at + timedelta(minutes=float(rng.uniform(-60, 60))), WORDINGS[other][0],
                     place, DISPATCHED, end, rng)  # fmt: skip
    elif kind == "far":
        fx, fy = places.take(near=(x, y))
        look = _case(d, kind, k, 2, cls, fx, fy, at + timedelta(minutes=float(rng.uniform(-90, 90))),
                     WORDINGS[cls][1], places.name(fx, fy), DISPATCHED, end, rng)  # fmt: skip
    elif kind == "days_apart":
        look = _case(d, kind, k, 2, cls, jx, jy,
                     at - timedelta(days=float(rng.uniform(4, 6))), WORDINGS[cls][1], place,
                     DISPATCHED, end, rng)  # fmt: skip
    else:
        look = _case(d, kind, k, 2, cls, jx, jy, at - timedelta(hours=2),
                     WORDINGS[cls][1], place, CLOSED, end, rng)  # fmt: skip
    return [anchor, look]


def _event_class(rng) -> str:
    """One of the classes with planted wordings."""
    return str(rng.choice(list(WORDINGS)))


def _shuffled(rng) -> list[str]:
    """The worded classes in random order."""
    return [str(c) for c in rng.permutation(list(WORDINGS))]


def _case(d: District, group: str, k: int, r: int, cls: str, x: float, y: float,
          reported: datetime, wording: str, place: str, status: str, end: datetime,
          rng) -> dict:  # fmt: skip
    """One planted event case with stage times fitting its status."""
    hours = EVENT_MIX.get(cls, (0, 48))[1]
    steps = {DISPATCHED: 2, REGISTERED: 1, CLOSED: 5}[status]
    stages, t = [reported], reported
    for gap in (0.3, 0.5, 0.5, 0.3, 0.2)[:steps]:
        t += timedelta(hours=gap * float(rng.uniform(0.5, 1.5)))
        stages.append(t)
    stages += [None] * (6 - len(stages))
    deadline = reported + timedelta(hours=hours)
    grid = d.lattice.grid_codes(np.array([x]), np.array([y]))[0]
    return {
        "code": f"{d.lattice.district_code}{reported:%Y%m%d}9{GROUPS[group]}{k:04d}{r}",
        "kind": "事件", "event_class_code": cls, "source": INSPECTOR if r == 1 else CITIZEN,
        "description": wording.format(place=place), "grid_code": grid,
        **dict(zip(catalog.CASE_STAGES, stages, strict=True)), "deadline": deadline,
        "department": DEPARTMENT.get(cls[:2], "城市管理行政执法局"), "status": status,
        "overdue": (stages[3] or end) > deadline, "x": x, "y": y,
    }  # fmt: skip
