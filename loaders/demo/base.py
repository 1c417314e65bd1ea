"""Demo base layers of one district: admin areas, unit grids, roads, land parcels and green space."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, box

from loaders.demo.bulk import Tables, geom_ewkb
from loaders.demo.lattice import Lattice, as_multipolygon, line_class
from loaders.demo.names import NamePool, road_name

ROAD_WIDTH = {"主干路": 40.0, "次干路": 24.0, "支路": 14.0, "街巷": 7.0}
LAND_USE_WEIGHTS = {"R": 0.58, "B": 0.14, "A": 0.10, "M": 0.05, "W": 0.03, "U": 0.03, "S": 0.07}
# Parks per km2 by size class; 1 - exp(-(1.0*pi*0.5^2 + 2*pi*0.3^2)) ~ 74% of homes within reach.
PARK_DENSITY = {"large": 1.0, "medium": 2.0, "pocket": 3.0}


@dataclass
class Road:
    """A named road line of the lattice (metric)."""

    name: str
    road_class: str
    vertical: bool
    position: float
    segments: list[tuple[float, float]]  # clipped extents along the line


@dataclass
class District:
    """Everything later steps need to know about a generated district."""

    lattice: Lattice
    roads: list[Road] = field(default_factory=list)
    parcel_use: dict[tuple[int, int], str] = field(default_factory=dict)
    historic_centre: tuple[float, float] = (0.0, 0.0)
    parks: list = field(default_factory=list)


def add_admin_and_grids(t: Tables, lat: Lattice) -> None:
    """Streets, communities (unions of their cells) and unit grids."""
    members: dict[str, list] = {}
    for cell in lat.cells.values():
        members.setdefault(cell.code[:12], []).append(cell.geom)
    community_geoms = {code: shapely.union_all(parts) for code, parts in members.items()}
    street_parts: dict[str, list] = {}
    for code, geom in community_geoms.items():
        street_parts.setdefault(code[:9], []).append(geom)
    pool = NamePool(np.random.default_rng(int(lat.district_code)))
    cols = ("code", "level", "name", "parent_code", "geom")
    streets = sorted(street_parts)
    t.add("admin_area", cols, zip(
        streets, ["street"] * len(streets), [pool.take("街道") for _ in streets],
        [lat.district_code] * len(streets),
        geom_ewkb([_multi(shapely.union_all(street_parts[s])) for s in streets]), strict=True))  # fmt: skip
    comms = sorted(community_geoms)
    t.add("admin_area", cols, zip(
        comms, ["community"] * len(comms), [pool.take("社区") for _ in comms],
        [c[:9] for c in comms], geom_ewkb([_multi(community_geoms[c]) for c in comms]),
        strict=True))  # fmt: skip
    cells = sorted(lat.cells.values(), key=lambda c: c.code)
    t.add("unit_grid", ("code", "community_code", "start_date", "responsible_unit", "geom"), zip(
        [c.code for c in cells], [c.code[:12] for c in cells], ["2020-01-01"] * len(cells),
        [f"{lat.district_name}城市管理局"] * len(cells), geom_ewkb([c.geom for c in cells]),
        strict=True))  # fmt: skip


def _multi(geom):
    """Union result as a MultiPolygon."""
    return as_multipolygon(geom)


def build_roads(lat: Lattice, rng: np.random.Generator) -> list[Road]:
    """Road lines of the lattice clipped to the district, with names."""
    pool = NamePool(rng)
    roads = []
    for vertical, positions, (lo, hi) in (
        (True, lat.xs, (lat.ys[0], lat.ys[-1])),
        (False, lat.ys, (lat.xs[0], lat.xs[-1])),
    ):
        for i, pos in enumerate(positions):
            cls = line_class(i)
            if cls is None:
                continue
            line = LineString([(pos, lo), (pos, hi)] if vertical else [(lo, pos), (hi, pos)])
            segments = _clip_extents(line.intersection(lat.boundary), vertical)
            if segments:
                roads.append(Road(road_name(pool, cls, vertical, i), cls, vertical, pos, segments))
    return roads


def _clip_extents(geom, vertical: bool) -> list[tuple[float, float]]:
    """(start, end) along the line of each clipped part longer than 30 m."""
    out = []
    for part in shapely.get_parts(geom):
        if part.geom_type != "LineString" or part.length < 30:
            continue
        coords = np.asarray(part.coords)[:, 1 if vertical else 0]
        out.append((float(coords.min()), float(coords.max())))
    return out


def road_geometry(road: Road) -> MultiLineString:
    """The clipped road as a metric MultiLineString."""
    p = road.position
    return MultiLineString([
        [(p, a), (p, b)] if road.vertical else [(a, p), (b, p)] for a, b in road.segments
    ])  # fmt: skip


def add_roads(t: Tables, roads: list[Road]) -> None:
    """Queue road centrelines."""
    t.add("road", ("name", "road_class", "width_m", "geom"), zip(
        [r.name for r in roads], [r.road_class for r in roads],
        [ROAD_WIDTH[r.road_class] for r in roads], geom_ewkb([road_geometry(r) for r in roads]),
        strict=True))  # fmt: skip


def assign_land_use(d: District, rng: np.random.Generator) -> None:
    """Land use per 2 x 2 block of cells; the historic quarter is residential and commercial."""
    uses, weights = zip(*LAND_USE_WEIGHTS.items(), strict=True)
    p = np.array(weights) / sum(weights)
    blocks: dict[tuple[int, int], str] = {}
    for key in d.lattice.cells:
        block = (key[0] // 2, key[1] // 2)
        if block not in blocks:
            blocks[block] = str(rng.choice(uses, p=p))
        d.parcel_use[key] = blocks[block]


def place_parks(d: District, rng: np.random.Generator) -> None:
    """Large parks take whole cells, medium and pocket parks a corner of a residential cell."""
    cells = list(d.lattice.cells.values())
    area_km2 = sum(c.geom.area for c in cells) / 1e6
    order = rng.permutation(len(cells))
    cursor = 0
    for size, density in PARK_DENSITY.items():
        n = max(1, round(area_km2 * density))
        for idx in order[cursor : cursor + n]:
            cell = cells[idx]
            d.parks.append((size, cell, _park_shape(size, cell, rng)))
        cursor += n
    for size, cell, _ in d.parks:
        if size == "large":
            d.parcel_use[(cell.ix, cell.iy)] = "G"


def _park_shape(size: str, cell, rng: np.random.Generator):
    """Park polygon inside a cell: the whole cell (large) or a rectangle in its corner."""
    inner = cell.geom.buffer(-6.0)
    if size == "large" or inner.is_empty:
        return inner if not inner.is_empty else cell.geom
    minx, miny, _, _ = inner.bounds
    w, h = (rng.uniform(50, 70), rng.uniform(45, 65)) if size == "medium" else (
        rng.uniform(25, 40), rng.uniform(25, 40))  # fmt: skip
    return inner.intersection(box(minx, miny, minx + w, miny + h))


def add_parcels_and_green(t: Tables, d: District, rng: np.random.Generator) -> None:
    """Land parcels (cell minus road margin and parks) and the green spaces."""
    park_by_cell = {(c.ix, c.iy): g for s, c, g in d.parks if s != "large"}
    codes, uses, pops, geoms = [], [], [], []
    for key, cell in d.lattice.cells.items():
        use = d.parcel_use[key]
        if use == "G":
            continue
        parcel = cell.geom.buffer(-6.0)
        if key in park_by_cell:
            parcel = parcel.difference(park_by_cell[key])
        multi = _multi(parcel)
        if multi is None or multi.area < 200:
            continue
        codes.append(f"P{cell.code}")
        uses.append(use)
        pops.append(int(multi.area * rng.uniform(0.02, 0.045)) if use == "R" else None)
        geoms.append(multi)
    t.add("land_parcel", ("code", "land_use", "population", "geom"),
          zip(codes, uses, pops, geom_ewkb(geoms), strict=True))  # fmt: skip
    _add_green(t, d, rng)


def _add_green(t: Tables, d: District, rng: np.random.Generator) -> None:
    """Queue the parks with kind, historic flag and entrances."""
    pool = NamePool(rng)
    hx, hy = d.historic_centre
    kinds = {"large": "G11", "medium": "G12", "pocket": "G14"}
    suffix = {"large": "公园", "medium": "社区公园", "pocket": "游园"}
    rows, geoms, entrances = [], [], []
    for n, (size, cell, geom) in enumerate(d.parks, 1):
        multi = _multi(geom)
        if multi is None:
            continue
        c = multi.centroid
        historic = (c.x - hx) ** 2 + (c.y - hy) ** 2 < 700.0**2
        rows.append((f"G{cell.code}{n:04d}", pool.take(suffix[size]), kinds[size], historic))
        geoms.append(multi)
        entrances.append(shapely.multipoints(shapely.get_coordinates(multi.envelope)[:4:2]))
    ewkb, ent = geom_ewkb(geoms), geom_ewkb(entrances)
    t.add("green_space", ("code", "name", "kind", "historic_district", "geom", "entrances"),
          [(*r, g, e) for r, g, e in zip(rows, ewkb, ent, strict=True)])  # fmt: skip
