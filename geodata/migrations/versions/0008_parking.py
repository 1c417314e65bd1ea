"""停车: unknown capacity, counted entries, and an hourly rollup kept up to date by triggers.

- `parking_lot.capacity` may be NULL (OSM lots without a capacity tag); when known it is > 0.
  The `parking_lot_status` view gives such lots the level 无数据 instead of 空闲.
- `parking_occupancy.entries` (NULL unless the lot counts them): vehicles that entered since the
  lot's previous reading; turnover uses it where recorded and estimates it from occupancy rises
  otherwise.
- `parking_hourly`: one row per lot and UTC hour with the seconds covered by readings, the
  occupied space-seconds, the seconds at ≥ 90 % of capacity, the highest reading, the arrivals and
  the readings counted. A reading holds until the lot's next reading, for at most one hour (so a
  gap in readings is unobserved time, not an empty lot). Statement-level triggers on
  `parking_occupancy` (insert, update, delete, truncate) and a row trigger on a capacity change
  recompute the touched hours, so every writer (demo, importer, API) keeps it current. Writers of
  readings are serialised by a table lock on the rollup; readers are not blocked.
- `parking_daily`: one row per lot and day of the city clock, the sums of that day's hourly rows
  plus the occupied and observed seconds of each of its 24 hours as arrays (index 1 = 00:00–01:00),
  recomputed from `parking_hourly` by the same refresh. A window of whole days reads 24 times
  fewer rows (a week of 2,000 lots: 14,000 rows instead of 336,000).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

HOLD = "interval '1 hour'"  # frozen copy of analytics.parking.HOLD_S
FULL_SHARE = "0.9"  # frozen copy of analytics.parking.FULL_SHARE
CITY_ZONE = "'Asia/Shanghai'"  # frozen copy of geodata.catalog.CITY_TIMEZONE

STATUS_VIEW = """
    SELECT l.*, o.occupied, o.observed_at,
           round(o.occupied::numeric / l.capacity, 2)::float AS occupancy,
           CASE WHEN o.occupied IS NULL OR l.capacity IS NULL THEN '无数据'
                WHEN o.occupied >= 0.9 * l.capacity THEN '紧张'
                WHEN o.occupied >= 0.6 * l.capacity THEN '较满' ELSE '空闲' END AS occupancy_level
    FROM parking_lot l LEFT JOIN LATERAL (
      SELECT occupied, observed_at FROM parking_occupancy p
      WHERE p.lot_id = l.id ORDER BY observed_at DESC LIMIT 1) o ON true"""

OLD_STATUS_VIEW = STATUS_VIEW.replace(" OR l.capacity IS NULL", "")

HOURLY = """
CREATE TABLE parking_hourly (
  lot_id bigint NOT NULL CONSTRAINT fk_parking_hourly_lot_id_parking_lot
    REFERENCES parking_lot (id) ON DELETE CASCADE,
  hour timestamptz NOT NULL,
  observed_s double precision NOT NULL DEFAULT 0,
  occupied_s double precision NOT NULL DEFAULT 0,
  full_s double precision NOT NULL DEFAULT 0,
  max_occupied integer,
  arrivals integer NOT NULL DEFAULT 0,
  readings integer NOT NULL DEFAULT 0,
  counted integer NOT NULL DEFAULT 0,
  CONSTRAINT pk_parking_hourly PRIMARY KEY (lot_id, hour)
)"""

DAILY = """
CREATE TABLE parking_daily (
  lot_id bigint NOT NULL CONSTRAINT fk_parking_daily_lot_id_parking_lot
    REFERENCES parking_lot (id) ON DELETE CASCADE,
  day date NOT NULL,
  observed_s double precision NOT NULL DEFAULT 0,
  occupied_s double precision NOT NULL DEFAULT 0,
  full_s double precision NOT NULL DEFAULT 0,
  max_occupied integer,
  arrivals integer NOT NULL DEFAULT 0,
  readings integer NOT NULL DEFAULT 0,
  counted integer NOT NULL DEFAULT 0,
  occupied_by_hour double precision[] NOT NULL,
  observed_by_hour double precision[] NOT NULL,
  CONSTRAINT pk_parking_daily PRIMARY KEY (lot_id, day)
)"""


def by_hour(column: str) -> str:
    """SQL: the 24 hourly sums of `column` of one lot's day as an array (0 where no row)."""
    slots = ", ".join(f"coalesce(sum(h.{column}) FILTER (WHERE x.hod = {i}), 0)" for i in range(24))
    return f"ARRAY[{slots}]"


