"""案件热力金字塔: case counts pre-aggregated per web-mercator tile, period and heat filter.

`case_heat_cell` holds, for every web-mercator tile (z, x, y; y counted from the north as in XYZ
tiles) of zooms 11–17, every month of the city clock and every (class, source, status), the
number of cases and the sums of their lon/lat in nano-degrees (so the mean position of any sum of
rows is exact), plus the same rows for every case whatever its values (class, source and status
'*', read by an unfiltered heat); zoom 17 (≈ 306 m tiles) also has one row per day, for windows that start or end
inside a month. The heat map sums these rows for views whose grid is zoom 17 or coarser.

Kept by statement-level triggers on `case_record` (insert, update, delete with transition tables:
each statement adds its new rows and subtracts its old ones, so a case changing status moves its
count; truncate empties the pyramid). `case_heat_rebuild()` recomputes it from scratch
(set-based; the upgrade fills it that way).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CITY_ZONE = "'Asia/Shanghai'"  # frozen copy of geodata.catalog.CITY_TIMEZONE
HALF = "20037508.342789244::float8"  # frozen copy of geodata.catalog.WEB_MERCATOR_HALF
MIN_Z, MAX_Z = 11, 17  # frozen copies of analytics.heat.PYRAMID_ZOOMS
SIDE = f"(2 * {HALF} / 2 ^ {MAX_Z})"  # the side of a zoom-17 tile, EPSG:3857 metres

KEY = "z, grain, status, period, x, y, class_code, source"  # status first: "*" rows together
TABLE = f"""
CREATE TABLE case_heat_cell (
  z smallint NOT NULL,
  x integer NOT NULL,
  y integer NOT NULL,
  grain text COLLATE "C" NOT NULL CONSTRAINT ck_case_heat_cell_grain CHECK (grain IN ('day', 'month')),
  period date NOT NULL,
  class_code varchar(5) COLLATE "C" NOT NULL,
  source varchar(10) COLLATE "C" NOT NULL,
  status varchar(4) COLLATE "C" NOT NULL,
  n integer NOT NULL,
  sum_lon bigint NOT NULL,
  sum_lat bigint NOT NULL,
  CONSTRAINT pk_case_heat_cell PRIMARY KEY ({KEY})
)"""


def case_rows(table: str, sign: int) -> str:
    """SQL: one signed row per case of `table` with its zoom-17 tile, day and filter values."""
    return f"""
    SELECT floor((ST_X(m.p) + {HALF}) / {SIDE})::int AS x,
           floor(({HALF} - ST_Y(m.p)) / {SIDE})::int AS y,
           (r.reported_at AT TIME ZONE {CITY_ZONE})::date AS day,
           coalesce(r.event_class_code, r.component_class_code) AS class_code,
           r.source, r.status, {sign} AS n,
           {sign} * round(ST_X(r.geom) * 1e9)::bigint AS lon,
           {sign} * round(ST_Y(r.geom) * 1e9)::bigint AS lat
    FROM {table} r CROSS JOIN LATERAL (SELECT ST_Transform(r.geom, 3857) AS p) m"""


ALL = "'*'"  # the class, source and status of the rows counting every case
MONTH = "(day - extract(day FROM day)::int + 1)"  # the first day of the day's month
COLUMNS = "z, x, y, grain, period, class_code, source, status, n, sum_lon, sum_lat"
UPSERT = f"""
  ON CONFLICT ({KEY}) DO UPDATE
  SET n = h.n + EXCLUDED.n, sum_lon = h.sum_lon + EXCLUDED.sum_lon,
      sum_lat = h.sum_lat + EXCLUDED.sum_lat"""


def months(z: int) -> str:
    """SQL: the CTE of zoom z's monthly rows, summed from zoom z + 1's (from the days at 17)."""
    if z == MAX_Z:
        return f"""m{z} AS (
    SELECT {z}::smallint AS z, x, y, 'month' AS grain, {MONTH} AS period, class_code, source,
           status, sum(n)::int AS n, sum(lon)::bigint AS lon, sum(lat)::bigint AS lat
    FROM moved GROUP BY x, y, 4, 5, class_code, source, status)"""
    return f"""m{z} AS (
    SELECT {z}::smallint AS z, x >> 1 AS x, y >> 1 AS y, 'month' AS grain, period, class_code,
           source, status, sum(n)::int AS n, sum(lon)::bigint AS lon, sum(lat)::bigint AS lat
    FROM m{z + 1} GROUP BY x >> 1, y >> 1, period, class_code, source, status)"""


def apply(rows: str, *, upsert: bool = True) -> str:
    """SQL: add the signed case rows `rows` to every level of the pyramid, drop emptied rows
    (`upsert=False`: into an empty pyramid)."""
    levels = ",\n  ".join(months(z) for z in range(MAX_Z, MIN_Z - 1, -1))
    monthly = "\n    UNION ALL ".join(f"SELECT * FROM m{z}" for z in range(MIN_Z, MAX_Z + 1))
    return f"""
  WITH d AS ({rows}),
  base AS (
    SELECT x, y, day, coalesce(class_code, {ALL}) AS class_code,
           coalesce(source, {ALL}) AS source, coalesce(status, {ALL}) AS status,
           sum(n)::int AS n, sum(lon)::bigint AS lon, sum(lat)::bigint AS lat
    FROM d GROUP BY GROUPING SETS ((x, y, day, class_code, source, status), (x, y, day))),
  moved AS (SELECT * FROM base WHERE n <> 0 OR lon <> 0 OR lat <> 0),
  {levels},
  cells AS (
    {monthly}
    UNION ALL SELECT {MAX_Z}::smallint, x, y, 'day', day, class_code, source, status, n, lon, lat
    FROM moved)
  INSERT INTO case_heat_cell AS h ({COLUMNS})
  SELECT * FROM cells ORDER BY {KEY}{UPSERT if upsert else ""};
  DELETE FROM case_heat_cell WHERE n = 0;"""


def trigger_function(name: str, rows: str) -> str:
    """SQL: a statement trigger function applying `rows` (from its transition tables)."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  {apply(rows)}
  RETURN NULL;
