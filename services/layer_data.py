"""Reading a layer's data: features (bounded, bulk reads audited), exports and statistics."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, Engine

from auth import accounts
from auth.access import check_analytics, check_export, find_layer, user_filters
from auth.accounts import User
from errors import BadRequest
from geodata.areas import area_code
from layers.registry import Layer
from layers.sql import read_features
from layers.stats import PERIODS, layer_stats
from params import parse_bbox, parse_choice, parse_int, required

# Anyone who may see a layer reads a page of up to FREE_FEATURES features; larger reads are bulk
# reads: they follow the export rule (role.export) and are audited like exports.
FREE_FEATURES = 500
MAX_FEATURES = 10_000


def read(conn: Connection, user: User, layer: Layer, args: Mapping, *, limit: int,
         audit_as: str | None, ip: str, ignore: set[str], writer: Engine | None) -> dict:  # fmt: skip
    """Matching features within the user's areas and the bbox; audited when `audit_as` is set.

    The features are read on `conn` (a replica may serve it); the audit entry is written in a
    transaction of its own on `writer` (the primary), or on `conn` when there is no writer.
    """
    bbox = parse_bbox(args["bbox"]) if "bbox" in args else None
    filters = user_filters(user, layer, dict(args), ignore={"bbox", *ignore})
    body = read_features(conn, layer, filters, bbox, limit)
    if audit_as:
        entry = (user.username, audit_as, layer.id,
                 {"filters": dict(args), "rows": body["numberReturned"]}, ip)  # fmt: skip
        if writer is None:
            accounts.audit(conn, *entry)
        else:
            with writer.begin() as log:
                accounts.audit(log, *entry)
    return body


def features(conn: Connection, user: User, layer_id, args: Mapping, *, ip: str,
             writer: Engine | None = None) -> dict:  # fmt: skip
    """A GeoJSON page of a layer's features within the user's areas."""
    layer = find_layer(layer_id, user)
    limit = parse_int(args.get("limit", "100"), "limit", 1, MAX_FEATURES)
    bulk = limit > FREE_FEATURES
    if bulk:
        check_export(user)
    return read(conn, user, layer, args, limit=limit, audit_as="bulk_read" if bulk else None,
                ip=ip, ignore={"limit"}, writer=writer)  # fmt: skip


def export(conn: Connection, user: User, layer_id, args: Mapping, *, ip: str,
           writer: Engine | None = None) -> dict:  # fmt: skip
    """All matching features (up to MAX_FEATURES) for download; audited."""
    check_export(user)
    layer = find_layer(layer_id, user)
    return read(conn, user, layer, args, limit=MAX_FEATURES, audit_as="export", ip=ip,
                ignore=set(), writer=writer)  # fmt: skip


def stats(conn: Connection, user: User, layer_id, args: Mapping) -> dict:
    """Counts of a layer's objects grouped by a field, in an area, within the user's areas."""
    check_analytics(user)
    layer = find_layer(layer_id, user)
    by_name = required(args, "by")
    by = layer.field(by_name)
    if by is None or not by.filterable:
        allowed = ", ".join(f.name for f in layer.filterable) or "无"
        raise BadRequest(f"图层 {layer.id} 不能按 {by_name[:40]} 统计（可用：{allowed}）")
    area = area_code(args["area"]) if args.get("area") else None
    period = parse_choice(args.get("period", "day"), "period", tuple(PERIODS))
    filters = user_filters(user, layer, dict(args), ignore={"by", "area", "period"})
    return layer_stats(conn, layer, area=area, by=by, filters=filters, period=period)
