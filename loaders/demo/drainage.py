"""Demo drainage: wells at road crossings, pipes along roads flowing downhill to outfalls.

Ground falls from the southern hills to the north (as in Jinan). The network is the shortest-path
tree from every crossing to the nearest outfall on the district's northern edge, so each pipe is
drawn in its flow direction and its invert falls by at least 0.2% along it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict

import numpy as np
from shapely.geometry import LineString

from geodata import catalog
from loaders.demo.base import District
from loaders.demo.bulk import Tables, geom_ewkb, points_ewkb

MIN_SLOPE = 0.002
COVER_M = 1.5
DIAMETERS = (300, 400, 500, 600, 800, 1000, 1200, 1500, 1800, 2000)


RAIN = catalog.PIPE_KINDS[0]  # 雨水: the demo drains rain water only


def ground_level(x: float, y: float, y0: float) -> float:
    """Ground elevation (m): falling northwards with gentle undulation."""
    return 70.0 - 0.004 * (y - y0) + 2.0 * np.sin(x / 900.0) * np.cos(y / 700.0)


def crossing_nodes(d: District) -> tuple[dict, dict]:
    """Road crossings inside the district and their neighbours along the roads."""
    lat = d.lattice
    vertical = [r for r in d.roads if r.vertical and r.road_class != "街巷"]
    horizontal = [r for r in d.roads if not r.vertical and r.road_class != "街巷"]
    nodes = {}
    for v in vertical:
        for h in horizontal:
            on_v = any(a <= h.position <= b for a, b in v.segments)
            on_h = any(a <= v.position <= b for a, b in h.segments)
            if on_v and on_h and lat.grid_codes(np.array([v.position + 1]),
                                                 np.array([h.position + 1]))[0]:  # fmt: skip
                nodes[(v.position, h.position)] = ground_level(v.position, h.position, lat.ys[0])
    edges = defaultdict(list)
    for line_nodes in _group(nodes, 0) + _group(nodes, 1):
        for a, b in itertools.pairwise(line_nodes):
            length = abs(a[0] - b[0]) + abs(a[1] - b[1])
            if length < 400:
                edges[a].append((b, length))
                edges[b].append((a, length))
    return nodes, edges


def _group(nodes: dict, axis: int) -> list[list]:
    """Nodes on the same line, sorted along it."""
    lines = defaultdict(list)
    for n in nodes:
        lines[n[axis]].append(n)
    return [sorted(v, key=lambda n: n[1 - axis]) for v in lines.values()]


def flow_tree(nodes: dict, edges: dict, outfalls: list) -> dict:
    """Downstream neighbour of each node on the shortest path to an outfall (uphill costs more)."""
    dist = {o: 0.0 for o in outfalls}
    down: dict = {}
    heap = [(0.0, o) for o in outfalls]
    heapq.heapify(heap)
    while heap:
        du, u = heapq.heappop(heap)
        if du > dist.get(u, np.inf):
            continue
        for v, length in edges[u]:
            climb = max(0.0, nodes[u] - nodes[v])  # water would flow v -> u; u higher costs
            cost = du + length + 200.0 * climb
            if cost < dist.get(v, np.inf):
                dist[v] = cost
                down[v] = u
                heapq.heappush(heap, (cost, v))
    return down


def add_drainage(t: Tables, d: District, rng) -> list[tuple[str, float, float]]:
    """Queue wells, pipes, outfalls, pump stations and waterlogging points; returns the wells."""
    nodes, edges = crossing_nodes(d)
    if not nodes:
        return []
    top = max(n[1] for n in nodes)
    northern = sorted((n for n in nodes if n[1] >= top - 400), key=lambda n: n[0])
    outfalls = northern[:: max(1, len(northern) // 4)] or [min(nodes, key=nodes.get)]
    down = flow_tree(nodes, edges, outfalls)
    reachable = [n for n in nodes if n in down or n in outfalls]
    invert = _inverts(nodes, down, reachable)
    code = {n: f"YS{d.lattice.district_code}{i:05d}" for i, n in enumerate(sorted(reachable))}
    _queue_wells(t, nodes, invert, code, reachable)
    _queue_pipes(t, d, down, invert, code, rng)
    _queue_outfalls(t, d, outfalls, code)
    _queue_waterlogging(t, d, nodes, edges, outfalls)
    return [(code[n], n[0], n[1]) for n in reachable]


def _inverts(nodes: dict, down: dict, reachable: list) -> dict:
    """Invert levels: cover below ground, and always below every upstream pipe end."""
    order = sorted(reachable, key=lambda n: _depth(n, down), reverse=True)
    invert = {n: nodes[n] - COVER_M for n in reachable}
    for n in order:  # upstream first
        if n in down:
            p = down[n]
            length = abs(n[0] - p[0]) + abs(n[1] - p[1])
            invert[p] = min(invert[p], invert[n] - MIN_SLOPE * length)
    return invert


def _depth(n, down: dict) -> int:
    """Number of pipes from a node to its outfall."""
    k = 0
    while n in down:
        n = down[n]
        k += 1
    return k


def _queue_wells(t: Tables, nodes, invert, code, reachable) -> None:
    """One inspection well (检查井) per crossing."""
    x = np.array([n[0] for n in reachable])
    y = np.array([n[1] for n in reachable])
    t.add("drain_well", ("code", "kind", "pipe_kind", "ground_level_m", "invert_level_m",
                         "depth_m", "geom"),
          [(code[n], "检查井", RAIN, round(nodes[n], 2), round(invert[n], 2),
            round(nodes[n] - invert[n], 2), g)
           for n, g in zip(reachable, points_ewkb(x, y), strict=True)])  # fmt: skip


def _queue_pipes(t: Tables, d: District, down, invert, code, rng) -> None:
    """Pipes from each well to its downstream well, sized by the upstream count."""
    upstream = defaultdict(int)
    for n in down:
        m = n
        while m in down:
            m = down[m]
            upstream[m] += 1
    rows, geoms = [], []
    for n, p in sorted(down.items()):
        size = min(len(DIAMETERS) - 1, int(np.log2(upstream[n] + 1)))
        geoms.append(LineString([n, p]))
        rows.append((f"GX{code[n]}", RAIN, DIAMETERS[size], str(rng.choice(["钢筋混凝土", "HDPE", "球墨铸铁"])),
                     round(invert[n], 2), round(invert[p] + 0.0, 2), code[n], code[p],
                     int(rng.integers(1985, 2024)), f"{d.lattice.district_name}排水管理处"))  # fmt: skip
    t.add("drain_pipe", ("code", "kind", "diameter_mm", "material", "start_invert_m",
                         "end_invert_m", "from_well", "to_well", "build_year", "owner", "geom"),
          [(*r, g) for r, g in zip(rows, geom_ewkb(geoms), strict=True)])  # fmt: skip


def _queue_outfalls(t: Tables, d: District, outfalls, code) -> None:
    """Outfalls (排口) beside the outfall wells, and a pump station at the lowest one."""
    x = np.array([o[0] for o in outfalls])
    y = np.array([o[1] + 5 for o in outfalls])
    dc = d.lattice.district_code
    t.add("drain_outfall", ("code", "name", "kind", "receiving_water", "geom"),
          [(f"PK{code[o]}", f"{i + 1}号排口", RAIN, "小清河", g)
           for i, (o, g) in enumerate(zip(outfalls, points_ewkb(x, y), strict=True))])  # fmt: skip
    t.add("pump_station", ("code", "name", "kind", "capacity_m3h", "geom"),
          [(f"BZ{dc}01", f"{d.lattice.district_name}雨水泵站", RAIN, 12000.0,
            points_ewkb(x[:1] + 15, y[:1])[0])])  # fmt: skip


def _queue_waterlogging(t: Tables, d: District, nodes, edges, outfalls) -> None:
    """Waterlogging points (内涝点) at crossings lower than all their neighbours."""
    lows = [n for n in nodes if n not in outfalls and edges[n]
            and all(nodes[n] < nodes[m] for m, _ in edges[n])]  # fmt: skip
    if not lows:
        return
    x = np.array([n[0] for n in lows])
    y = np.array([n[1] for n in lows])
    t.add("waterlogging_point", ("name", "max_depth_m", "risk_level", "geom"),
          [(f"{d.lattice.district_name}低洼点{i + 1}", 0.3 + 0.1 * (i % 5), "中高"[i % 2], g)
           for i, g in enumerate(points_ewkb(x, y))])  # fmt: skip
