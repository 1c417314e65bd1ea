"""The rule tables of the coverage analyses (服务半径规则), in one place.

Parks (GB/T 50563-2010 城市园林绿化评价标准, CJJ/T 85-2017): a park of at least 5,000 m² serves
500 m, 2,000–5,000 m² serves 300 m, and inside a historic district (历史文化街区) a park of at
least 1,000 m² serves 300 m; smaller parks serve nothing. A park takes the largest radius of the
rules it meets. Radii are measured from the park boundary, in metres.

Other facilities serve a fixed radius from their position. A run may replace any rule; the
defaults are restored by not passing any.
"""

from __future__ import annotations

from dataclasses import dataclass

from errors import BadRequest


@dataclass(frozen=True)
class ParkRule:
    """Parks of at least `min_area_m2` (only in historic districts, if so marked) serve `radius_m`."""

    min_area_m2: float
    radius_m: float
    historic_only: bool = False

    def text(self) -> str:
        """The rule in the `rules=` parameter syntax."""
        return f"{self.min_area_m2:g}:{self.radius_m:g}" + (":h" if self.historic_only else "")


PARK_RULES: tuple[ParkRule, ...] = (
    ParkRule(5000, 500),
    ParkRule(2000, 300),
    ParkRule(1000, 300, historic_only=True),
)

# Facility kind -> (Chinese title, sanitation kind in the catalogue, default radius in metres).
FACILITY_RULES: dict[str, tuple[str, str, float]] = {
    "toilet": ("公共厕所", "公共厕所", 300.0),
    "collection_point": ("垃圾收集点", "垃圾收集点", 70.0),
    "transfer_station": ("垃圾中转站", "垃圾中转站", 1000.0),
}
MAX_RADIUS_M = 5000.0


def park_radius(area_m2: float, historic: bool, rules: tuple[ParkRule, ...] = PARK_RULES) -> float:
    """The service radius of a park: the largest of the rules it meets (0: serves nothing)."""
    return max((r.radius_m for r in rules
                if area_m2 >= r.min_area_m2 and (historic or not r.historic_only)), default=0.0)  # fmt: skip


def size_class(area_m2: float, historic: bool, rules: tuple[ParkRule, ...] = PARK_RULES) -> str:
    """A readable size class: the rule that gives the park its radius."""
    radius = park_radius(area_m2, historic, rules)
    if radius == 0:
        return "不计服务半径"
    rule = next(r for r in sorted(rules, key=lambda r: -r.min_area_m2)
                if area_m2 >= r.min_area_m2 and (historic or not r.historic_only)
                and r.radius_m == radius)  # fmt: skip
    place = "历史地段" if rule.historic_only else ""
    return f"{place}≥{rule.min_area_m2:,.0f} m²"


def parse_park_rules(raw: str | None) -> tuple[ParkRule, ...]:
    """`min_area:radius[:h],…` (e.g. `5000:500,2000:300,1000:300:h`), or the defaults; 400 if bad."""
    if raw is None or raw == "":
        return PARK_RULES
    rules = []
    for part in raw.split(",")[:10]:
        fields = part.strip().split(":")
        try:
            area, radius = float(fields[0]), float(fields[1])
        except (ValueError, IndexError):
            raise BadRequest("rules 格式为 最小面积:半径[:h]，多条用逗号分隔") from None
        if not (0 <= area <= 1e7 and 0 < radius <= MAX_RADIUS_M) or fields[2:] not in ([], ["h"]):
            raise BadRequest("rules 中面积须在 0–10,000,000 m²、半径须在 0–5,000 m 之间")
        rules.append(ParkRule(area, radius, fields[2:] == ["h"]))
    return tuple(rules)


def rules_json(rules: tuple[ParkRule, ...]) -> list[dict]:
    """The rule table as JSON."""
    return [{"min_area_m2": r.min_area_m2, "radius_m": r.radius_m,
             "historic_only": r.historic_only} for r in rules]  # fmt: skip
