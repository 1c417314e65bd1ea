"""Walking reach along the road network (步行可达范围), over the `road` table.

How a parcel counts as covered in `network` mode:

1. The roads near the area are noded (split where they cross) into a graph whose edges carry
   their length in metres (Gauss-Krüger). The graph depends on the roads only, not on the parks
   or the rules: it is kept per window and road-data version (`GRAPHS`), so a write to `road`
   makes the next run build it again.
2. A facility is entered from the network where a road piece passes within ENTRY_M (30 m) of it:
   at the piece's point nearest to it, and that walk (up to 30 m) counts towards the radius.
3. From all entries at once, Dijkstra gives each road node's walking distance; the reached road
   is every part of a road within the radius, walking in from either end of a road piece or from
   an entry on it (pieces are cut where the radius ends).
4. Residential land within ACCESS_M (50 m) of the reached road, or of the facility itself, is
   served — a short walk from the street to the door.
5. The cover never exceeds the straight-line cover (it is clipped to it parcel by parcel), so
   network coverage is never above the euclidean figure: a river or a railway without a
   crossing shows as a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import shapely
from scipy.sparse.csgraph import dijkstra
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.contract import Memo
from analytics.coverage import Area
from geodata.catalog import SRID
from geodata.versions import data_version

ENTRY_M = 30.0
ACCESS_M = 50.0
ON_LINE_M = 0.001  # a noded piece lies on the road it came from to within a millimetre
TOUCH_M = 1e-6  # reached parts of a road closer than this are one part
GRAPHS = Memo(8)  # noded road graphs by database, window and road-data version

ROADS = text(
    f"""
    WITH a AS (SELECT ST_GeomFromWKB(:wkb, :srid) AS g)
    SELECT ST_AsBinary(ST_Transform(r.geom, :srid)) FROM road r, a
    WHERE r.geom && ST_Transform(ST_Expand(a.g, :reach), {SRID})
    """
)


def load_roads(conn: Connection, area: Area, reach: float) -> np.ndarray:
    """Road lines (metric) within `reach` metres of the area's bounding box."""
    rows = conn.execute(ROADS, {**area.sql_params,
                                "reach": reach + ENTRY_M + ACCESS_M}).scalars()  # fmt: skip
    return shapely.get_parts(np.array([shapely.from_wkb(bytes(g)) for g in rows], dtype=object))


@dataclass(frozen=True)
class RoadGraph:
    """The noded roads of a window as a graph, and where each piece lies along its road."""

    lines: np.ndarray  # the lines the pieces lie on: the roads, plus any piece found on none
    pieces: np.ndarray  # the roads split wherever they cross or touch
    length: np.ndarray  # of each piece, m
    ends: np.ndarray  # (pieces, 2): node ids of each piece's start and end
    line_of: np.ndarray  # the line each piece lies on
    offset: np.ndarray  # where along its line the piece starts, m
    forward: np.ndarray  # whether the piece runs the way its line does
    edges: tuple[np.ndarray, np.ndarray, np.ndarray]  # (node, node, length): shortest per pair
    nodes: int
    tree: shapely.STRtree  # of the pieces

    @property
    def empty(self) -> bool:
        """Whether there is no road at all."""
        return len(self.pieces) == 0


def noded(lines: np.ndarray) -> np.ndarray:
    """Road lines split wherever they cross or touch (no zero-length pieces)."""
    if len(lines) == 0:
        return lines
    pieces = shapely.get_parts(shapely.node(shapely.MultiLineString(list(lines))))
    return pieces[shapely.length(pieces) > 0]


