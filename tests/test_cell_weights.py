"""Unit-grid queen weights kept in the database (migration 0012) are PySAL's Queen, exactly.

Hand-made grids straddle the boundary of 历下区: a lattice (edges and corners shared), a square
meeting the lattice at one corner only, a rectangle whose corners lie on lattice edges without
being lattice vertices (PySAL: not neighbours, although the boundaries touch), a grid with a hole
and a grid filling the hole, a two-part grid, and a lone grid.
"""

from __future__ import annotations

import esda
import geopandas as gpd
import numpy as np
import pytest
import shapely
from libpysal.weights import Queen
from shapely.geometry import MultiPolygon, Polygon, box, shape
from sqlalchemy import text

from analytics.cells import SETS, cell_set, geojson
from analytics.coverage import Area, load_area
from analytics.hotspots import gi_star_matrix
from auth.accounts import User
from auth.roles import ROLES
from geodata.db import make_engine
from tests.conftest import area_shape

LIXIA = "370102"
COMMUNITY = "370102999001"
D = 0.002  # side of a lattice square, degrees
N = 6  # lattice of N × N squares
LIXIA_USER = User(0, "t_cellw_lixia", ROLES["district"], (LIXIA,))
INSERT = text(
    "INSERT INTO unit_grid (code, community_code, geom) "
    "VALUES (:code, :community, ST_Multi(ST_GeomFromWKB(:wkb, 4490)))"
)


def square(x0: float, y0: float, i: int, j: int, w: int = 1, h: int = 1) -> Polygon:
    """The lattice box of w × h squares whose lower-left square is (i, j)."""
    return box(x0 + i * D, y0 + j * D, x0 + (i + w) * D, y0 + (j + h) * D)


def hand_made(x0: float, y0: float) -> dict[str, Polygon | MultiPolygon]:
    """The grids by code, every shared vertex spelt by the same arithmetic."""
    grids = {
        f"{COMMUNITY}{j * N + i:03d}": square(x0, y0, i, j) for j in range(N) for i in range(N)
    }
    grids[f"{COMMUNITY}100"] = square(x0, y0, N, -1)  # corner (N, 0) only, with square (N-1, 0)
    half = box(x0 + 0.5 * D, y0 + N * D, x0 + 1.5 * D, y0 + (N + 1) * D)
    grids[f"{COMMUNITY}101"] = half  # corners on edges of (0, N-1), (1, N-1): no shared vertex
    ring = square(x0, y0, -4, 0, 3, 3)
    hole = square(x0, y0, -3, 1)
    grids[f"{COMMUNITY}102"] = Polygon(ring.exterior.coords, [hole.exterior.coords])
    grids[f"{COMMUNITY}103"] = hole  # shares the hole's vertices only
    grids[f"{COMMUNITY}104"] = MultiPolygon([square(x0, y0, -4, 4), square(x0, y0, -1, 3)])
    grids[f"{COMMUNITY}105"] = square(x0, y0, 3, N + 2)  # alone
    return grids


@pytest.fixture(scope="module")
def grid_db(scratch):
    """A migrated database with the hand-made grids (inserted over several statements)."""
    engine = make_engine(scratch.create_city("onemap_cellw"))
    with engine.begin() as conn:
        lixia = area_shape(conn, LIXIA)
        edge = shapely.get_exterior_ring(lixia.geoms[0]).interpolate(0.3, normalized=True)
        grids = hand_made(edge.x - 3 * D, edge.y - 3 * D)
        conn.execute(text("INSERT INTO admin_area (code, level, name, geom) VALUES (:c, "
                          "'community', '测试社区', ST_Multi(ST_GeomFromWKB(:wkb, 4490)))"),
                     {"c": COMMUNITY, "wkb": shapely.to_wkb(box(*MultiPolygon(
                         [g for p in grids.values() for g in getattr(p, "geoms", [p])]).bounds))})  # fmt: skip
        codes = list(grids)
        for batch in (codes[:20], codes[20:N * N], *([c] for c in codes[N * N:])):  # fmt: skip
            conn.execute(INSERT, [{"code": c, "community": COMMUNITY,
                                   "wkb": shapely.to_wkb(grids[c])} for c in batch])  # fmt: skip
    yield engine, grids, lixia
    engine.dispose()


