"""What the current user may see: layers by role, objects by area (scoping in SQL)."""

from __future__ import annotations

from auth.accounts import User
from auth.roles import PERSON_FIELDS
from errors import BadRequest, Forbidden, NotFound
from geodata.areas import point_in_areas, tile_in_areas
from layers.filters import Filter, parse_filters, scope_filter
from layers.registry import LAYERS, REGISTRY, Layer


def layer_allowed(user: User, layer: Layer) -> bool:
    """Restricted layers (cameras…) only for roles that have them."""
    return not layer.restricted or user.role.restricted_layers


def visible_layers(user: User) -> list[Layer]:
    """The registry as this user sees it."""
    return [x for x in LAYERS if layer_allowed(user, x)]


def find_layer(layer_id, user: User) -> Layer:
    """The layer, 400 when not a name, 404 when unknown, 403 when the role lacks it."""
    if not isinstance(layer_id, str):
        raise BadRequest("图层必须是图层名称")
    layer = REGISTRY.get(layer_id)
    if layer is None:
        raise NotFound(f"没有图层 {layer_id[:40]}")
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
    if user.scope and not tile_in_areas(conn, z, x, y, user.scope):
        raise Forbidden("该瓦片不在您的管辖范围内")


def check_point(conn, user: User, lon: float, lat: float) -> None:
    """A scoped user may not ask about places outside their areas."""
    if user.scope and not point_in_areas(conn, lon, lat, user.scope):
        raise Forbidden("该位置不在您的管辖范围内")


def check_analytics(user: User) -> None:
    """Statistics and analyses need a role that may run them (not the big screen's kiosk)."""
    if not user.role.analytics:
        raise Forbidden("当前角色不能使用统计分析")


def check_export(user: User) -> None:
    """Exports and bulk reads need a role that may export."""
    if not user.role.export:
        raise Forbidden("当前角色不能导出数据")


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