# The days (city clock) of the span's hours, recomputed whole from the hourly rows.
DAY0 = f"(s.h0 AT TIME ZONE {CITY_ZONE})::date"
DAY1 = f"((s.h1 - interval '1 hour') AT TIME ZONE {CITY_ZONE})::date"
REFRESH_DAILY = f"""
  DELETE FROM parking_daily d USING parking_span s
  WHERE d.lot_id = s.lot_id AND d.day >= {DAY0} AND d.day <= {DAY1};
  INSERT INTO parking_daily (lot_id, day, observed_s, occupied_s, full_s, max_occupied, arrivals,
                             readings, counted, occupied_by_hour, observed_by_hour)
  SELECT h.lot_id, x.day, sum(h.observed_s), sum(h.occupied_s), sum(h.full_s),
         max(h.max_occupied), sum(h.arrivals), sum(h.readings), sum(h.counted),
         {by_hour("occupied_s")}, {by_hour("observed_s")}
  FROM parking_span s JOIN parking_hourly h ON h.lot_id = s.lot_id
   AND h.hour >= ({DAY0})::timestamp AT TIME ZONE {CITY_ZONE}
   AND h.hour < ({DAY1} + 1)::timestamp AT TIME ZONE {CITY_ZONE}
  CROSS JOIN LATERAL (SELECT t.l::date AS day, extract(hour FROM t.l)::int AS hod
                      FROM (SELECT h.hour AT TIME ZONE {CITY_ZONE} AS l) t) x
  GROUP BY h.lot_id, x.day;"""