def reference(geoms: list) -> np.ndarray:
    """PySAL Queen contiguity plus the cell itself (dense 0/1), on lon/lat geometries."""
    w = Queen.from_dataframe(gpd.GeoDataFrame(geometry=geoms, crs=4490), use_index=False,
                             silence_warnings=True)  # fmt: skip
    return ((w.sparse.toarray() + np.eye(len(geoms))) != 0).astype(float)


def whole(grids) -> Area:
    """An extent (metric, Gauss-Krüger CM 117°E) around every hand-made grid."""
    bounds = MultiPolygon([g for p in grids.values() for g in getattr(p, "geoms", [p])]).bounds
    outline = gpd.GeoSeries([box(*bounds).buffer(D)], crs=4490).to_crs(4548).iloc[0]
    return Area(None, "测试", None, 4548, outline)


def stored_pairs(conn) -> set[tuple[str, str]]:
    """The pairs unit_grid_neighbour holds, by grid code."""
    return set(conn.execute(text(
        "SELECT a.code, b.code FROM unit_grid_neighbour n JOIN unit_grid a ON a.id = n.grid_id "
        "JOIN unit_grid b ON b.id = n.neighbour_id")).all())  # fmt: skip


def queen_pairs(grids: dict) -> set[tuple[str, str]]:
    """PySAL's queen pairs (both ways) of the grids, by code."""
    codes = list(grids)
    w = Queen.from_dataframe(gpd.GeoDataFrame(geometry=list(grids.values()), crs=4490),
                             use_index=False, silence_warnings=True)  # fmt: skip
    return {(codes[i], codes[j]) for i, js in w.neighbors.items() for j in js}


def test_the_stored_weights_are_pysal_queen(grid_db):
    engine, grids, _ = grid_db
    SETS.items.clear()
    with engine.connect() as conn:
        cells = cell_set(conn, whole(grids), "unit_grid", 0)
    assert cells.ids == sorted(grids)
    want = reference([grids[c] for c in cells.ids])
    assert np.array_equal(cells.weights.toarray(), want)
    at = {c: i for i, c in enumerate(cells.ids)}
    w = cells.weights.toarray()
    corner, lattice_corner = f"{COMMUNITY}100", f"{COMMUNITY}{N - 1:03d}"
    assert w[at[corner], at[lattice_corner]] == 1 and w[at[corner]].sum() == 2  # itself + corner
    assert w[at[f"{COMMUNITY}101"]].sum() == 1  # touches the lattice, shares no vertex with it
    assert w[at[f"{COMMUNITY}102"], at[f"{COMMUNITY}103"]] == 1  # through the hole's ring
    assert w[at[f"{COMMUNITY}104"], at[f"{COMMUNITY}102"]] == 1  # its second part's corner
    assert w[at[f"{COMMUNITY}105"]].sum() == 1
    assert w[at[f"{COMMUNITY}007"]].sum() == 9  # an inner lattice square: 8 neighbours + itself


def test_a_district_users_extent_keeps_pysal_queen_among_its_cells(grid_db):
    engine, grids, lixia = grid_db
    SETS.items.clear()
    with engine.connect() as conn:
        cells = cell_set(conn, load_area(conn, LIXIA_USER, None), "unit_grid", 0)
    mine = [c for c in cells.ids if c.startswith(COMMUNITY)]
    assert 0 < len(mine) < len(grids) and len(mine) == len(cells.ids)
    assert all(lixia.distance(grids[c]) < 1e-9 for c in mine)  # compared in metres by PostGIS
    assert {c for c, g in grids.items() if g.intersects(lixia.buffer(-1e-6))} <= set(mine)
    assert np.array_equal(cells.weights.toarray(), reference([grids[c] for c in cells.ids]))


