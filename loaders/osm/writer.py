"""Write the rows read from an OSM file: COPY into temporary staging tables, then upsert.

Table and column names come only from the fixed mapping below; every value travels through COPY
or bound parameters. The caller runs everything in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import shapely
from sqlalchemy import Connection, text
from sqlalchemy.dialects import postgresql

from geodata.catalog import SRID
from geodata.models import Base
from loaders.osm.reader import Row, Skipped


@dataclass(frozen=True)
class Target:
    """How one table is staged and written."""

    columns: tuple[str, ...]  # attribute columns after seq and ref (types from the models)
    upsert: str  # SQL writing from the staging table; RETURNING one `inserted` flag per row


@dataclass
class Written:
    """Outcome of writing one table."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    retired: int = 0


def upsert_sql(table: str, columns: tuple[str, ...], keep: tuple[str, ...] = ()) -> str:
    """INSERT … ON CONFLICT (code) DO UPDATE of the changed rows; `keep` columns are not updated."""
    names = ", ".join(("code", *columns, "geom"))
    updated = [c for c in (*columns, "geom") if c not in keep]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
    olds = ", ".join(f"t.{c}" for c in updated)
    news = ", ".join(f"EXCLUDED.{c}" for c in updated)
    return (
        f"INSERT INTO {table} AS t ({names}) "
        f"SELECT ref, {', '.join(columns)}, geom FROM osm_stage_{table} ORDER BY seq "
        f"ON CONFLICT (code) DO UPDATE SET {sets} WHERE ({olds}) IS DISTINCT FROM ({news}) "
        "RETURNING (t.xmax = 0) AS inserted"
    )


TARGETS: dict[str, Target] = {
    "green_space": Target(
        ("kind", "name"),
        upsert_sql("green_space", ("kind", "name")),
    ),
    "land_parcel": Target(
        ("land_use", "name", "population"),
        # A population entered locally is kept when OSM has none.
        upsert_sql("land_parcel", ("land_use", "name", "population")).replace(
            "population = EXCLUDED.population",
            "population = COALESCE(EXCLUDED.population, t.population)",
        ),
    ),
    "sanitation_facility": Target(
        ("kind", "name", "opening_hours"),
        upsert_sql("sanitation_facility", ("kind", "name", "opening_hours")),
    ),
    "parking_lot": Target(
        ("name", "capacity", "lot_type", "fee"),
        upsert_sql("parking_lot", ("name", "capacity", "lot_type", "fee")),
    ),
    "camera": Target(
        ("name", "direction_deg"),
        upsert_sql("camera", ("name", "direction_deg")),
    ),
    "component": Target(
        ("class_code", "name"),
        # Status, dates and the other archive fields belong to the city's own staff.
        "INSERT INTO component AS t (code, class_code, name, data_source, remark, geom) "
        "SELECT code, class_code, name, '其他', ref, geom FROM osm_stage_component "
        "WHERE code IS NOT NULL ORDER BY seq "
        "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, geom = EXCLUDED.geom "
        "WHERE (t.name, t.geom) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.geom) "
        "RETURNING (t.xmax = 0) AS inserted",
    ),
    "road": Target(
        ("road_class", "name", "width_m"),
        # Roads have no code column: an identical centreline is the same road.
        "INSERT INTO road (road_class, name, width_m, geom) "
        "SELECT road_class, name, width_m, geom FROM osm_stage_road s "
        "WHERE NOT EXISTS (SELECT 1 FROM road r WHERE r.geom ~= s.geom AND r.geom = s.geom) "
        "ORDER BY seq RETURNING true AS inserted",
    ),
}

ROAD_UPDATE = text(
    "UPDATE road r SET road_class = s.road_class, name = s.name, width_m = s.width_m "
    "FROM osm_stage_road s WHERE r.geom ~= s.geom AND r.geom = s.geom "
    "AND (r.road_class, r.name, r.width_m) IS DISTINCT FROM (s.road_class, s.name, s.width_m) "
    "RETURNING false AS inserted"
)

# --- components: district by one spatial join, codes continuing each district+class serial -----

