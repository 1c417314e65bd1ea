"""Parsing of untrusted inputs into typed values, or BadRequest (400) with a Chinese message.

HTTP query parameters and Dash callback inputs go through the same functions: a zoom from the
browser is as untrusted as one in a URL. Nothing here touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from errors import BadRequest

MAX_TEXT = 200


def required(args: Mapping, name: str) -> str:
    """A required text parameter, or 400."""
    value = args.get(name)
    if value is None or value == "":
        raise BadRequest(f"缺少参数 {name}")
    return text_value(value, name)


def text_value(raw, name: str, max_length: int = MAX_TEXT) -> str:
    """A printable text of bounded length (no NUL or control characters), or 400."""
    if not isinstance(raw, str):
        raise BadRequest(f"参数 {name} 必须是文本")
    if len(raw) > max_length:
        raise BadRequest(f"参数 {name} 过长（最多 {max_length} 字）")
    if any(ord(c) < 32 and c not in "\t" for c in raw):
        raise BadRequest(f"参数 {name} 含有不允许的控制字符")
    return raw


def parse_float(raw, name: str, low: float, high: float) -> float:
    """A finite number within [low, high] (text or a JSON number), or 400."""
    if isinstance(raw, bool):
        raise BadRequest(f"参数 {name} 必须是数字")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"参数 {name} 必须是数字") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"参数 {name} 必须在 {low} 与 {high} 之间")
    return value


def parse_int(raw, name: str, low: int, high: int) -> int:
    """A whole number within [low, high], or 400."""
    if isinstance(raw, bool):
        raise BadRequest(f"参数 {name} 必须是整数")
    if isinstance(raw, int):
        value = raw
    elif (isinstance(raw, float) and raw.is_integer()) or (
        isinstance(raw, str) and raw.strip().lstrip("-").isdigit() and len(raw) < 20
    ):
        value = int(raw)
    else:
        raise BadRequest(f"参数 {name} 必须是整数")
    if not low <= value <= high:
        raise BadRequest(f"参数 {name} 必须在 {low} 与 {high} 之间")
    return value


def parse_zoom(raw) -> int:
    """A map zoom level 0–22."""
    return parse_int(raw, "zoom", 0, 22)


def parse_lonlat(lon, lat) -> tuple[float, float]:
    """A longitude in [-180, 180] and latitude in [-90, 90]."""
    return parse_float(lon, "lon", -180, 180), parse_float(lat, "lat", -90, 90)


def parse_id(raw, name: str = "id") -> int:
    """An object id: a positive 64-bit integer."""
    return parse_int(raw, name, 1, 2**63 - 1)


def parse_bbox(raw) -> tuple[float, float, float, float]:
    """`minx,miny,maxx,maxy` in lon/lat degrees, or 400."""
    parts = text_value(raw, "bbox").split(",")
    if len(parts) != 4:
        raise BadRequest("bbox 必须是 minx,miny,maxx,maxy 四个数")
    minx, maxx = (parse_float(parts[i], "bbox", -180, 180) for i in (0, 2))
    miny, maxy = (parse_float(parts[i], "bbox", -90, 90) for i in (1, 3))
    if minx >= maxx or miny >= maxy:
        raise BadRequest("bbox 的最小值必须小于最大值")
    return minx, miny, maxx, maxy


def parse_choice(raw, name: str, choices) -> str:
    """One of a fixed set of words, or 400 listing them."""
    if not isinstance(raw, str) or raw not in choices:
        raise BadRequest(f"参数 {name} 只能是 {', '.join(choices)}")
    return raw
