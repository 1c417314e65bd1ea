"""Service-radius coverage of residential land (服务半径覆盖率): the engine for parks and facilities.

Everything metric happens in the CGCS2000 3° Gauss-Krüger zone of the analysed area (chosen from
its centroid), never in degrees. Residential land is `land_parcel` with a land use starting with
R, clipped to the area: a parcel split by an area boundary counts in each area by its part, and
its population by the same share of its area. A facility's service zone is its footprint buffered
by its radius; the covered land is the residential land inside the union of the zones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import shapely
import shapely.errors
import shapely.geometry
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from auth.accounts import User
from errors import Forbidden, NotFound
from geodata.catalog import SRID
from geodata.crs import metric_epsg

# The demo and real cities are small next to a GK zone: one zone per analysis is accurate to <0.1 %.
PRECISION_M = 0.001  # overlay grid used only when GEOS fails on exact floating-point input
CHILD_LEVEL = {None: "district", "district": "street", "street": "community"}


@dataclass
class Area:
    """The analysed area in a metric CRS."""

    code: str | None
    name: str
    level: str | None
    srid: int
    geom: BaseGeometry
    children: list[tuple[str, str, BaseGeometry]] = field(default_factory=list)

    @property
    def sql_params(self) -> dict:
        """The area bound as :wkb in :srid, as the area-limited queries take it."""
        return {"wkb": shapely.to_wkb(self.geom), "srid": self.srid}


@dataclass
class Land:
    """Residential land parts inside the area (metric), with each parcel's population and size."""

    ids: np.ndarray
    codes: list
    population: np.ndarray
    parcel_area: np.ndarray
    parts: np.ndarray  # shapely geometries, clipped to the area

    @property
    def part_area(self) -> np.ndarray:
        """Area of each part in m²."""
        return shapely.area(self.parts)

    def people(self, areas: np.ndarray) -> np.ndarray:
        """Population living on the given areas of each parcel (by share of the parcel's area)."""
        share = np.divide(
            areas, self.parcel_area, out=np.zeros_like(areas), where=self.parcel_area > 0
        )
        return self.population * share


def highest_dimension(geoms):
    """Overlay results without their lower-dimension debris (a polygon's touching edge, a point)."""

    def keep(g):
        if shapely.get_type_id(g) != 7:  # not a GeometryCollection
            return g
        parts = shapely.get_parts(g)
        top = shapely.get_dimensions(parts).max() if len(parts) else 2
        kept = parts[shapely.get_dimensions(parts) == top]
        return shapely.union_all(kept) if len(kept) else shapely.Polygon()

    if isinstance(geoms, np.ndarray):
        out = np.array(geoms, dtype=object)
        mixed = np.flatnonzero(shapely.get_type_id(out) == 7)  # only collections need a look
        out[mixed] = [keep(g) for g in out[mixed]]
        return out
    return keep(geoms)


def robust(op, *geoms, **kwargs):
    """A shapely overlay, retried on a millimetre grid when GEOS cannot resolve it exactly."""
    try:
        return op(*geoms, **kwargs)
    except shapely.errors.GEOSException:
        return op(*geoms, grid_size=PRECISION_M, **kwargs)


def intersection(a, b):
    """Intersection without lower-dimension debris."""
    return highest_dimension(robust(shapely.intersection, a, b))


def difference(a, b):
    """Difference without lower-dimension debris."""
    return highest_dimension(robust(shapely.difference, a, b))


