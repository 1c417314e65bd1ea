"""The street lattice of one demo district: road lines, unit-grid cells, communities and streets.

Work happens in the CGCS2000 3-degree Gauss-Krüger zone of Jinan (EPSG:4548, metres); the lattice is
axis-aligned there. Every 8th line is a main road (主干路), every 4th a secondary road (次干路),
every 2nd a branch road (支路), odd lines are lanes (街巷) or walls. A community (社区) is the block
between main roads (8 x 8 cells), a street (街道) 3 x 3 communities. Cells are clipped to the real
district boundary, so unit grids tile their community exactly (the community is their union).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, box

METRIC_SRID = 4548  # CGCS2000 / 3-degree Gauss-Kruger CM 117E (Jinan)
TO_METRIC = Transformer.from_crs(4490, METRIC_SRID, always_xy=True)
TO_GEO = Transformer.from_crs(METRIC_SRID, 4490, always_xy=True)
CELLS_PER_COMMUNITY = 8
COMMUNITIES_PER_STREET = 3
MIN_CELL_AREA = 300.0  # m2: slivers along the district edge smaller than this are dropped


def line_class(i: int) -> str | None:
    """Road class of lattice line i (None: a wall, not a road)."""
    if i % 8 == 0:
        return "主干路"
    if i % 4 == 0:
        return "次干路"
    if i % 2 == 0:
        return "支路"
    return "街巷" if i % 4 == 1 else None


@dataclass
class Cell:
    """One unit grid (单元网格) of the lattice."""

    ix: int
    iy: int
    geom: MultiPolygon
    community: tuple[int, int]
    code: str = ""


@dataclass
class Lattice:
    """Road lines and cells of one district in metric coordinates."""

    district_code: str
    district_name: str
    boundary: Polygon | MultiPolygon
    xs: np.ndarray
    ys: np.ndarray
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    communities: dict[tuple[int, int], str] = field(default_factory=dict)
    streets: dict[tuple[int, int], str] = field(default_factory=dict)

    def cell_index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lattice cell indices of metric points (north row = iy 0)."""
        ix = np.searchsorted(self.xs, x, side="right") - 1
        iy = len(self.ys) - 1 - np.searchsorted(self.ys, y, side="right")
        return ix, iy

    def grid_codes(self, x: np.ndarray, y: np.ndarray) -> list[str | None]:
        """Unit-grid code of each metric point (None outside every cell)."""
        ix, iy = self.cell_index(x, y)
        cells = self.cells
        return [
            cells[(a, b)].code if (a, b) in cells else None
            for a, b in zip(ix.tolist(), iy.tolist(), strict=True)
        ]


def to_metric(geom):
    """EPSG:4490 geometry to the metric plane."""
    return shapely.transform(geom, lambda xy: np.column_stack(TO_METRIC.transform(*xy.T)))


def to_geo(geom):
    """Metric geometry back to EPSG:4490."""
    return shapely.transform(geom, lambda xy: np.column_stack(TO_GEO.transform(*xy.T)))


def spaced_lines(lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """Line positions from lo to beyond hi with 80–110 m spacing."""
    steps = rng.uniform(80.0, 110.0, size=int((hi - lo) / 80.0) + 2)
    return lo + np.concatenate([[0.0], np.cumsum(steps)])


def as_multipolygon(geom) -> MultiPolygon | None:
    """Polygonal part of a geometry as a MultiPolygon (None when empty)."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    return MultiPolygon(parts) if parts else None


def build_lattice(code: str, name: str, boundary, rng: np.random.Generator) -> Lattice:
    """Lay the lattice over a metric district boundary and cut the cells."""
    minx, miny, maxx, maxy = boundary.bounds
    lat = Lattice(
        code, name, boundary, spaced_lines(minx, maxx, rng), spaced_lines(miny, maxy, rng)
    )
    _cut_cells(lat)
    _number_areas(lat)
    return lat


def _cut_cells(lat: Lattice) -> None:
    """Create the cells inside the boundary (clipped at the edge)."""
    ny = len(lat.ys) - 1
    boxes, keys = [], []
    for iy in range(ny):
        top, bottom = lat.ys[ny - iy], lat.ys[ny - iy - 1]
        for ix in range(len(lat.xs) - 1):
            boxes.append(box(lat.xs[ix], bottom, lat.xs[ix + 1], top))
            keys.append((ix, iy))
    boxes = np.array(boxes, dtype=object)
    shapely.prepare(lat.boundary)
    inside = shapely.contains(lat.boundary, boxes)
    touching = shapely.intersects(lat.boundary, boxes)
    for key, cell_box, full, hit in zip(keys, boxes, inside, touching, strict=True):
        if not hit:
            continue
        geom = cell_box if full else shapely.intersection(cell_box, lat.boundary)
        multi = as_multipolygon(geom)
        if multi is None or multi.area < MIN_CELL_AREA:
            continue
        community = (key[0] // CELLS_PER_COMMUNITY, key[1] // CELLS_PER_COMMUNITY)
        lat.cells[key] = Cell(key[0], key[1], multi, community)


def _number_areas(lat: Lattice) -> None:
    """Give streets, communities and grids their codes, west→east, north→south."""
    communities = sorted({c.community for c in lat.cells.values()}, key=lambda k: (k[1], k[0]))
    street_keys = sorted(
        {(cx // COMMUNITIES_PER_STREET, cy // COMMUNITIES_PER_STREET) for cx, cy in communities},
        key=lambda k: (k[1], k[0]),
    )
    lat.streets = {k: f"{lat.district_code}{n:03d}" for n, k in enumerate(street_keys, 1)}
    seq_in_street: dict[str, int] = {}
    for cx, cy in communities:
        street = lat.streets[(cx // COMMUNITIES_PER_STREET, cy // COMMUNITIES_PER_STREET)]
        seq_in_street[street] = seq_in_street.get(street, 0) + 1
        lat.communities[(cx, cy)] = f"{street}{seq_in_street[street]:03d}"
    seq_in_community: dict[str, int] = {}
    for key in sorted(lat.cells, key=lambda k: (k[1], k[0])):
        cell = lat.cells[key]
        community = lat.communities[cell.community]
        seq_in_community[community] = seq_in_community.get(community, 0) + 1
        cell.code = f"{community}{seq_in_community[community]:03d}"
