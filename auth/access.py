"""What the current user may see: layers by role, objects by area (scoping in SQL)."""

from __future__ import annotations

from auth.roles import PERSON_FIELDS
from errors import Forbidden, NotFound
from geodata.accounts import User
from geodata.layer_sql import Filter, parse_filters, point_in_scope, scope_filter, tile_in_scope
from layers.registry import LAYERS, REGISTRY, Layer


def layer_allowed(user: User, layer: Layer) -> bool:
    """Restricted layers (cameras…) only for roles that have them."""
    return not layer.restricted or user.role.restricted_layers


def visible_layers(user: User) -> list[Layer]:
    """The registry as this user sees it."""
    return [x for x in LAYERS if layer_allowed(user, x)]


def find_layer(layer_id: str, user: User) -> Layer:
    """The layer, 404 when unknown, 403 when the role lacks it."""
    layer = REGISTRY.get(layer_id)
    if layer is None:
        raise NotFound(f"没有图层 {layer_id}")
    if not layer_allowed(user, layer):
        raise Forbidden(f"图层 {layer.title} 受限，无权访问")
    return layer


def scoped(user: User, filters: list[Filter]) -> list[Filter]:
    """Request filters plus the user's area limit, if any."""
    return [*filters, scope_filter(user.scope)] if user.scope else filters


def user_filters(user: User, layer: Layer, args: dict, *, ignore: set[str]) -> list[Filter]:
    """Validated request filters, limited to the user's areas."""
    return scoped(user, parse_filters(layer, args, ignore=ignore))


def check_tile(conn, user: User, z: int, x: int, y: int) -> None:
    """A scoped user may not ask for tiles outside their areas."""
    if user.scope and not tile_in_scope(conn, z, x, y, user.scope):
        raise Forbidden("该瓦片不在您的管辖范围内")


def check_point(conn, user: User, lon: float, lat: float) -> None:
    """A scoped user may not ask about places outside their areas."""
    if user.scope and not point_in_scope(conn, lon, lat, user.scope):
        raise Forbidden("该位置不在您的管辖范围内")


def check_archives(user: User) -> None:
    """Archives need a role that may open them."""
    if not user.role.archives:
        raise Forbidden("当前角色不能查看档案")


def redact(archive: dict, user: User) -> dict:
    """Remove names of persons for roles without person details (the big screen)."""
    if user.role.person_details:
        return archive
    attrs = {k: v for k, v in archive["attributes"].items() if k not in PERSON_FIELDS}
    return {**archive, "attributes": attrs}