def union_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise union without lower-dimension debris."""
    return highest_dimension(robust(shapely.union, a, b))


def union_all(geoms):
    """Union of all the geometries."""
    return robust(shapely.union_all, geoms)


def database(conn: Connection) -> tuple:
    """Which database a connection reads (data versions count per database: memo keys hold it)."""
    url = conn.engine.url
    return (url.host, url.port, url.database)


def allowed(user: User, code: str) -> bool:
    """Whether the user may analyse this area (scoped users: only inside their own areas)."""
    return user.scope is None or any(code.startswith(c) for c in user.scope)


def load_area(conn: Connection, user: User, code: str | None) -> Area:
    """The area to analyse: an administrative area, or everything the user may see."""
    if code is not None and not allowed(user, code):
        raise Forbidden("该区域不在您的管辖范围内")
    if code is not None:
        row = conn.execute(text("SELECT name, level, ST_X(ST_Centroid(geom)) lon FROM admin_area "
                                "WHERE code = :c"), {"c": code}).mappings().first()  # fmt: skip
        if row is None:
            raise NotFound(f"没有代码为 {code} 的行政区划")
        codes, name, level, lon = [code], row["name"], row["level"], row["lon"]
    else:
        codes = list(user.scope) if user.scope else None
        name, level = ("管辖范围" if codes else "全部区域"), None
        lon = conn.execute(text("SELECT ST_X(ST_Centroid(ST_Extent(geom))) FROM admin_area "
                                "WHERE level = 'district'")).scalar()  # fmt: skip
    srid = metric_epsg(lon or 117.0)
    geom = conn.execute(text(
        f"SELECT ST_AsBinary(ST_Transform(ST_Union(geom), :srid)) FROM admin_area WHERE "
        f"{'code = ANY(:codes)' if codes else 'level = :district'}"),
        {"srid": srid, "codes": codes, "district": "district"}).scalar()  # fmt: skip
    if geom is None:
        raise NotFound("没有可分析的区域")
    area = Area(code, name, level, srid, shapely.from_wkb(bytes(geom)))
    area.children = load_children(conn, area, codes)
    return area


def drawn_area(conn: Connection, user: User, polygon: BaseGeometry) -> Area:
    """A polygon drawn on the map (lon/lat) as the area, cut to the user's areas if scoped; its
    sub-areas are the streets it meets, each cut to it."""
    srid = metric_epsg(polygon.centroid.x)
    geom = from_lonlat(polygon, srid)
    if user.scope:
        mine = conn.execute(text("SELECT ST_AsBinary(ST_Transform(ST_Union(geom), :srid)) FROM "
                                 "admin_area WHERE code = ANY(:codes)"),
                            {"srid": srid, "codes": list(user.scope)}).scalar()  # fmt: skip
        geom = intersection(geom, shapely.from_wkb(bytes(mine)))
    if geom.is_empty or geom.area < 1.0:
        raise Forbidden("绘制的范围不在您的管辖范围内")
    rows = conn.execute(text(
        f"SELECT code, name, ST_AsBinary(ST_Transform(geom, :srid)) g FROM admin_area "
        f"WHERE level = 'street' AND ST_Intersects(geom, ST_Transform(ST_GeomFromWKB(:wkb, :srid), {SRID})) "
        f"ORDER BY code"), {"srid": srid, "wkb": shapely.to_wkb(geom)}).all()  # fmt: skip
    children = [(c, n, intersection(shapely.from_wkb(bytes(g)), geom)) for c, n, g in rows]
    return Area(None, "绘制范围", None, srid, geom, [x for x in children if not x[2].is_empty])


def load_children(conn: Connection, area: Area, codes: list | None) -> list:
    """Sub-areas one level down (districts of the city, streets of a district…), metric."""
    if area.code is None and codes:  # a scoped user: their own areas are the sub-areas
        where, params = "code = ANY(:codes)", {"codes": codes}
    elif area.level in CHILD_LEVEL or area.code is None:
        where, params = "level = :level AND (CAST(:parent AS text) IS NULL OR parent_code = :parent)", {
            "level": CHILD_LEVEL[area.level], "parent": area.code}  # fmt: skip
    else:
        return []
    rows = conn.execute(text(f"SELECT code, name, ST_AsBinary(ST_Transform(geom, :srid)) g "
                             f"FROM admin_area WHERE {where} ORDER BY code"),
                        {**params, "srid": area.srid}).all()  # fmt: skip
    return [(c, n, shapely.from_wkb(bytes(g))) for c, n, g in rows]


RESIDENTIAL = text(
    f"""
    SELECT p.id, p.code, coalesce(p.population, 0) AS population, ST_AsBinary(p.geom) AS geom
    FROM land_parcel p
    WHERE p.land_use LIKE 'R%' AND p.geom && ST_Transform(ST_GeomFromWKB(:wkb, :srid), {SRID})
    ORDER BY p.id
    """
)


def load_land(conn: Connection, area: Area) -> Land:
    """The residential land of the area, clipped to it. Parcels are transformed and tested here,
    once each, with the area prepared (in PostGIS each parcel was transformed three times); only
    parcels on the area's edge are cut."""
    rows = conn.execute(RESIDENTIAL, area.sql_params).all()
    ids, codes, population, wkb = (np.array(c, dtype=object) for c in zip(*rows, strict=True)) \
        if rows else (np.array([], dtype=object),) * 4  # fmt: skip
    geoms = reproject(shapely.from_wkb([bytes(g) for g in wkb]), SRID, area.srid)
    shapely.prepare(area.geom)
    hit = np.flatnonzero(shapely.intersects(area.geom, geoms))
    parts = np.array(geoms[hit], dtype=object)
    edge = np.flatnonzero(~shapely.contains_properly(area.geom, parts))
    parts[edge] = intersection(parts[edge], area.geom)
    return Land(ids[hit].astype(int), codes[hit].tolist(), population[hit].astype(float),
                shapely.area(geoms[hit]), parts)  # fmt: skip


