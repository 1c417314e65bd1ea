"""The fixed tile list of the benchmarks: sampled where the data is, weighted by object density.

For each layer the objects (points; a point on the surface of lines and polygons) are counted per
z17 tile once in PostGIS and rolled up in Python to every zoom of the list (`x >> k`). Per layer
and zoom, `per_zoom` distinct tiles are drawn without replacement with a probability proportional
to their object count (Efraimidis–Spirakis keys from a seeded generator), the densest tile always
included. Where fewer tiles hold data than asked for (a city covers a handful of z10 tiles), every
tile with data is taken and the list is filled with the rings of tiles around them (the tiles a
map view at that place also requests), nearest ring first.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, text

from geodata.areas import in_areas
from geodata.catalog import WEB_MERCATOR_HALF, WEB_MERCATOR_SRID
from layers.registry import REGISTRY

ZOOMS = range(10, 18)
FINEST = 17
BANDS = ((10, 11), (12, 13), (14, 15), (16, 17))
TILE_LAYERS = ("component_01", "case", "unit_grid")


@dataclass(frozen=True, order=True)
class TileAddr:
    """One tile request of the list, with the number of the layer's objects in it."""

    layer: str
    z: int
    x: int
    y: int
    objects: int = 0

    @property
    def path(self) -> str:
        """The URL path of the tile on our server."""
        return f"/tiles/{self.layer}/{self.z}/{self.x}/{self.y}.pbf"

    @property
    def key(self) -> tuple[str, int, int, int]:
        """The tile's address without its count."""
        return (self.layer, self.z, self.x, self.y)


def band_of(z: int) -> str:
    """The zoom band of a zoom, e.g. 'z10–11'."""
    low, high = next(b for b in BANDS if b[0] <= z <= b[1])
    return f"z{low}–{high}"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """XYZ tile containing a lon/lat point."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def density_sql(layer_id: str, scoped: bool) -> str:
    """Objects of a layer per z17 tile (x, y, count); `scoped`: only inside the areas :codes."""
    layer = REGISTRY[layer_id]
    geom = "t.geom" if layer.geometry == "point" else "ST_PointOnSurface(t.geom)"
    where = [w for w in (layer.where, in_areas("t.geom", "codes") if scoped else "") if w]
    size = 2 * WEB_MERCATOR_HALF / 2**FINEST
    return f"""SELECT floor((ST_X(p) + {WEB_MERCATOR_HALF}) / {size})::int AS x,
                      floor(({WEB_MERCATOR_HALF} - ST_Y(p)) / {size})::int AS y, count(*) AS n
               FROM (SELECT ST_Transform({geom}, {WEB_MERCATOR_SRID}) AS p
                     FROM {layer.source} t {"WHERE " + " AND ".join(where) if where else ""}) s
               WHERE p IS NOT NULL GROUP BY 1, 2"""


def densities(conn: Connection, layer_id: str, codes: tuple[str, ...] = ()) -> Counter:
    """{(x, y): objects} of the layer at z17 (inside `codes` when given)."""
    rows = conn.execute(text(density_sql(layer_id, bool(codes))), {"codes": list(codes)})
    return Counter({(x, y): n for x, y, n in rows})


def roll_up(fine: Counter, z: int) -> Counter:
    """The z17 counts summed into the tiles of zoom z."""
    shift = FINEST - z
    out: Counter = Counter()
    for (x, y), n in fine.items():
        out[(x >> shift, y >> shift)] += n
    return out


def weighted_pick(counts: Counter, k: int, rng: random.Random) -> list[tuple[int, int]]:
    """k tiles without replacement, probability ∝ count; the densest always among them."""
    ordered = sorted(counts)  # a fixed order, so the seed alone decides
    densest = max(ordered, key=lambda t: (counts[t], t))
    keys = sorted(((rng.random() ** (1.0 / counts[t]), t) for t in ordered), reverse=True)
    picked = [densest] + [t for _, t in keys if t != densest]
    return picked[:k]


def ring_fill(counts: Counter, z: int, k: int) -> list[tuple[int, int]]:
    """Tiles around the data, nearest ring first (in a fixed order), until k in all."""
    have = set(counts)
    out: list[tuple[int, int]] = []
    limit = 2**z
    for r in range(1, 64):
        ring = sorted({(x + dx, y + dy) for x, y in have for dx in range(-r, r + 1)
                       for dy in range(-r, r + 1)} - have - set(out))  # fmt: skip
        out += [(x, y) for x, y in ring if 0 <= x < limit and 0 <= y < limit]
        if len(have) + len(out) >= k:
            break
    return out[: k - len(have)]


def pick_zoom(fine: Counter, z: int, k: int, rng: random.Random) -> list[tuple[tuple, int]]:
    """((x, y), objects) of the k tiles of zoom z in the list."""
    counts = roll_up(fine, z)
    if not counts:
        return []
    tiles = weighted_pick(counts, k, rng) if len(counts) >= k else sorted(counts)
    tiles += ring_fill(counts, z, k) if len(counts) < k else []
    return [(t, counts.get(t, 0)) for t in tiles]


def tile_list(conn: Connection, seed: int = 1, per_zoom: int = 15,
              layers: tuple[str, ...] = TILE_LAYERS, codes: tuple[str, ...] = ()) -> list[TileAddr]:  # fmt: skip
    """The seeded list: `per_zoom` tiles per layer and zoom from its min zoom (z10–z17)."""
    rng = random.Random(seed)
    tiles = []
    for layer_id in layers:
        fine = densities(conn, layer_id, codes)
        for z in ZOOMS:
            if REGISTRY[layer_id].min_zoom <= z <= REGISTRY[layer_id].max_zoom:
                tiles += [TileAddr(layer_id, z, x, y, n)
                          for (x, y), n in pick_zoom(fine, z, per_zoom, rng)]  # fmt: skip
    return tiles


def busiest_district(conn: Connection) -> str:
    """The district holding the most cases (the scoped user's area)."""
    sql = ("SELECT left(grid_code, 6) FROM case_record WHERE grid_code IS NOT NULL "
           "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")  # fmt: skip
    return conn.execute(text(sql)).scalar()
