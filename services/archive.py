"""Opening an object's archive (档案): role check, area scope, audit of restricted views, redaction."""

from __future__ import annotations

from sqlalchemy import Connection

from auth import accounts
from auth.access import check_archives, find_layer, redact, scoped
from auth.accounts import User
from layers.archive import object_archive
from params import parse_id


def open_archive(conn: Connection, user: User, layer_id, object_id, *, ip: str) -> dict:
    """The archive as this user may see it; views of restricted layers are audited."""
    layer = find_layer(layer_id, user)
    check_archives(user)
    oid = parse_id(object_id)
    data = object_archive(conn, layer, oid, scoped(user, []), user.scope)
    if layer.restricted:
        accounts.audit(conn, user.username, "archive_view", f"{layer.id}/{oid}", ip=ip)
    return redact(data, user)


def object_title(conn: Connection, user: User, layer_id, object_id) -> tuple[str, str]:
    """(name, code) of an object for a map popup, under the same checks as the archive."""
    layer = find_layer(layer_id, user)
    data = object_archive(conn, layer, parse_id(object_id), scoped(user, []), user.scope)
    attrs = redact(data, user)["attributes"]
    name = attrs.get("name") or attrs.get("class_name") or attrs.get("address") or layer.title
    return str(name), str(attrs.get("code") or "")
