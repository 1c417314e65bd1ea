"""Parks (公园绿地) as service facilities: their radius by the rule table and their service zone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from analytics import coverage as cov
from analytics.coverage import Area
from analytics.coverage_rules import ParkRule, park_radius, size_class
from geodata.catalog import PARK_KINDS, SRID

PARKS = text(
    f"""
    WITH a AS (SELECT ST_GeomFromWKB(:wkb, :srid) AS g)
    SELECT g.id, g.code, g.name, g.kind, g.historic_district,
           ST_AsBinary(ST_Transform(g.geom, :srid)) AS geom
    FROM green_space g, a
    WHERE g.kind = ANY(:kinds) AND g.geom && ST_Transform(ST_Expand(a.g, :reach), {SRID})
      AND ST_DWithin(ST_Transform(g.geom, :srid), a.g, :reach)
    ORDER BY g.id
    """
)


@dataclass
class Parks:
    """Qualifying parks near the area (metric), each with its rule radius."""

    ids: list
    codes: list
    names: list
    historic: np.ndarray
    geoms: np.ndarray
    radius: np.ndarray

    @property
    def area(self) -> np.ndarray:
        """Each park's area in m² (metric CRS)."""
        return shapely.area(self.geoms)

    def zones(self) -> np.ndarray:
        """Each park's service zone: its boundary buffered by its radius (empty if none)."""
        return np.where(self.radius > 0, shapely.buffer(self.geoms, self.radius, quad_segs=8),
                        shapely.Polygon())  # fmt: skip

    def with_park(self, geom: BaseGeometry, historic: bool, rules: tuple[ParkRule, ...],
                  name: str = "拟建公园") -> Parks:  # fmt: skip
        """These parks plus a candidate (nothing is written anywhere)."""
        radius = park_radius(geom.area, historic, rules)
        return Parks([*self.ids, None], [*self.codes, None], [*self.names, name],
                     np.append(self.historic, historic), np.append(self.geoms, geom),
                     np.append(self.radius, radius))  # fmt: skip


def load_parks(conn: Connection, area: Area, rules: tuple[ParkRule, ...]) -> Parks:
    """Parks of the park kinds within the largest radius of the area (they serve into it)."""
    reach = max((r.radius_m for r in rules), default=0.0)
    rows = conn.execute(PARKS, {**area.sql_params,
                                "kinds": list(PARK_KINDS), "reach": reach}).all()  # fmt: skip
    geoms = np.array([shapely.from_wkb(bytes(r.geom)) for r in rows], dtype=object)
    historic = np.array([bool(r.historic_district) for r in rows], dtype=bool)
    radius = np.array([park_radius(a, h, rules) for a, h in zip(shapely.area(geoms), historic,
                                                                  strict=True)], dtype=float)  # fmt: skip
    return Parks([r.id for r in rows], [r.code for r in rows], [r.name for r in rows], historic,
                 geoms, radius)  # fmt: skip


def park_rows(parks: Parks, area: Area, covered_land: np.ndarray,
              rules: tuple[ParkRule, ...]) -> list[dict]:  # fmt: skip
    """Per park touching the area: size class, radius, and the covered residential area within
    its radius (in the chosen mode)."""
    zones = parks.zones()
    served = np.zeros(len(zones))
    land = covered_land[~shapely.is_empty(covered_land)] if len(covered_land) else covered_land
    if len(land) and len(zones):
        zone_i, land_i = shapely.STRtree(land).query(zones, predicate="intersects")
        shapely.prepare(zones)
        areas = shapely.area(land[land_i])  # most covered pieces lie wholly in a zone near them
        cut = np.flatnonzero(~shapely.contains(zones[zone_i], land[land_i]))
        areas[cut] = shapely.area(cov.intersection(zones[zone_i[cut]], land[land_i[cut]]))
        served = np.bincount(zone_i, weights=areas, minlength=len(zones))
    inside, size = shapely.intersects(parks.geoms, area.geom), parks.area
    return [{"code": parks.codes[i], "name": parks.names[i], "area_m2": round(float(size[i]), 1),
             "historic_district": bool(parks.historic[i]), "radius_m": float(parks.radius[i]),
             "size_class": size_class(float(size[i]), bool(parks.historic[i]), rules),
             "served_area_m2": round(float(served[i]), 1)}
            for i in range(len(parks.geoms)) if inside[i]]  # fmt: skip