REFRESH = f"""
CREATE FUNCTION parking_hourly_refresh(lots bigint[], los timestamptz[], his timestamptz[])
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  LOCK TABLE parking_hourly IN SHARE ROW EXCLUSIVE MODE;
  CREATE TEMP TABLE IF NOT EXISTS parking_span (lot_id bigint, h0 timestamptz, h1 timestamptz)
    ON COMMIT DROP;
  DELETE FROM parking_span;
  INSERT INTO parking_span
  SELECT c.lot_id, date_trunc('hour', min(c.lo) - {HOLD}, 'UTC'),
         date_trunc('hour', max(c.hi) + {HOLD}, 'UTC') + interval '1 hour'
  FROM unnest(lots, los, his) AS c(lot_id, lo, hi) GROUP BY c.lot_id;
  DELETE FROM parking_hourly h USING parking_span s
  WHERE h.lot_id = s.lot_id AND h.hour >= s.h0 AND h.hour < s.h1;
  INSERT INTO parking_hourly (lot_id, hour, observed_s, occupied_s, full_s, max_occupied,
                              arrivals, readings, counted)
  WITH r AS (
    SELECT o.lot_id, s.h0, s.h1, l.capacity, o.observed_at AS t, o.occupied, o.entries,
           lag(o.observed_at) OVER w AS pt, lag(o.occupied) OVER w AS pocc,
           lead(o.observed_at) OVER w AS nt
    FROM parking_span s
    JOIN parking_lot l ON l.id = s.lot_id
    JOIN parking_occupancy o ON o.lot_id = s.lot_id
     AND o.observed_at >= s.h0 - {HOLD} AND o.observed_at < s.h1 + {HOLD}
    WINDOW w AS (PARTITION BY o.lot_id ORDER BY o.observed_at)),
  held AS (SELECT r.*, least(coalesce(r.nt, r.t + {HOLD}), r.t + {HOLD}) AS e FROM r),
  piece AS (
    SELECT held.lot_id, g.h, held.occupied, held.capacity,
           extract(epoch FROM least(held.e, g.h + interval '1 hour') - greatest(held.t, g.h)) AS s
    FROM held, generate_series(date_trunc('hour', held.t, 'UTC'), held.e - interval '1 microsecond',
                               interval '1 hour') AS g(h)
    WHERE g.h >= held.h0 AND g.h < held.h1),
  timed AS (
    SELECT lot_id, h, sum(s) AS observed_s, sum(occupied * s) AS occupied_s,
           coalesce(sum(s) FILTER (WHERE occupied >= {FULL_SHARE} * capacity), 0) AS full_s,
           max(occupied) AS max_occupied
    FROM piece WHERE s > 0 GROUP BY lot_id, h),
  counted AS (
    SELECT lot_id, date_trunc('hour', t, 'UTC') AS h, count(*) AS readings,
           count(entries) AS counted,
           coalesce(sum(coalesce(entries, CASE WHEN t - pt <= {HOLD}
                                               THEN greatest(occupied - pocc, 0) END)), 0) AS arrivals
    FROM held WHERE t >= h0 AND t < h1 GROUP BY lot_id, date_trunc('hour', t, 'UTC'))
  SELECT coalesce(a.lot_id, b.lot_id), coalesce(a.h, b.h), coalesce(a.observed_s, 0),
         coalesce(a.occupied_s, 0), coalesce(a.full_s, 0), a.max_occupied,
         coalesce(b.arrivals, 0), coalesce(b.readings, 0), coalesce(b.counted, 0)
  FROM timed a FULL JOIN counted b ON a.lot_id = b.lot_id AND a.h = b.h;{REFRESH_DAILY}
END $fn$"""

ON_NEW = """
CREATE FUNCTION parking_hourly_on_new() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM parking_hourly_refresh(array_agg(lot_id), array_agg(lo), array_agg(hi))
  FROM (SELECT lot_id, min(observed_at) AS lo, max(observed_at) AS hi FROM new_rows
        GROUP BY lot_id) c HAVING count(*) > 0;
  RETURN NULL;
END $fn$"""

ON_OLD = ON_NEW.replace("_on_new", "_on_old").replace("new_rows", "old_rows")

ON_CHANGE = """
CREATE FUNCTION parking_hourly_on_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM parking_hourly_refresh(array_agg(lot_id), array_agg(lo), array_agg(hi))
  FROM (SELECT lot_id, min(observed_at) AS lo, max(observed_at) AS hi
        FROM (SELECT lot_id, observed_at FROM new_rows
              UNION ALL SELECT lot_id, observed_at FROM old_rows) x
        GROUP BY lot_id) c HAVING count(*) > 0;
  RETURN NULL;
END $fn$"""

ON_TRUNCATE = """
CREATE FUNCTION parking_hourly_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- DELETE, not TRUNCATE: a TRUNCATE … CASCADE that reached the readings may hold the rollup too
  DELETE FROM parking_hourly;
  DELETE FROM parking_daily;
  RETURN NULL;
END $fn$"""

ON_CAPACITY = """
CREATE FUNCTION parking_hourly_on_capacity() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM parking_hourly_refresh(ARRAY[NEW.id], ARRAY[min(observed_at)], ARRAY[max(observed_at)])
  FROM parking_occupancy WHERE lot_id = NEW.id HAVING count(*) > 0;
  RETURN NULL;
END $fn$"""