COMPONENT_DISTRICT = text(
    "UPDATE osm_stage_component s SET district = COALESCE((SELECT a.code FROM admin_area a "
    "WHERE a.level = 'district' AND ST_Intersects(a.geom, s.geom) ORDER BY a.code LIMIT 1), "
    "CAST(:fallback AS text))"
)
COMPONENT_KNOWN = text(
    "UPDATE osm_stage_component s SET code = c.code FROM component c "
    "WHERE c.remark = s.ref AND c.class_code = s.class_code AND left(c.code, 6) = s.district"
)
COMPONENT_NEW = text(
    "UPDATE osm_stage_component s SET code = CASE WHEN n.serial <= 999999 "
    "THEN s.district || s.class_code || lpad(n.serial::text, 6, '0') END, serial = n.serial "
    "FROM (SELECT s2.seq, COALESCE(m.top, 0) + row_number() OVER ("
    "  PARTITION BY s2.district, s2.class_code ORDER BY s2.seq) AS serial "
    "  FROM osm_stage_component s2 LEFT JOIN ("
    "    SELECT left(code, 10) AS prefix, max(right(code, 6)::int) AS top FROM component "
    "    WHERE length(code) = 16 AND left(code, 10) IN "
    "      (SELECT district || class_code FROM osm_stage_component WHERE district IS NOT NULL) "
    "    GROUP BY 1) m ON m.prefix = s2.district || s2.class_code "
    "  WHERE s2.code IS NULL AND s2.district IS NOT NULL) n "
    "WHERE s.seq = n.seq"
)
COMPONENT_UNCODED = text(
    "SELECT ref, district IS NULL AS outside FROM osm_stage_component "
    "WHERE code IS NULL ORDER BY seq"
)
# An OSM object whose class or district changed got a new code: its old component is retired.
COMPONENT_RETIRE = text(
    "UPDATE component c SET status = '移除', change_date = current_date "
    "FROM osm_stage_component s WHERE c.remark = s.ref AND s.code IS NOT NULL "
    "AND c.status <> '移除' AND NOT EXISTS "
    "(SELECT 1 FROM osm_stage_component k WHERE k.ref = c.remark AND k.code = c.code) "
    "RETURNING c.id"
)
OUTSIDE = "不在任何区县范围内（可用 --district 指定）"
FULL = "该区县该小类的 6 位流水号已用尽"


def create_stage(conn: Connection, table: str) -> None:
    """A temporary staging table for one target, dropped at commit."""
    extra = ", district text, code text, serial bigint" if table == "component" else ""
    columns = ", ".join(f"{name} {sql_type(table, name)}" for name in TARGETS[table].columns)
    conn.execute(
        text(
            f"CREATE TEMP TABLE osm_stage_{table} (seq integer PRIMARY KEY, ref text NOT NULL, "
            f"{columns}, geom {sql_type(table, 'geom')} NOT NULL{extra}) ON COMMIT DROP"
        )
    )


def sql_type(table: str, column: str) -> str:
    """The column's SQL type as the models declare it (one source of truth for the schema)."""
    return Base.metadata.tables[table].c[column].type.compile(dialect=postgresql.dialect())


def ewkb(geom) -> str:
    """Hex EWKB of a shapely geometry in EPSG:4490 (OSM's WGS84 taken as CGCS2000)."""
    return shapely.to_wkb(shapely.set_srid(geom, SRID), hex=True, include_srid=True)


def copy_rows(conn: Connection, table: str, rows: list[Row]) -> None:
    """COPY the rows of one table into its staging table."""
    names = list(TARGETS[table].columns)
    columns = ", ".join(("seq", "ref", *names, "geom"))
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY osm_stage_{table} ({columns}) FROM STDIN") as copy:
        for seq, row in enumerate(rows):
            copy.write_row((seq, row.ref, *(row.attrs[n] for n in names), ewkb(row.geom)))


def tally(result, staged: int, written: Written) -> Written:
    """Add the RETURNING flags of one statement to the counts."""
    flags = [row.inserted for row in result]
    written.inserted += sum(flags)
    written.updated += len(flags) - sum(flags)
    written.unchanged = staged - written.inserted - written.updated - len(written.skipped)
    return written


def code_components(conn: Connection, fallback: str | None) -> list[Skipped]:
    """Give each staged component its 16-digit code; returns those that could not get one."""
    conn.execute(COMPONENT_DISTRICT, {"fallback": fallback})
    conn.execute(COMPONENT_KNOWN)
    conn.execute(COMPONENT_NEW)
    return [
        Skipped("component", ref, OUTSIDE if outside else FULL)
        for ref, outside in conn.execute(COMPONENT_UNCODED)
    ]


def write_table(conn: Connection, table: str, rows: list[Row], fallback: str | None) -> Written:
    """Stage and write the rows of one table."""
    written = Written()
    if not rows:
        return written
    create_stage(conn, table)
    copy_rows(conn, table, rows)
    if table == "component":
        written.skipped = code_components(conn, fallback)
        written.retired = len(conn.execute(COMPONENT_RETIRE).all())
    if table == "road":
        tally(conn.execute(ROAD_UPDATE), len(rows), written)
    return tally(conn.execute(text(TARGETS[table].upsert)), len(rows), written)