def empty(n: int) -> np.ndarray:
    """n empty polygons."""
    return np.array([shapely.Polygon()] * n, dtype=object)


def grouped_union(index: np.ndarray, geoms: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[i] = union of the geoms whose index is i (each index's geoms in one union)."""
    order = np.argsort(index, kind="stable")
    index, geoms = index[order], geoms[order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    for a, b in zip(starts, [*starts[1:], len(index)], strict=True):
        out[index[a]] = geoms[a] if b - a == 1 else union_all(geoms[a:b])
    return out


def covered_parts(land: Land, pieces) -> np.ndarray:
    """Each residential part's piece inside the union of the zone pieces (which may overlap).

    Works part by part against the few pieces near it (never against one city-sized union): a
    part inside a piece is covered whole; the others are intersected with their nearby pieces.
    """
    n = len(land.parts)
    pieces = np.asarray([g for g in np.asarray(pieces, dtype=object).ravel() if not g.is_empty],
                        dtype=object)  # fmt: skip
    out = empty(n)
    if n == 0 or len(pieces) == 0:
        return out
    part_i, piece_i = shapely.STRtree(pieces).query(land.parts, predicate="intersects")
    shapely.prepare(pieces)
    full = np.unique(part_i[shapely.contains(pieces[piece_i], land.parts[part_i])])
    out[full] = land.parts[full]
    rest = ~np.isin(part_i, full)
    part_i, piece_i = part_i[rest], piece_i[rest]
    if len(part_i):
        grouped_union(part_i, intersection(land.parts[part_i], pieces[piece_i]), out)
    return out


TILE_M = 500.0  # side of a tile's cell
TILE_MARGIN_M = 250.0  # a tile also holds the zone this far past its cell's east and north sides


@dataclass
class Tiles:
    """One big zone cut into overlapping square tiles: the tile of cell (i, j) holds the zone in
    the cell widened east and north by the margin, so a part no wider or taller than the margin
    lies wholly in the tile of the cell holding its south-west corner — one tile per part."""

    zone: BaseGeometry
    x0: float
    y0: float
    tiles: dict[tuple[int, int], BaseGeometry] = field(default_factory=dict)
    cell: float = TILE_M
    margin: float = TILE_MARGIN_M

    def cut(self, geom: BaseGeometry, i: int, j: int, n: int) -> None:
        """Cut a geometry lying in the n × n cells from cell (i, j) into their tiles, by quarters
        (each level reads the zone once; clipping it once per tile read it thousands of times)."""
        if n == 1:
            self.tiles[(i, j)] = highest_dimension(geom)
            return
        half = n // 2
        for a, b in ((i, j), (i, j + half), (i + half, j), (i + half, j + half)):
            x, y = self.x0 + a * self.cell, self.y0 + b * self.cell
            side = half * self.cell + self.margin
            part = shapely.clip_by_rect(geom, x, y, x + side, y + side)
            if not part.is_empty:
                self.cut(part, a, b, half)

    def tile_of(self, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The tile of each (non-empty) part (an empty polygon where the zone is not), and whether
        the part lies wholly in it."""
        minx, miny, maxx, maxy = shapely.bounds(parts).T
        i = np.maximum(np.floor((minx - self.x0) / self.cell), 0).astype(int)
        j = np.maximum(np.floor((miny - self.y0) / self.cell), 0).astype(int)
        fits = (maxx <= self.x0 + (i + 1) * self.cell + self.margin) & (
            maxy <= self.y0 + (j + 1) * self.cell + self.margin
        )
        none = shapely.Polygon()
        tiles = [self.tiles.get(k, none) for k in zip(i.tolist(), j.tolist(), strict=True)]
        return np.array(tiles, dtype=object), fits


def tiled(zone: BaseGeometry) -> Tiles:
    """A big zone (one union) cut into overlapping tiles."""
    if zone.is_empty:
        return Tiles(zone, 0.0, 0.0)
    minx, miny, maxx, maxy = zone.bounds
    tiles = Tiles(zone, minx, miny)
    tiles.cut(zone, 0, 0, 2 ** math.ceil(math.log2(max(maxx - minx, maxy - miny, TILE_M) / TILE_M)))
    return tiles


def covered_by(parts: np.ndarray, zone: Tiles) -> np.ndarray:
    """Each part's piece inside one big zone: a part inside its tile is covered whole, the others
    are cut by that one tile (a part larger than the tiles' margin by the whole zone)."""
    out = empty(len(parts))
    some = np.flatnonzero(~shapely.is_empty(parts))
    if not zone.tiles or not len(some):
        return out
    tile, fits = zone.tile_of(parts[some])
    big, some, tile = some[~fits], some[fits], tile[fits]
    shapely.prepare(tile)
    meets = shapely.intersects(tile, parts[some])
    some, tile = some[meets], tile[meets]
    full = shapely.contains(tile, parts[some])
    out[some[full]] = parts[some[full]]
    out[some[~full]] = intersection(parts[some[~full]], tile[~full])
    out[big] = intersection(parts[big], zone.zone)
    return out


@dataclass
class Figures:
    """The indicator of one area."""

    residential_area_m2: float
    covered_area_m2: float
    population: float
    served_population: float

    @property
    def coverage_pct(self) -> float | None:
        """Covered ÷ residential × 100 (None without residential land)."""
        if self.residential_area_m2 <= 0:
            return None
        return round(100.0 * self.covered_area_m2 / self.residential_area_m2, 2)

    def json(self) -> dict:
        """The figures as JSON (areas to 0.1 m², people to whole persons)."""
        return {"coverage_pct": self.coverage_pct,
                "residential_area_m2": round(self.residential_area_m2, 1),
                "covered_area_m2": round(self.covered_area_m2, 1),
                "population": round(self.population), "served_population": round(self.served_population)}  # fmt: skip


def figures(land: Land, covered: np.ndarray) -> Figures:
    """Totals over the given parts."""
    part_area, covered_area = land.part_area, shapely.area(covered)
    return Figures(float(part_area.sum()), float(covered_area.sum()),
                   float(land.people(part_area).sum()), float(land.people(covered_area).sum()))  # fmt: skip


def by_area(area: Area, land: Land, covered: np.ndarray) -> list[dict]:
    """The indicator of each sub-area (a part straddling sub-areas is clipped to each)."""
    out = []
    tree = shapely.STRtree(land.parts)
    for code, name, geom in area.children:
        idx = tree.query(geom, predicate="intersects")
        shapely.prepare(geom)
        inside = shapely.contains(geom, land.parts[idx])  # most parts: no clipping needed
        parts, cov = land.parts[idx].copy(), covered[idx].copy()
        edge = np.flatnonzero(~inside)
        parts[edge], cov[edge] = intersection(parts[edge], geom), intersection(cov[edge], geom)
        sub = Land(land.ids[idx], [land.codes[i] for i in idx], land.population[idx],
                   land.parcel_area[idx], parts)  # fmt: skip
        out.append({"code": code, "name": name, **figures(sub, cov).json()})
    return out


def by_area_both(area: Area, land: Land, covered: dict[str, np.ndarray], mode: str) -> list[dict]:
    """By-area rows of the chosen mode, with each mode's coverage side by side."""
    rows = {m: by_area(area, land, c) for m, c in covered.items()}
    return [{**r, "coverage_pct_euclidean": e["coverage_pct"], "coverage_pct_network": n["coverage_pct"]}
            for r, e, n in zip(rows[mode], rows["euclidean"], rows["network"], strict=True)]  # fmt: skip


@cache
def transformer(source: int, target: int) -> Transformer:
    """A lon/lat-ordered transformer between two EPSG codes (made once per pair)."""
    return Transformer.from_crs(source, target, always_xy=True)


def reproject(geoms, source: int, target: int):
    """Geometries (one, or an array) from one CRS to another."""
    t = transformer(source, target)
    return shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def to_lonlat(geoms, srid: int) -> np.ndarray:
    """Metric geometries back to lon/lat (EPSG:4326 order for GeoJSON)."""
    return reproject(np.asarray(geoms, dtype=object), srid, 4326)


def from_lonlat(geom: BaseGeometry, srid: int) -> BaseGeometry:
    """A lon/lat geometry into the metric CRS."""
    return reproject(geom, 4326, srid)


def land_geojson(land: Land, geoms: np.ndarray, srid: int, measure: str) -> dict:
    """Pieces of residential land as a GeoJSON FeatureCollection (lon/lat), one per parcel."""
    keep = ~shapely.is_empty(geoms) & (shapely.area(geoms) > 0.5)
    flat = to_lonlat(geoms[keep], srid)
    codes = np.array(land.codes, dtype=object)[keep]
    feats = [{"type": "Feature", "geometry": shapely.geometry.mapping(g),
              "properties": {"parcel_id": int(i), "code": c, measure: round(float(a), 1)}}
             for g, i, c, a in zip(flat, land.ids[keep], codes, shapely.area(geoms[keep]),
                                   strict=True)]  # fmt: skip
    return {"type": "FeatureCollection", "features": feats}


def uncovered_geojson(land: Land, covered: np.ndarray, srid: int) -> dict:
    """The uncovered residential land as GeoJSON."""
    return land_geojson(land, difference(land.parts, covered), srid, "uncovered_m2")
