"""Which OpenStreetMap tags feed which of our tables, and the attributes derived from them.

Pure functions over a tag dict: no osmium, no database. Each rule returns the attribute dict of
one target row, or a `Skip` with the Chinese reason why the object cannot be imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Tags = Mapping[str, str]

# The geometry each table needs: polygons come from osmium's area assembly, lines from ways,
# points from nodes (or a point on the surface of an area).
GEOMETRY_KIND = {
    "green_space": "polygon",
    "land_parcel": "polygon",
    "sanitation_facility": "point",
    "parking_lot": "point",
    "camera": "point",
    "component": "point",
    "road": "line",
}

TABLE_LABELS = {
    "green_space": "公园绿地",
    "land_parcel": "居住用地",
    "sanitation_facility": "环卫设施",
    "parking_lot": "停车场",
    "camera": "视频监控",
    "component": "部件（井盖、路灯）",
    "road": "道路",
}

# Keys an object must carry to matter at all (osmium.filter.KeyFilter).
KEYS = ("leisure", "landuse", "amenity", "man_made", "manhole", "highway")

# CJJ/T 85-2017: parks are 公园绿地 (G1); gardens, playgrounds and village greens are small
# 游园 (G14). landuse=grass is left out on purpose: in OSM it marks verges and lawns, not parks,
# and would inflate the park coverage indicator.
GREEN_KINDS = {
    ("leisure", "park"): "G1",
    ("landuse", "recreation_ground"): "G1",
    ("leisure", "garden"): "G14",
    ("leisure", "playground"): "G14",
    ("landuse", "village_green"): "G14",
}

SANITATION_KINDS = {
    "toilets": "公共厕所",
    "waste_basket": "垃圾箱",
    "recycling": "垃圾收集点",
    "waste_disposal": "垃圾收集点",  # a large household-waste container: a collection point
    "waste_transfer_station": "垃圾中转站",
}

PARKING_TYPES = {
    "underground": "地下",
    "multi-storey": "立体",
    "rooftop": "立体",
    "street_side": "路内",
    "lane": "路内",
    "on_street": "路内",
}

FEES = {"yes": "收费", "no": "免费"}

# manhole=* → 部件小类 (GB/T 30428.2); anything else is 0114 无主井盖.
MANHOLE_CLASSES = {
    "water": "0101",
    "sewer": "0102",
    "drain": "0103",
    "rain": "0103",
    "stormwater": "0103",
    "power": "0105",
    "telecom": "0107",
    "heat": "0110",
    "gas": "0111",
}
UNKNOWN_MANHOLE = "0114"
STREET_LAMP = "0118"

ROAD_CLASSES = {
    "motorway": "快速路", "motorway_link": "快速路", "trunk": "快速路", "trunk_link": "快速路",
    "primary": "主干路", "primary_link": "主干路",
    "secondary": "次干路", "secondary_link": "次干路",
    "tertiary": "支路", "tertiary_link": "支路", "unclassified": "支路",
    "residential": "街巷", "service": "街巷", "living_street": "街巷",
}  # fmt: skip

COMPASS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE",
           "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")  # fmt: skip
CAMERA_TYPES = ("camera", "ALPR")
NOT_PUBLIC = ("private", "no")
NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Skip:
    """An object that belongs to a table but cannot be imported, with the reason."""

    reason: str


Rule = Callable[[Tags], "dict | Skip | None"]


def name_of(tags: Tags, limit: int = 100) -> str | None:
    """The Chinese name when there is one, else the local name, cut to the column length."""
    for key in ("name:zh", "name:zh-Hans", "name:zh-CN", "name"):
        value = (tags.get(key) or "").strip()
        if value:
            return value[:limit]
    return None


def number(value: str | None) -> float | None:
    """A plain non-negative number from a tag value, else None ('约50', '10;20' are not)."""
    match = NUMBER.match(value or "")
    return float(match.group(1)) if match else None


def direction(value: str | None) -> float | None:
    """Viewing direction in degrees [0, 360) from degrees or a compass point (first of a list)."""
    first = (value or "").split(";")[0].strip()
    if first.upper() in COMPASS:
        return COMPASS.index(first.upper()) * 22.5
    degrees = number(first)
    return None if degrees is None else degrees % 360


def green_space(tags: Tags) -> dict | Skip | None:
    """Parks, gardens, playgrounds → green_space (CJJ/T 85 kind)."""
    kind = next((k for (key, v), k in GREEN_KINDS.items() if tags.get(key) == v), None)
    if kind is None:
        return None
    if tags.get("access") in NOT_PUBLIC:
        return Skip("非公共开放（access=private/no）")
    return {"kind": kind, "name": name_of(tags)}


def land_parcel(tags: Tags) -> dict | Skip | None:
    """landuse=residential → 居住用地 (R) with the population where the tag is a number."""
    if tags.get("landuse") != "residential":
        return None
    population = number(tags.get("population"))
    return {"land_use": "R", "name": name_of(tags),
            "population": None if population is None else int(population)}  # fmt: skip


def sanitation_facility(tags: Tags) -> dict | Skip | None:
    """Toilets, waste baskets, recycling, waste disposal, transfer stations → 环卫设施."""
    kind = SANITATION_KINDS.get(tags.get("amenity", ""))
    if kind is None:
        return None
    if kind == "公共厕所" and tags.get("access") in NOT_PUBLIC:
        return Skip("非公共厕所（access=private/no）")
    hours = (tags.get("opening_hours") or "").strip()[:60] or None
    return {"kind": kind, "name": name_of(tags), "opening_hours": hours}


def spaces(value: str | None) -> int | None:
    """The number of spaces from a capacity tag: a positive integer, else unknown (None)."""
    capacity = number(value)
    if capacity is None or capacity != int(capacity) or capacity <= 0:
        return None
    return int(capacity)


def parking_lot(tags: Tags) -> dict | Skip | None:
    """amenity=parking → 停车场. Most OSM lots carry no capacity tag, and some carry one that is
    not a count ('约50', '10;20'): they are real lots all the same, imported with the capacity
    unknown (NULL), which the parking measures leave out of rates but count as lots."""
    if tags.get("amenity") != "parking":
        return None
    fee = (tags.get("fee") or "").strip()
    return {"name": name_of(tags) or "停车场", "capacity": spaces(tags.get("capacity")),
            "lot_type": PARKING_TYPES.get(tags.get("parking", ""), "路外"),
            "fee": FEES.get(fee, fee[:100] or None)}  # fmt: skip


def camera(tags: Tags) -> dict | Skip | None:
    """man_made=surveillance → 视频监控; an untyped one counts as a camera (OSM's usual meaning)."""
    if tags.get("man_made") != "surveillance":
        return None
    kind = tags.get("surveillance:type", "camera")
    if kind not in CAMERA_TYPES:
        return Skip(f"非摄像头监控（surveillance:type={kind[:20]}）")
    return {"name": name_of(tags),
            "direction_deg": direction(tags.get("camera:direction") or tags.get("direction"))}  # fmt: skip


def component(tags: Tags) -> dict | Skip | None:
    """manhole=* → the 井盖 class of its utility; highway=street_lamp → 0118 路灯."""
    if "manhole" in tags:
        kind = tags["manhole"]
        code = MANHOLE_CLASSES.get(kind, UNKNOWN_MANHOLE)
        return {"class_code": code, "name": name_of(tags)}
    if tags.get("highway") == "street_lamp":
        return {"class_code": STREET_LAMP, "name": name_of(tags)}
    return None


def road(tags: Tags) -> dict | Skip | None:
    """highway=* of a driven class → road centreline (footways, paths, steps are not ours)."""
    road_class = ROAD_CLASSES.get(tags.get("highway", ""))
    if road_class is None:
        return None
    if tags.get("area") == "yes":
        return Skip("面状道路（area=yes）不作为中心线导入")
    width = number(tags.get("width"))
    return {"road_class": road_class, "name": name_of(tags, 60),
            "width_m": width if width else None}  # fmt: skip


RULES: dict[str, Rule] = {
    "green_space": green_space,
    "land_parcel": land_parcel,
    "sanitation_facility": sanitation_facility,
    "parking_lot": parking_lot,
    "camera": camera,
    "component": component,
    "road": road,
}


def classify(tags: Tags) -> dict[str, dict | Skip]:
    """Every table this object belongs to, with its row attributes or why it is skipped."""
    found = {}
    for table, rule in RULES.items():
        result = rule(tags)
        if result is not None:
            found[table] = result
    return found
