"""Demo cases (案件) over a year, sensors and alarms.

Cases cluster around hot places (markets, schools, building sites), recur at fixed places, include
near-duplicate reports (same class, < 30 m, < 2 h apart), and carry every stage timestamp with a
class-specific deadline, so a realistic share ends overdue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from geodata import catalog
from loaders.demo.assets import Placed
from loaders.demo.base import District
from loaders.demo.bulk import Tables, points_ewkb

# event class -> (weight, deadline hours)
EVENT_MIX = {
    "0505": (15, 24), "0102": (12, 24), "0504": (10, 48), "0201": (10, 48), "0501": (8, 24),
    "0507": (8, 48), "0104": (6, 24), "0103": (4, 48), "0302": (4, 72), "0510": (3, 12),
    "0106": (3, 48), "0107": (2, 120), "0406": (2, 12), "0404": (3, 72), "0301": (2, 72),
    "0401": (1, 24),
}  # fmt: skip
COMPONENT_DEADLINE_H = 72
SOURCES = catalog.checked(
    ("监督员上报", "公众举报", "视频智能识别", "物联感知", "上级交办"),
    catalog.CASE_SOURCES,
    "case sources",
)  # order fixes the seeded draws
SOURCE_P = (0.55, 0.25, 0.12, 0.05, 0.03)
DEPARTMENT = {"01": "城市管理局环卫处", "02": "城市管理行政执法局", "03": "住房和城乡建设局",
              "04": "市政公用事业局", "05": "城市管理行政执法局"}  # fmt: skip
CASE_COLUMNS = ("code", "kind", "event_class_code", "component_class_code", "source",
                "description", "grid_code", "component_id", "reported_at", "registered_at",
                "dispatched_at", "handled_at", "verified_at", "closed_at", "deadline",
                "department", "status", "overdue", "rework_count", "geom")  # fmt: skip
# Share of verified cases the 核查 sent back to 处置 at least once, by department; of those, a
# fifth were sent back twice. Drawn from a child stream, so every other demo value is unchanged.
REWORK_P = {"城市管理局环卫处": 0.03, "城市管理行政执法局": 0.05, "住房和城乡建设局": 0.10,
            "市政公用事业局": 0.07}  # fmt: skip
REWORK_TWICE = 0.2


def case_locations(d: District, placed: Placed, n: int, rng) -> tuple[np.ndarray, ...]:
    """n case positions: 40% near hot places, 10% at recurring spots, the rest spread out."""
    cells = list(d.lattice.cells.values())
    hot = np.array([(x, y) for x, y, _ in placed.hotspots]) if placed.hotspots else None
    n_hot = int(0.4 * n) if hot is not None else 0
    n_rec = int(0.1 * n)
    recurring = np.array([cells[i].geom.representative_point().coords[0]
                          for i in rng.choice(len(cells), size=max(3, len(cells) // 60))])  # fmt: skip
    heat = 1.0 / np.arange(1, len(hot) + 1) if n_hot else None  # a few places are much hotter
    h = hot[rng.choice(len(hot), n_hot, p=heat / heat.sum())] + rng.normal(0, 40, (n_hot, 2)) if n_hot else (
        np.empty((0, 2)))  # fmt: skip
    r = recurring[rng.integers(0, len(recurring), n_rec)] + rng.normal(0, 3, (n_rec, 2))
    spread = np.array([cells[i].geom.representative_point().coords[0]
                       for i in rng.integers(0, len(cells), n - n_hot - n_rec)])  # fmt: skip
    spread = spread + rng.uniform(-40, 40, spread.shape)
    pts = np.vstack([h, r, spread])
    recurring_class = np.concatenate([np.zeros(n_hot, bool), np.ones(n_rec, bool),
                                      np.zeros(len(spread), bool)])  # fmt: skip
    return pts[:, 0], pts[:, 1], recurring_class


def report_times(n: int, start: datetime, rng) -> np.ndarray:
    """Report times over a year: more in summer, mostly 7:00–21:00 (seconds since start)."""
    day = rng.integers(0, 365, n)
    summer = rng.random(n) < 0.25
    day = np.where(summer, rng.integers(150, 245, n), day)
    secs = day * 86400 + rng.normal(13.5, 3.5, n).clip(6, 22.9) * 3600
    return np.sort(secs.astype(np.int64))


def add_cases(t: Tables, d: District, placed: Placed, n: int, start: datetime, end: datetime,
              rng, serial0: int) -> int:  # fmt: skip
    """Queue n cases in the district; returns the next serial."""
    x, y, recurring = case_locations(d, placed, n, rng)
    grids = d.lattice.grid_codes(x, y)
    keep = np.array([g is not None for g in grids])
    x, y, recurring = x[keep], y[keep], recurring[keep]
    grids = [g for g in grids if g is not None]
    n = len(x)
    secs = rng.permutation(report_times(n, start, rng))
    classes = _case_classes(n, recurring, rng)
    rows = []
    broken = [c for cls in ("0103", "0102", "0118", "0305")
              for c in placed.of_district(cls, d.lattice.district_code) if c[4] != "完好"]  # fmt: skip
    for i in range(n):
        reported = start + timedelta(seconds=int(secs[i]))
        comp = broken[int(rng.integers(len(broken)))] if classes[i] == "C" and broken else None
        rows.append(_case_row(d, serial0 + i, classes[i], comp, reported, end, grids[i], rng))
    for i, row in enumerate(rows):
        if row[7] is not None:  # a component case sits at its component, in its grid
            x[i], y[i] = row[-1]
            grid = d.lattice.grid_codes(x[i : i + 1], y[i : i + 1])[0] or row[6]
            rows[i] = (*row[:6], grid, *row[7:])
    rows = _with_rework(rows, rng.spawn(1)[0])
    geoms = points_ewkb(x, y)
    t.add("case_record", CASE_COLUMNS, [(*r[:-1], g) for r, g in zip(rows, geoms, strict=True)])
    _add_duplicates(t, rows, geoms, rng)
    return serial0 + n


def _with_rework(rows: list[tuple], rework_rng) -> list[tuple]:
    """Rows with their 返工次数 (0, 1 or 2) inserted before the last item (the position)."""
    draws = rework_rng.random((len(rows), 2))
    out = []
    for row, (sent_back, twice) in zip(rows, draws, strict=True):
        verified = row[12] is not None  # verified_at: the 核查 took place
        count = 0
        if verified and sent_back < REWORK_P.get(row[15], 0.05):
            count = 2 if twice < REWORK_TWICE else 1
        out.append((*row[:-1], count, row[-1]))
    return out


def _case_classes(n: int, recurring: np.ndarray, rng) -> list[str]:
    """Event class codes, or 'C' for a component case (about 25%)."""
    codes = list(EVENT_MIX)
    weights = np.array([w for w, _ in EVENT_MIX.values()], float)
    out = rng.choice(codes, size=n, p=weights / weights.sum()).astype(object)
    out[rng.random(n) < 0.25] = "C"
    out[recurring] = rng.choice(["0102", "0505", "0507"], size=int(recurring.sum()))
    return out.tolist()


def _case_row(d: District, serial: int, cls: str, comp, reported: datetime, end: datetime,
              grid: str, rng) -> tuple:  # fmt: skip
    """One case row with stage times; component cases link to a damaged component."""
    if cls == "C" and comp is not None:
        comp_class, hours = comp[3][6:10], COMPONENT_DEADLINE_H
        kind, event, component, dept = "部件", None, comp_class, "市政公用事业局"
    else:
        cls = "0102" if cls == "C" else cls
        kind, event, component, hours = "事件", cls, None, EVENT_MIX[cls][1]
        dept = DEPARTMENT.get(cls[:2], "城市管理行政执法局")
    deadline = reported + timedelta(hours=hours)
    stages = _stages(reported, hours, end, rng)
    status = _status(stages, rng)
    if status == "已作废":
        stages = [stages[0], stages[1], None, None, None, None]
    overdue = (stages[3] or end) > deadline and status != "已作废"
    code = f"{d.lattice.district_code}{reported:%Y%m%d}{serial:07d}"
    source = str(rng.choice(SOURCES, p=SOURCE_P))
    what = catalog.EVENT_MINOR.get(event) or catalog.COMPONENT_MINOR.get(component, "")
    description = f"{what}（{'部件问题' if kind == '部件' else '事件'}）"
    return (code, kind, event, component, source, description, grid,
            comp[0] if comp is not None and kind == "部件" else None, *stages, deadline, dept,
            status, bool(overdue), (comp[1], comp[2]) if comp is not None and kind == "部件"
            else None)  # fmt: skip


def _stages(reported: datetime, hours: int, end: datetime, rng) -> list:
    """Registered, dispatched, handled, verified, closed times (None when not yet reached)."""
    gaps_h = [rng.uniform(0.05, 1.0), rng.uniform(0.05, 2.0),
              rng.lognormal(np.log(hours * 0.35), 0.6), rng.uniform(0.5, 6.0),
              rng.uniform(0.2, 4.0)]  # fmt: skip
    out, t = [reported], reported
    for g in gaps_h:
        t = t + timedelta(hours=float(g))
        out.append(t if t <= end else None)
    for i in range(1, len(out)):
        if out[i - 1] is None:
            out[i] = None
    return out


def _status(stages: list, rng) -> str:
    """Status from the last stage reached (about 1% of cases are voided)."""
    if rng.random() < 0.01:
        return catalog.CASE_STATUSES[-1]  # 已作废
    reached = max(i for i, s in enumerate(stages) if s is not None)
    return catalog.CASE_STATUSES[reached]  # one status per stage reached, in order


def _add_duplicates(t: Tables, rows: list, geoms: list, rng) -> None:
    """Near-duplicate reports: about 3% of event cases reported again by someone else."""
    picks = [i for i in rng.choice(len(rows), size=max(1, len(rows) // 33), replace=False)
             if rows[i][1] == "事件"]  # fmt: skip
    dups = []
    for i in picks:
        r = list(rows[i])
        r[0] = r[0] + "D"
        later = timedelta(minutes=float(rng.uniform(5, 110)))
        r[8:14] = [s + later if s is not None else None for s in r[8:14]]
        r[4] = SOURCES[1] if r[4] != SOURCES[1] else SOURCES[0]  # 公众举报 / 监督员上报
        dups.append((*r[:-1], geoms[i]))
    t.add("case_record", CASE_COLUMNS, dups)


LEVEL_SENSOR, COVER_SENSOR = catalog.SENSOR_KINDS[:2]  # 液位, 井盖位移


def add_sensors(t: Tables, wells: list, placed: Placed, end: datetime, rng, first_id: int,
                district: str) -> int:  # fmt: skip
    """Level sensors in wells, displacement sensors on manhole covers, and their alarms."""
    rows = []
    sid = first_id
    for code, x, y in wells[:: max(1, len(wells) // 40)]:
        rows.append((sid, f"CG{code}", LEVEL_SENSOR, "井下液位计", None, None, x, y))
        sid += 1
    for comp_id, x, y, code, _s in placed.of_district("0103", district)[::150]:
        rows.append((sid, f"CG{code}", COVER_SENSOR, "智能井盖", "component", comp_id, x, y))
        sid += 1
    if not rows:
        return sid
    x = np.array([r[-2] for r in rows])
    y = np.array([r[-1] for r in rows])
    t.add("sensor", ("id", "code", "kind", "name", "linked_layer", "linked_id", "geom"),
          [(*r[:-2], g) for r, g in zip(rows, points_ewkb(x, y), strict=True)])  # fmt: skip
    alarms = []
    for r in rows:
        for _ in range(int(rng.poisson(0.4))):
            raised = end - timedelta(hours=float(rng.uniform(0, 24 * 30)))
            state = str(rng.choice(catalog.ALARM_STATES, p=[0.2, 0.2, 0.6]))
            cleared = raised + timedelta(hours=2) if state == catalog.ALARM_STATES[-1] else None
            level = str(rng.choice(catalog.ALARM_LEVELS, p=[0.4, 0.35, 0.2, 0.05]))
            msg = "液位超过警戒值" if r[2] == LEVEL_SENSOR else "井盖位移或开启"
            alarms.append((r[0], raised, level, msg, state, cleared))
    t.add("alarm", ("sensor_id", "raised_at", "level", "message", "state", "cleared_at"), alarms)
    return sid
