"""Walking reach along the road network (步行可达范围), with networkx over the `road` table.

How a parcel counts as covered in `network` mode:

1. The roads near the area are noded (split where they cross) into a graph whose edges carry
   their length in metres (Gauss-Krüger).
2. A facility is entered from the network where a road passes within ENTRY_M (30 m) of it: the
   road is split at the point nearest to it, and that walk (up to 30 m) counts towards the radius.
3. From all entries at once, Dijkstra gives each road point's walking distance; the reached road
   is every edge part whose distance is within the radius (edges are cut where the radius ends).
4. Residential land within ACCESS_M (50 m) of the reached road, or of the facility itself, is
   served — a short walk from the street to the door.
5. The cover never exceeds the straight-line cover (it is clipped to it parcel by parcel), so
   network coverage is never above the euclidean figure: a river or a railway without a
   crossing shows as a gap.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import numpy as np
import shapely
from shapely import ops
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.coverage import Area
from geodata.catalog import SRID

ENTRY_M = 30.0
ACCESS_M = 50.0
SOURCE = "__source__"

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


@dataclass
class Network:
    """The noded road graph and each facility's entries (node, walk from the facility)."""

    graph: nx.Graph
    entries: list[list[tuple[int, float]]]  # per facility


def noded(lines: np.ndarray) -> np.ndarray:
    """Road lines split wherever they cross or touch."""
    if len(lines) == 0:
        return lines
    return shapely.get_parts(shapely.node(shapely.MultiLineString(list(lines))))


def entry_cuts(lines: np.ndarray, facilities: np.ndarray) -> tuple[dict, list]:
    """Where each facility meets the network: cut positions per line and (facility, line, pos, walk)."""
    tree = shapely.STRtree(lines)
    cuts: dict[int, set[float]] = defaultdict(set)
    entries = []
    for f, geom in enumerate(facilities):
        for i in tree.query(geom, predicate="dwithin", distance=ENTRY_M):
            link = shapely.shortest_line(geom, lines[i])
            pos = float(lines[i].project(shapely.get_point(link, 1)))
            cuts[int(i)].add(round(pos, 3))
            entries.append((f, int(i), round(pos, 3), float(link.length)))
    return cuts, entries


def split_at(line, positions: set[float]) -> list:
    """The line cut at the given distances along it."""
    if not positions:
        return [line]
    stops = sorted({0.0, line.length, *(p for p in positions if 0 < p < line.length)})
    return [ops.substring(line, a, b) for a, b in itertools.pairwise(stops) if b > a]


def build_network(lines: np.ndarray, facilities: np.ndarray) -> Network:
    """The graph of the noded roads, cut at the facilities' entries."""
    lines = noded(lines)
    cuts, raw_entries = entry_cuts(lines, facilities)
    pieces = np.array([p for i, line in enumerate(lines) for p in split_at(line, cuts.get(i, set()))],
                      dtype=object)  # fmt: skip
    graph = nx.Graph()
    if not len(pieces):
        return Network(graph, [[] for _ in facilities])
    # Node ids: the pieces' end points rounded to a millimetre, numbered in one vectorised pass.
    ends = np.vstack([shapely.get_coordinates(shapely.get_point(pieces, 0)),
                      shapely.get_coordinates(shapely.get_point(pieces, -1))]).round(3)  # fmt: skip
    coords, ids = np.unique(ends, axis=0, return_inverse=True)
    u, v = ids[: len(pieces)], ids[len(pieces) :]
    lengths = shapely.length(pieces)
    for a, b, length, piece in zip(u.tolist(), v.tolist(), lengths.tolist(), pieces, strict=True):
        if a != b and (not graph.has_edge(a, b) or graph[a][b]["length"] > length):
            graph.add_edge(a, b, length=length, geom=piece, start=a)
    index = {tuple(c): i for i, c in enumerate(coords.tolist())}
    entries: list[list[tuple[int, float]]] = [[] for _ in facilities]
    for f, i, pos, walk in raw_entries:
        node = index.get(tuple(np.round(shapely.get_coordinates(lines[i].interpolate(pos))[0], 3)))
        if node is not None:
            entries[f].append((node, walk))
    return Network(graph, entries)


def reached_roads(net: Network, chosen: list[int], radius: float) -> list:
    """The road parts within `radius` metres' walk of the chosen facilities."""
    graph = net.graph
    graph.add_node(SOURCE)
    for f in chosen:
        for node, walk in net.entries[f]:
            if walk < radius and (
                not graph.has_edge(SOURCE, node) or graph[SOURCE][node]["length"] > walk
            ):
                graph.add_edge(SOURCE, node, length=walk)
    try:
        dist = nx.single_source_dijkstra_path_length(graph, SOURCE, cutoff=radius, weight="length")
    finally:
        graph.remove_node(SOURCE)
    pieces = []
    for u, v, data in graph.edges(data=True):
        du, dv = dist.get(u), dist.get(v)
        if du is None and dv is None:
            continue
        line, length = data["geom"], data["length"]
        if data["start"] != u:  # orient the distances as the geometry runs
            du, dv = dv, du
        pieces += edge_reach(line, length, du, dv, radius)
    return pieces


def edge_reach(line, length: float, d_start, d_end, radius: float) -> list:
    """The parts of one edge within the radius, walking in from either end."""
    a = min(length, radius - d_start) if d_start is not None and d_start < radius else 0.0
    b = max(0.0, length - (radius - d_end)) if d_end is not None and d_end < radius else length
    if a >= b:
        return [line]
    pieces = []
    if a > 0:
        pieces.append(ops.substring(line, 0, a))
    if b < length:
        pieces.append(ops.substring(line, b, length))
    return pieces


def network_pieces(conn: Connection, area: Area, facilities: np.ndarray,
                   radius: np.ndarray) -> np.ndarray:  # fmt: skip
    """What each facility serves on foot, as (overlapping) polygons: the reached road buffered by
    the access distance, and each serving facility's own surroundings. Not yet clipped to the
    straight-line zone: `coverage.covered_parts(..., clip=straight)` does that per parcel."""
    serving = np.flatnonzero(radius > 0)
    if len(serving) == 0:
        return np.array([], dtype=object)
    net = build_network(load_roads(conn, area, float(radius.max())), facilities)
    parts = [shapely.buffer(facilities[serving], ACCESS_M, quad_segs=4)]
    for r in np.unique(radius[serving]):
        chosen = [int(f) for f in serving if radius[f] == r]
        pieces = reached_roads(net, chosen, float(r))
        if pieces:
            parts.append(shapely.buffer(np.array(pieces, dtype=object), ACCESS_M, quad_segs=4))
    return np.concatenate(parts)


def walking_zone(conn: Connection, area: Area, facilities: np.ndarray,
                 radius: np.ndarray) -> np.ndarray:  # fmt: skip
    """The walking reach as one union, cut into tiles (matching parts against thousands of
    overlapping buffers costs three times as much as one union and its tiles)."""
    pieces = network_pieces(conn, area, facilities, radius)
    return cov.chop(cov.union_all(pieces)) if len(pieces) else pieces


def cover(conn: Connection, area: Area, land: cov.Land, facilities: np.ndarray,
          radius: np.ndarray, straight_pieces: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Each residential part's covered piece, straight-line and on foot (the latter within the
    former): the one place both modes are computed, for parks and facilities alike."""
    straight = cov.covered_parts(land, straight_pieces)
    on_foot = cov.covered_parts(land, walking_zone(conn, area, facilities, radius), clip=straight)
    return {"euclidean": straight, "network": on_foot}
