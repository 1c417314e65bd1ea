"""Tile service: validation, a bounded in-process LRU cache (by bytes) and ETags."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Connection

from errors import BadRequest
from geodata import versions
from layers.aggregates import aggregate_zooms, is_current, render_aggregate_tile
from layers.filters import Filter
from layers.registry import Layer
from layers.sql import data_version, render_tile


@dataclass(frozen=True)
class Tile:
    """A rendered tile: its bytes (possibly empty), gzip form and entity tag."""

    data: bytes
    gzipped: bytes
    etag: str


class TileCache:
    """LRU of rendered tiles bounded by total bytes; safe across threads."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[str, Tile] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> Tile | None:
        """The cached tile, marked as recently used."""
        with self.lock:
            tile = self.items.get(key)
            if tile is not None:
                self.items.move_to_end(key)
            return tile

    def put(self, key: str, tile: Tile) -> None:
        """Store a tile, evicting the least recently used ones past the byte budget."""
        cost = len(tile.data) + len(tile.gzipped) + 200
        if cost > self.max_bytes:
            return
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= len(old.data) + len(old.gzipped) + 200
            self.items[key] = tile
            self.size += cost
            while self.size > self.max_bytes:
                _, evicted = self.items.popitem(last=False)
                self.size -= len(evicted.data) + len(evicted.gzipped) + 200


def check_tile_address(z: int, x: int, y: int) -> None:
    """z in 0–22 and x, y inside the zoom's matrix, or 400."""
    if not 0 <= z <= 22:
        raise BadRequest(f"缩放级别 z={z} 超出范围 0–22")
    limit = 2**z
    if not (0 <= x < limit and 0 <= y < limit):
        raise BadRequest(f"瓦片坐标 x={x}, y={y} 超出第 {z} 级的范围 0–{limit - 1}")


def cache_key(layer: Layer, z: int, x: int, y: int, filters: list[Filter],
              version: int | str) -> str:  # fmt: skip
    """Key (and ETag) of a tile: address, normalised filters and the layer's data version."""
    parts = [layer.id, str(z), str(x), str(y), str(version)]
    parts += [f.token() for f in filters]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def tile_etag(conn: Connection, layer: Layer, z: int, x: int, y: int, filters: list[Filter],
              also: tuple[str, ...] = ()) -> tuple[str, int]:  # fmt: skip
    """The tile's entity tag and the layer's data version, known before any rendering (so a
    revalidation with a matching If-None-Match costs one small query). `also`: further tables
    the answer depends on (the areas of a scoped user), whose version joins the tag."""
    version = data_version(conn, layer)
    keyed = f"{version}.{versions.data_version(conn, also)}" if also else version
    return f'"{cache_key(layer, z, x, y, filters, keyed)}"', version


def get_tile(conn: Connection, cache: TileCache, layer: Layer, z: int, x: int, y: int,
             filters: list[Filter], version: int | None = None,
             etag: str | None = None) -> Tile:  # fmt: skip
    """The tile from the cache when the layer's data has not changed, else rendered by PostGIS.

    The version is read on the connection that renders, so a tile rendered on a lagging replica
    is keyed by the version that replica had (see geodata.replicas).
    """
    check_tile_address(z, x, y)
    if version is None:
        version = data_version(conn, layer)
    key = etag.strip('"') if etag else cache_key(layer, z, x, y, filters, version)
    tile = cache.get(key)
    if tile is None:
        data = render(conn, layer, z, x, y, filters, version)
        tile = Tile(data, gzip.compress(data, 5) if data else b"", f'"{key}"')
        cache.put(key, tile)
    return tile


def render(conn: Connection, layer: Layer, z: int, x: int, y: int, filters: list[Filter],
           version: int) -> bytes:  # fmt: skip
    """Empty outside the layer's zooms; stored counts when current and unfiltered; else live."""
    if not layer.min_zoom <= z <= layer.max_zoom:
        return b""
    if not filters and z in aggregate_zooms(layer) and is_current(conn, layer, version):
        return render_aggregate_tile(conn, layer, z, x, y)
    return render_tile(conn, layer, z, x, y, filters)
