"""Vector tiles: /tiles/<layer>/<z>/<x>/<y>.pbf (ETag, 304, gzip, 204 for empty tiles)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.http import reading
from auth.access import check_tile, find_layer, user_filters
from auth.web import current_user
from layers.tiles import TileCache, check_tile_address, get_tile, tile_etag
from runtime import runtime

bp = Blueprint("tiles", __name__)
TILE_MAX_AGE = 60


def tile_cache() -> TileCache:
    """The app's tile cache (bounded by bytes, per worker)."""
    rt = runtime()
    return rt.cache("tiles", lambda: TileCache(rt.settings.tile_cache_mb * 1024 * 1024))


@bp.get("/tiles/<layer_id>/<int(signed=True):z>/<int(signed=True):x>/<int(signed=True):y>.pbf")
def tile(layer_id: str, z: int, x: int, y: int):
    """One tile of a layer, filtered by the query and limited to the user's areas."""
    user = current_user()
    layer = find_layer(layer_id, user)
    filters = user_filters(user, layer, request.args.to_dict(), ignore={"v"})
    check_tile_address(z, x, y)
    shared = not layer.restricted and not user.scope
    areas = ("admin_area",) if user.scope else ()  # a scoped answer also depends on the areas
    with reading((*layer.tables, *areas)) as conn:
        check_tile(conn, user, z, x, y)
        etag, version = tile_etag(conn, layer, z, x, y, filters, areas)
        headers = tile_headers(etag, shared=shared)
        if request.if_none_match.contains(etag.strip('"')):  # unchanged data: nothing rendered
            return Response(status=304, headers=headers)
        found = get_tile(conn, tile_cache(), layer, z, x, y, filters, version, etag)
    if not found.data:
        return Response(status=204, headers=headers)
    body = found.data
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body, headers["Content-Encoding"] = found.gzipped, "gzip"
    return Response(body, headers=headers, mimetype="application/vnd.mapbox-vector-tile")


def tile_headers(etag: str, *, shared: bool) -> dict:
    """The ETag and caching headers of a tile answer (200, 204 or 304).

    Only tiles that are the same for every signed-in user (unrestricted layer, unscoped user) may
    be kept by a shared cache; the others are `private`.
    """
    visibility = "public" if shared else "private"
    return {"ETag": etag, "Cache-Control": f"{visibility}, max-age={TILE_MAX_AGE}",
            "Vary": "Accept-Encoding, Authorization, Cookie"}  # fmt: skip