def placement(
    roads: np.ndarray, pieces: np.ndarray, first: np.ndarray, second: np.ndarray
) -> tuple:
    """Each piece's line, where it starts along it and whether it runs the same way, from the
    piece's first segment (`first`, `second`: its first two vertices), with no point objects. A
    piece found on no road, which noding should never make, becomes a line of its own."""
    mid = shapely.points((first + second) / 2)  # inside the piece, never at a node
    hit, road = shapely.STRtree(roads).query(mid, predicate="dwithin", distance=ON_LINE_M)
    line_of = np.full(len(pieces), -1)
    found, at_hit = np.unique(hit, return_index=True)
    line_of[found] = road[at_hit]
    offset, forward = np.zeros(len(pieces)), np.ones(len(pieces), dtype=bool)
    on = np.flatnonzero(line_of >= 0)
    if len(on):
        at = shapely.line_locate_point(roads[line_of[on]], mid[on])
        step = second[on] - first[on]
        way = direction_at(roads, line_of[on], at)
        dot, cross = (step * way).sum(axis=1), step[:, 0] * way[:, 1] - step[:, 1] * way[:, 0]
        along = np.hypot(*step.T)
        offset[on] = np.where(dot > 0, at - along / 2, at + along / 2)
        forward[on] = dot > 0
        line_of[on[np.abs(cross) > 1e-6 * along]] = -1  # not lying along the road found
    alone = np.flatnonzero(line_of < 0)
    line_of[alone], offset[alone], forward[alone] = len(roads) + np.arange(len(alone)), 0.0, True
    return np.concatenate([roads, pieces[alone]]), line_of, offset, forward