@pytest.mark.filterwarnings("ignore:The weights matrix is not fully connected")
def test_gi_star_on_the_stored_weights_equals_esda(grid_db):
    engine, grids, _ = grid_db
    SETS.items.clear()
    with engine.connect() as conn:
        cells = cell_set(conn, whole(grids), "unit_grid", 0)
    counts = np.random.default_rng(3).poisson(4, len(cells)).astype(float)
    counts[:8] += 20
    w = Queen.from_dataframe(gpd.GeoDataFrame(geometry=[grids[c] for c in cells.ids], crs=4490),
                             use_index=False, silence_warnings=True)  # fmt: skip
    esda_z = esda.G_Local(counts, w, transform="B", star=True, permutations=0).Zs
    z = gi_star_matrix(cells.weights, counts.reshape(-1, 1))[:, 0]
    assert np.allclose(z, esda_z, atol=1e-9, rtol=0)


def test_the_triggers_follow_every_change_of_the_grids(grid_db):
    engine, grids, _ = grid_db
    now = dict(grids)
    with engine.connect() as conn, conn.begin() as tx:
        assert stored_pairs(conn) == queen_pairs(now)
        x0, y0 = grids[f"{COMMUNITY}000"].bounds[:2]
        moved = square(x0, y0, N, N)  # the lone grid to the lattice's top-right corner
        conn.execute(text("UPDATE unit_grid SET geom = ST_Multi(ST_GeomFromWKB(:wkb, 4490)) "
                          "WHERE code = :c"), {"c": f"{COMMUNITY}105", "wkb": shapely.to_wkb(moved)})  # fmt: skip
        now[f"{COMMUNITY}105"] = moved
        assert stored_pairs(conn) == queen_pairs(now)
        assert (f"{COMMUNITY}105", f"{COMMUNITY}{N * N - 1:03d}") in stored_pairs(conn)
        conn.execute(text("UPDATE unit_grid SET responsible_unit = '环卫所'"))  # no vertex moves
        conn.execute(text("DELETE FROM unit_grid WHERE code IN (:a, :b)"),
                     {"a": f"{COMMUNITY}007", "b": f"{COMMUNITY}103"})  # fmt: skip
        del now[f"{COMMUNITY}007"], now[f"{COMMUNITY}103"]
        assert stored_pairs(conn) == queen_pairs(now)
        back = grids[f"{COMMUNITY}007"]
        conn.execute(INSERT, {"code": f"{COMMUNITY}007", "community": COMMUNITY,
                              "wkb": shapely.to_wkb(back)})  # fmt: skip
        now[f"{COMMUNITY}007"] = back
        kept = stored_pairs(conn)
        assert kept == queen_pairs(now)
        conn.execute(text("SELECT unit_grid_neighbour_rebuild()"))
        assert stored_pairs(conn) == kept
        conn.execute(text("TRUNCATE unit_grid CASCADE"))
        assert conn.execute(text("SELECT count(*) FROM unit_grid_neighbour")).scalar() == 0
        tx.rollback()


def test_geojson_of_the_cells_is_their_geometry(grid_db):
    engine, grids, _ = grid_db
    with_hole = grids[f"{COMMUNITY}102"]
    two_parts = grids[f"{COMMUNITY}104"]
    got = geojson([shapely.to_wkb(MultiPolygon([with_hole])), shapely.to_wkb(two_parts)])
    assert [g["type"] for g in got] == ["MultiPolygon", "MultiPolygon"]
    assert len(got[0]["coordinates"][0]) == 2 and len(got[1]["coordinates"]) == 2  # ring + hole
    assert shape(got[0]).geoms[0].equals_exact(with_hole, tolerance=1e-9)
    assert shape(got[1]).equals_exact(two_parts, tolerance=1e-9)
    hexes = geojson([shapely.to_wkb(square(0.123456789012, 0.5, i, 0)) for i in range(3)])
    assert [g["type"] for g in hexes] == ["Polygon"] * 3
    assert (0.123456789, 0.5) in hexes[0]["coordinates"][0]  # 9 decimals
    with engine.connect() as conn:
        cells = cell_set(conn, whole(grids), "unit_grid", 0)
        stored = dict(conn.execute(text("SELECT code, ST_AsText(ST_Transform(geom, 4326)) "
                                        "FROM unit_grid")).all())  # fmt: skip
    for code, g in zip(cells.ids, cells.lonlat, strict=True):
        assert shape(g).equals_exact(shapely.from_wkt(stored[code]), tolerance=1e-9)
