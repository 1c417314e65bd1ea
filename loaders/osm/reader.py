"""Read an OpenStreetMap file (.osm.pbf, .osm, .osm.bz2, .opl) with pyosmium into table rows.

Coordinates: OSM is WGS84 (EPSG:4326); CGCS2000 (EPSG:4490) agrees with it to a few centimetres,
far below OSM's own accuracy, so lon/lat are stored unchanged as EPSG:4490.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import osmium
import shapely
from shapely.geometry import MultiLineString, MultiPolygon, Point
from shapely.geometry.base import BaseGeometry

from loaders.osm.tags import GEOMETRY_KIND, KEYS, Skip, classify

AREA_RELATION_TYPES = ("multipolygon", "boundary")
NO_AREA = "面几何无法构建（成员缺失或环不闭合）"


@dataclass
class Row:
    """One row for one table: the OSM reference, its attributes and its geometry."""

    table: str
    ref: str
    attrs: dict
    geom: BaseGeometry


@dataclass
class Skipped:
    """An OSM object that belongs to a table but was not imported."""

    table: str
    ref: str
    reason: str


@dataclass
class Extract:
    """What was read from one file: rows per table, skips, and candidates read per table."""

    rows: list[Row] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=dict)
    pending: dict[str, dict[str, dict]] = field(default_factory=dict)

    def count(self, table: str) -> None:
        """Count one candidate object for a table."""
        self.read[table] = self.read.get(table, 0) + 1

    def skip(self, table: str, ref: str, reason: str) -> None:
        """Record an object that cannot be imported into a table."""
        self.skipped.append(Skipped(table, ref, reason))


def ref_of(kind: str, osm_id: int) -> str:
    """Stable reference of an OSM object: osm-n123, osm-w456, osm-r789."""
    return f"osm-{kind}{osm_id}"


def valid_polygonal(geom: BaseGeometry) -> MultiPolygon | None:
    """A valid MultiPolygon, repaired with make_valid only when the repair stays polygonal."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        return None
    return geom if geom.geom_type == "MultiPolygon" else MultiPolygon([geom])


def polygon_of(area: osmium.osm.Area, factory: osmium.geom.WKBFactory) -> MultiPolygon | None:
    """The assembled multipolygon of an osmium area, or None when it cannot be made valid."""
    try:
        return valid_polygonal(shapely.from_wkb(factory.create_multipolygon(area)))
    except (RuntimeError, osmium.InvalidLocationError, shapely.errors.GEOSException):
        return None


def located_runs(way: osmium.osm.Way) -> list[list[tuple[float, float]]]:
    """Runs of consecutive located nodes; a clipped extract lacks the nodes beyond its edge."""
    runs: list[list[tuple[float, float]]] = [[]]
    for node in way.nodes:
        if not node.location.valid():
            runs.append([])
            continue
        point = (node.location.lon, node.location.lat)
        if not runs[-1] or runs[-1][-1] != point:
            runs[-1].append(point)
    return [run for run in runs if len(run) >= 2]


def line_of(way: osmium.osm.Way) -> MultiLineString | None:
    """The located parts of a way as a MultiLineString, or None when nothing is left."""
    runs = located_runs(way)
    return MultiLineString(runs) if runs else None


def add_row(extract: Extract, table: str, ref: str, attrs: dict, geom: BaseGeometry) -> None:
    """Add one row, turning an area into the point on its surface for point tables."""
    if GEOMETRY_KIND[table] == "point" and geom.geom_type != "Point":
        geom = geom.point_on_surface()
    extract.rows.append(Row(table, ref, attrs, geom))


def on_node(extract: Extract, node: osmium.osm.Node, matches: dict) -> None:
    """A tagged node: a point for point tables; polygon and line tables need more than a node."""
    ref = ref_of("n", node.id)
    for table, attrs in matches.items():
        if GEOMETRY_KIND[table] != "point":
            extract.skip(table, ref, "仅有点位，无面状或线状几何")
        elif not node.location.valid():
            extract.skip(table, ref, "坐标无效")
        else:
            add_row(extract, table, ref, attrs, Point(node.location.lon, node.location.lat))


def on_way(extract: Extract, way: osmium.osm.Way, matches: dict) -> None:
    """A tagged way: a line for roads; closed ways wait for their area, open ones are skipped."""
    ref = ref_of("w", way.id)
    closed = way.is_closed()
    for table, attrs in matches.items():
        if GEOMETRY_KIND[table] == "line":
            line = line_of(way)
            if line is None:
                extract.skip(table, ref, "线几何无效（少于两个有坐标的节点）")
            else:
                add_row(extract, table, ref, attrs, line)
        elif closed:
            extract.pending.setdefault(ref, {})[table] = attrs
        else:
            extract.skip(table, ref, "线不闭合，无法构成面或确定位置")


def on_relation(extract: Extract, relation: osmium.osm.Relation, matches: dict) -> None:
    """A tagged relation: multipolygons wait for their area; other relations are not imported."""
    ref = ref_of("r", relation.id)
    is_area = relation.tags.get("type") in AREA_RELATION_TYPES
    for table, attrs in matches.items():
        if GEOMETRY_KIND[table] == "line":
            extract.skip(table, ref, "关系不作为道路中心线导入")
        elif is_area:
            extract.pending.setdefault(ref, {})[table] = attrs
        else:
            extract.skip(table, ref, "关系不是多边形（type≠multipolygon）")


def on_area(extract: Extract, area: osmium.osm.Area, factory) -> None:
    """An assembled area: resolves the tables its way or relation was waiting for."""
    ref = ref_of("w" if area.from_way() else "r", area.orig_id())
    tables = extract.pending.pop(ref, None)
    if not tables:
        return
    geom = polygon_of(area, factory)
    for table, attrs in tables.items():
        if geom is None:
            extract.skip(table, ref, "面几何无效，修复后类型改变")
        else:
            add_row(extract, table, ref, attrs, geom)


def on_object(extract: Extract, obj, factory) -> None:
    """Dispatch one OSM object after classifying its tags."""
    if obj.is_area():
        on_area(extract, obj, factory)
        return
    matches = classify(dict(obj.tags))
    ref = ref_of(obj.type_str(), obj.id)
    usable = {}
    for table, attrs in matches.items():
        extract.count(table)
        if isinstance(attrs, Skip):
            extract.skip(table, ref, attrs.reason)
        else:
            usable[table] = attrs
    if not usable:
        return
    if obj.is_node():
        on_node(extract, obj, usable)
    elif obj.is_way():
        on_way(extract, obj, usable)
    elif obj.is_relation():
        on_relation(extract, obj, usable)


def read_osm(path: Path | str) -> Extract:
    """Read every object of our layers from an OSM file (two passes: relations, then all)."""
    extract = Extract()
    factory = osmium.geom.WKBFactory()
    processor = (
        osmium.FileProcessor(str(path))
        .with_areas(osmium.filter.KeyFilter(*KEYS))
        .with_filter(osmium.filter.KeyFilter(*KEYS))
    )
    for obj in processor:
        on_object(extract, obj, factory)
    for ref, tables in extract.pending.items():
        for table in tables:
            extract.skip(table, ref, NO_AREA)
    extract.pending.clear()
    return extract