def direction_at(lines: np.ndarray, line: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The unit direction of each given line `at` metres along it (its segment there)."""
    coords, first, count, along = vertices_along(lines)
    key = np.r_[0.0, np.cumsum(shapely.length(lines) + 1.0)][:-1]  # lines one after another
    seg = np.searchsorted(along + np.repeat(key, count), key[line] + at, side="right") - 1
    seg = np.clip(seg, first[line], first[line] + count[line] - 2)
    way = coords[seg + 1] - coords[seg]
    return way / np.maximum(np.hypot(*way.T), 1e-12)[:, None]


def graph_edges(ends: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One edge per pair of nodes (the shortest piece between them), without loops."""
    a, b = ends.min(axis=1), ends.max(axis=1)
    keep = a != b
    a, b, length = a[keep], b[keep], length[keep]
    order = np.lexsort((length, b, a))
    a, b, length = a[order], b[order], length[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[first], b[first], length[first]


def build_graph(roads: np.ndarray) -> RoadGraph:
    """The graph of the noded roads (node ids: piece ends rounded to a millimetre)."""
    roads = roads[~shapely.is_empty(roads)]
    pieces = noded(roads)
    if not len(pieces):
        return no_roads(roads)
    coords, owner = shapely.get_coordinates(pieces, return_index=True)
    count = np.bincount(owner, minlength=len(pieces))
    first = np.cumsum(count) - count
    ends = np.vstack([coords[first], coords[first + count - 1]]).round(3)
    nodes, ids = np.unique(ends, axis=0, return_inverse=True)
    ends = ids.reshape(2, len(pieces)).T
    length = shapely.length(pieces)
    lines, line_of, offset, forward = placement(roads, pieces, coords[first], coords[first + 1])
    return RoadGraph(lines, pieces, length, ends, line_of, offset, forward,
                     graph_edges(ends, length), len(nodes), shapely.STRtree(pieces))  # fmt: skip


def no_roads(roads: np.ndarray) -> RoadGraph:
    """The graph of a window without roads."""
    none, no_length = np.array([], dtype=int), np.array([], dtype=float)
    return RoadGraph(roads, np.array([], dtype=object), no_length, np.zeros((0, 2), dtype=int),
                     none, no_length, none.astype(bool), (none, none, no_length), 0,
                     shapely.STRtree([]))  # fmt: skip


def road_graph(conn: Connection, area: Area, reach: float, keep: bool = True) -> RoadGraph:
    """The noded road graph around the area, built once per window and road-data version.

    The version is read before the roads: a graph is never kept under a newer version than the
    roads it was built from, so a write to `road` always makes the next run rebuild it."""
    window = tuple(round(float(b), 3) for b in area.geom.bounds)
    key = (cov.database(conn), area.srid, window, reach, data_version(conn, ("road",)))
    graph = GRAPHS.get(key)
    if graph is None:
        graph = build_graph(load_roads(conn, area, reach))
        if keep:
            GRAPHS.put(key, graph)
    return graph


@dataclass
class Entries:
    """Where facilities meet the network: facility, piece, position along it and the walk to it."""

    facility: np.ndarray
    piece: np.ndarray
    pos: np.ndarray
    walk: np.ndarray

    def of(self, chosen: np.ndarray) -> Entries:
        """Only the entries of the chosen facilities."""
        keep = np.isin(self.facility, chosen)
        return Entries(self.facility[keep], self.piece[keep], self.pos[keep], self.walk[keep])


def find_entries(graph: RoadGraph, facilities: np.ndarray, within: float = ENTRY_M) -> Entries:
    """Every road piece within `within` (ENTRY_M) of each facility, entered at its point nearest
    to it."""
    if graph.empty or not len(facilities):
        none = np.array([], dtype=int)
        return Entries(none, none, none.astype(float), none.astype(float))
    f, k = graph.tree.query(facilities, predicate="dwithin", distance=within)
    link = shapely.shortest_line(facilities[f], graph.pieces[k])
    pos = shapely.line_locate_point(graph.pieces[k], shapely.get_point(link, 1))
    return Entries(f, k, pos, shapely.length(link))


def distances(graph: RoadGraph, seed: np.ndarray, radius: float) -> np.ndarray:
    """Each node's walking distance from the entries (inf beyond the radius); `seed` is each
    node's distance straight from an entry, joined to the graph through one extra source node."""
    near = np.flatnonzero(seed <= radius)
    a, b, length = graph.edges
    n = graph.nodes
    rows, cols = np.r_[a, np.full(len(near), n)], np.r_[b, near]
    matrix = scipy.sparse.csr_matrix(
        (np.r_[length, seed[near]], (rows, cols)), shape=(n + 1, n + 1)
    )
    return dijkstra(matrix, directed=False, indices=n, limit=radius)[:n]


def reached(graph: RoadGraph, entries: Entries, radius: float) -> tuple[np.ndarray, ...]:
    """The parts of pieces within `radius` metres' walk of the entries: (piece, from, to) along
    each piece, walking in from either end or from an entry on the piece itself."""
    keep = entries.walk < radius
    k, pos, walk = entries.piece[keep], entries.pos[keep], entries.walk[keep]
    length = graph.length
    seed = np.full(graph.nodes, np.inf)
    np.minimum.at(seed, graph.ends[k, 0], walk + pos)
    np.minimum.at(seed, graph.ends[k, 1], walk + length[k] - pos)
    dist = distances(graph, seed, radius)
    d_start, d_end = dist[graph.ends[:, 0]], dist[graph.ends[:, 1]]
    s, e, left = np.flatnonzero(d_start < radius), np.flatnonzero(d_end < radius), radius - walk
    from_start = (s, np.zeros(len(s)), np.minimum(length[s], radius - d_start[s]))
    from_end = (e, np.maximum(0, length[e] - (radius - d_end[e])), length[e])
    around_entry = (k, np.maximum(0, pos - left), np.minimum(length[k], pos + left))
    return tuple(np.concatenate(c) for c in zip(from_start, from_end, around_entry, strict=True))


def merged_spans(graph: RoadGraph, piece, start, end) -> tuple[np.ndarray, ...]:
    """Reached parts of pieces as parts of their lines, overlapping or touching ones merged:
    (line, from, to) along each line."""
    fwd, offset = graph.forward[piece], graph.offset[piece]
    line = graph.line_of[piece]
    lo = np.where(fwd, offset + start, offset - end)
    hi = np.where(fwd, offset + end, offset - start)
    order = np.lexsort((lo, line))
    out: list[list] = []
    for j, a, b in zip(line[order].tolist(), lo[order].tolist(), hi[order].tolist(), strict=True):
        if out and out[-1][0] == j and a <= out[-1][2] + TOUCH_M:
            out[-1][2] = max(out[-1][2], b)
        else:
            out.append([j, a, b])
    spans = np.array(out, dtype=float).reshape(-1, 3)
    return spans[:, 0].astype(int), spans[:, 1], spans[:, 2]


def vertices_along(lines: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every vertex of the lines, each line's first vertex and count, and how far along its line
    each vertex lies (m)."""
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    step = np.r_[0.0, np.hypot(*np.diff(coords, axis=0).T)]
    step[np.r_[True, owner[1:] != owner[:-1]]] = 0.0  # each line's first vertex lies at 0
    count = np.bincount(owner, minlength=len(lines))
    first = np.cumsum(count) - count
    along = np.cumsum(step)
    return coords, first, count, along - along[first[owner]]


def runs(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """start[0], start[0] + 1, … (count[0] numbers), then the same for start[1], …"""
    return np.repeat(start - (np.cumsum(count) - count), count) + np.arange(count.sum())


def sub_lines(lines: np.ndarray, line: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The parts [lo, hi] (metres along) of the given lines, in one vectorised pass: each part's
    two interpolated ends and its line's vertices between them."""
    full = shapely.length(lines[line])
    lo, hi = np.clip(lo, 0, full), np.clip(hi, 0, full)  # a negative distance counts from the end
    keep = hi > lo
    line, lo, hi = line[keep], lo[keep], hi[keep]
    coords, first, count, along = vertices_along(lines)
    part = np.repeat(np.arange(len(line)), count[line])  # each part with its line's vertices
    vertex = runs(first[line], count[line])
    inner = (along[vertex] > lo[part]) & (along[vertex] < hi[part])
    part, vertex = part[inner], vertex[inner]
    ends = [
        shapely.get_coordinates(shapely.line_interpolate_point(lines[line], d)) for d in (lo, hi)
    ]
    which = np.r_[np.arange(len(line)), part, np.arange(len(line))]
    order = np.lexsort((np.r_[lo, along[vertex], hi], which))
    points = np.vstack([ends[0], coords[vertex], ends[1]])
    return shapely.linestrings(points[order], indices=which[order])


def reached_lines(graph: RoadGraph, entries: Entries, radius: np.ndarray) -> np.ndarray:
    """The road within its facility's radius of any facility, as few lines as possible (one per
    stretch of a road), ready to buffer."""
    if graph.empty or not (radius > 0).any():
        return np.array([], dtype=object)
    spans = [reached(graph, entries.of(np.flatnonzero(radius == r)), float(r))
             for r in np.unique(radius[radius > 0])]  # fmt: skip
    piece, start, end = (np.concatenate(parts) for parts in zip(*spans, strict=True))
    return sub_lines(graph.lines, *merged_spans(graph, piece, start, end))


def network_pieces(conn: Connection, area: Area, facilities: np.ndarray, radius: np.ndarray,
                   keep_graph: bool = True) -> np.ndarray:  # fmt: skip
    """What the facilities serve on foot, as (overlapping) polygons: the reached road buffered by
    the access distance, and each serving facility's own surroundings. Not yet clipped to the
    straight-line zone: `cover` does that per parcel."""
    serving = np.flatnonzero(radius > 0)
    if len(serving) == 0:
        return np.array([], dtype=object)
    graph = road_graph(conn, area, float(radius.max()), keep_graph)
    entries = find_entries(graph, facilities[serving])
    lines = reached_lines(graph, entries, radius[serving])
    return np.concatenate([shapely.buffer(facilities[serving], ACCESS_M, quad_segs=4),
                           shapely.buffer(lines, ACCESS_M, quad_segs=4)])  # fmt: skip


def walking_zone(conn: Connection, area: Area, facilities: np.ndarray, radius: np.ndarray,
                 keep_graph: bool = True) -> cov.Tiles:  # fmt: skip
    """The walking reach as one union, cut into tiles (matching parts against thousands of
    overlapping buffers costs three times as much as one union and its tiles)."""
    pieces = network_pieces(conn, area, facilities, radius, keep_graph)
    return cov.tiled(cov.union_all(pieces) if len(pieces) else shapely.Polygon())


def cover(conn: Connection, area: Area, land: cov.Land, facilities: np.ndarray,
          radius: np.ndarray, straight_pieces: np.ndarray, keep_graph: bool = True) -> dict[str, np.ndarray]:  # fmt: skip
    """Each residential part's covered piece, straight-line and on foot (the latter within the
    former): the one place both modes are computed, for parks and facilities alike. The walking
    cover is the straight cover (which lies within each part) cut by the walking zone. A one-off
    area (a what-if's surroundings) passes keep_graph=False: its road graph is not kept."""
    straight = cov.covered_parts(land, straight_pieces)
    zone = walking_zone(conn, area, facilities, radius, keep_graph)
    return {"euclidean": straight, "network": cov.covered_by(straight, zone)}
