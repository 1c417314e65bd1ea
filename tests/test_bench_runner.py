"""The benchmark's tile list (bench/sample.py) on the small demo: enough distinct tiles per zoom
band, and the densest tile of each layer and zoom in it — the densest computed here
independently (shapely points and the XYZ tile formula, not the sampler's SQL)."""

from __future__ import annotations

from collections import Counter

import pytest
import shapely
from sqlalchemy import text

from bench.__main__ import markdown_tables
from bench.sample import BANDS, TILE_LAYERS, band_of, tile_list, tile_of
from layers.registry import REGISTRY


@pytest.fixture(scope="module")
def tiles(demo_engine):
    """The default list (15 tiles per layer and zoom, seed 1) on the small demo."""
    with demo_engine.connect() as conn:
        return tile_list(conn, seed=1, per_zoom=15)


def counts_by_hand(demo_engine, layer_id: str, z: int) -> Counter:
    """The layer's objects per z tile, from lon/lat read as WKB and tiled in Python."""
    layer = REGISTRY[layer_id]
    where = f"WHERE {layer.where}" if layer.where else ""
    with demo_engine.connect() as conn:
        rows = conn.execute(text(f"SELECT ST_AsBinary(t.geom) FROM {layer.source} t {where}"))
        geoms = shapely.from_wkb([bytes(r[0]) for r in rows])
    points = shapely.point_on_surface(geoms)
    return Counter(tile_of(p.x, p.y, z) for p in points)


def test_every_band_has_at_least_30_distinct_tiles_per_layer(tiles):
    per_band = Counter()
    for key in {t.key for t in tiles}:
        per_band[(key[0], band_of(key[1]))] += 1
    for layer_id in TILE_LAYERS:
        for low, high in BANDS:
            if REGISTRY[layer_id].min_zoom > high:
                continue
            want = 30 if REGISTRY[layer_id].min_zoom <= low else 15
            assert per_band[(layer_id, band_of(low))] >= want, (layer_id, low, per_band)


@pytest.mark.parametrize("layer_id", TILE_LAYERS)
@pytest.mark.parametrize("z", [10, 13, 15, 17])
def test_the_densest_tile_is_in_the_list(demo_engine, tiles, layer_id, z):
    if z < REGISTRY[layer_id].min_zoom:
        pytest.skip("below the layer's min zoom")
    counts = counts_by_hand(demo_engine, layer_id, z)
    most = max(counts.values())
    listed = [(t.x, t.y) for t in tiles if t.layer == layer_id and t.z == z]
    # a densest tile (several may tie) is listed, with the count computed here
    assert any(counts[tile] == most for tile in listed), (most, [counts[t] for t in listed])


def test_the_list_is_fixed_by_its_seed(demo_engine, tiles):
    with demo_engine.connect() as conn:
        again = tile_list(conn, seed=1, per_zoom=15)
        other = tile_list(conn, seed=2, per_zoom=15)
    assert again == tiles
    assert other != tiles


def test_markdown_tables_are_read_into_rows():
    printed = "intro\n\n| case | seconds |\n| --- | ---: |\n| heat | 0.20 |\n| trace | 1.5 |\n\nend"
    assert markdown_tables(printed) == [
        {"header": ["case", "seconds"],
         "rows": [{"case": "heat", "seconds": "0.20"}, {"case": "trace", "seconds": "1.5"}]}
    ]  # fmt: skip