TRIGGERS = (
    "CREATE TRIGGER parking_hourly_insert AFTER INSERT ON parking_occupancy "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION parking_hourly_on_new()",
    "CREATE TRIGGER parking_hourly_update AFTER UPDATE ON parking_occupancy "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION parking_hourly_on_change()",
    "CREATE TRIGGER parking_hourly_delete AFTER DELETE ON parking_occupancy "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION parking_hourly_on_old()",
    "CREATE TRIGGER parking_hourly_truncate AFTER TRUNCATE ON parking_occupancy "
    "FOR EACH STATEMENT EXECUTE FUNCTION parking_hourly_on_truncate()",
    "CREATE TRIGGER parking_hourly_capacity AFTER UPDATE OF capacity ON parking_lot FOR EACH ROW "
    "WHEN (OLD.capacity IS DISTINCT FROM NEW.capacity) EXECUTE FUNCTION parking_hourly_on_capacity()",
)
FUNCTIONS = ("parking_hourly_on_new", "parking_hourly_on_old", "parking_hourly_on_change",
             "parking_hourly_on_truncate", "parking_hourly_on_capacity")  # fmt: skip


def upgrade() -> None:
    """Nullable capacity, counted entries, the hourly and daily rollups (filled from existing
    readings)."""
    op.execute("ALTER TABLE parking_lot ALTER COLUMN capacity DROP NOT NULL")
    op.execute("ALTER TABLE parking_lot DROP CONSTRAINT ck_parking_lot_capacity")
    op.execute(
        "ALTER TABLE parking_lot ADD CONSTRAINT ck_parking_lot_capacity "
        "CHECK (capacity IS NULL OR capacity > 0)"
    )
    op.execute(
        "ALTER TABLE parking_occupancy ADD COLUMN entries integer "
        "CONSTRAINT ck_parking_occupancy_entries CHECK (entries IS NULL OR entries >= 0)"
    )
    op.execute("DROP VIEW parking_lot_status")
    op.execute(f"CREATE VIEW parking_lot_status AS {STATUS_VIEW}")
    op.execute(HOURLY)
    op.execute("CREATE INDEX ix_parking_hourly_hour ON parking_hourly (hour)")
    op.execute(DAILY)
    op.execute("CREATE INDEX ix_parking_daily_day ON parking_daily (day)")
    for body in (REFRESH, ON_NEW, ON_OLD, ON_CHANGE, ON_TRUNCATE, ON_CAPACITY, *TRIGGERS):
        op.execute(body)
    op.execute(
        "SELECT parking_hourly_refresh(array_agg(lot_id), array_agg(lo), array_agg(hi)) FROM ("
        "SELECT lot_id, min(observed_at) AS lo, max(observed_at) AS hi FROM parking_occupancy "
        "GROUP BY lot_id) c HAVING count(*) > 0"
    )


def downgrade() -> None:
    """Back to 0007 (lots of unknown capacity are deleted: 0007 requires one)."""
    op.execute("DROP TRIGGER IF EXISTS parking_hourly_capacity ON parking_lot")
    for name in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS parking_hourly_{name} ON parking_occupancy")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute(
        "DROP FUNCTION IF EXISTS parking_hourly_refresh(bigint[], timestamptz[], timestamptz[])"
    )
    op.execute("DROP TABLE IF EXISTS parking_daily")
    op.execute("DROP TABLE IF EXISTS parking_hourly")
    op.execute("DROP VIEW parking_lot_status")
    op.execute("ALTER TABLE parking_occupancy DROP COLUMN IF EXISTS entries")
    op.execute("DELETE FROM parking_lot WHERE capacity IS NULL")
    op.execute("ALTER TABLE parking_lot DROP CONSTRAINT ck_parking_lot_capacity")
    op.execute(
        "ALTER TABLE parking_lot ADD CONSTRAINT ck_parking_lot_capacity CHECK (capacity > 0)"
    )
    op.execute("ALTER TABLE parking_lot ALTER COLUMN capacity SET NOT NULL")
    op.execute(f"CREATE VIEW parking_lot_status AS {OLD_STATUS_VIEW}")