END $fn$"""


NEW = case_rows("new_rows", 1)
OLD = case_rows("old_rows", -1)
FUNCTIONS = {
    "case_heat_on_insert": trigger_function("case_heat_on_insert", NEW),
    "case_heat_on_update": trigger_function("case_heat_on_update", f"{NEW} UNION ALL {OLD}"),
    "case_heat_on_delete": trigger_function("case_heat_on_delete", OLD),
    "case_heat_on_truncate": """
CREATE FUNCTION case_heat_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  DELETE FROM case_heat_cell;
  RETURN NULL;
END $fn$""",
    "case_heat_rebuild": f"""
CREATE FUNCTION case_heat_rebuild() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  LOCK TABLE case_record IN SHARE MODE;
  PERFORM set_config('work_mem', '256MB', true);
  TRUNCATE case_heat_cell;
  ALTER TABLE case_heat_cell DROP CONSTRAINT pk_case_heat_cell;
  {apply(case_rows("case_record", 1), upsert=False)}
  ALTER TABLE case_heat_cell ADD CONSTRAINT pk_case_heat_cell PRIMARY KEY ({KEY});
END $fn$""",
}
TRIGGERS = (
    "CREATE TRIGGER case_heat_insert AFTER INSERT ON case_record REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION case_heat_on_insert()",
    "CREATE TRIGGER case_heat_update AFTER UPDATE ON case_record REFERENCING OLD TABLE AS "
    "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION case_heat_on_update()",
    "CREATE TRIGGER case_heat_delete AFTER DELETE ON case_record REFERENCING OLD TABLE AS "
    "old_rows FOR EACH STATEMENT EXECUTE FUNCTION case_heat_on_delete()",
    "CREATE TRIGGER case_heat_truncate AFTER TRUNCATE ON case_record FOR EACH STATEMENT "
    "EXECUTE FUNCTION case_heat_on_truncate()",
)


def upgrade() -> None:
    """Create the pyramid, its functions and triggers, and fill it from the existing cases."""
    op.execute(TABLE)
    op.execute("CREATE INDEX ix_case_heat_cell_empty ON case_heat_cell (n) WHERE n = 0")
    for body in (*FUNCTIONS.values(), *TRIGGERS):
        op.execute(body)
    op.execute("SELECT case_heat_rebuild()")
    op.execute("ANALYZE case_heat_cell")


def downgrade() -> None:
    """Drop the triggers, functions and the pyramid."""
    for name in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS case_heat_{name} ON case_record")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute("DROP TABLE IF EXISTS case_heat_cell")
