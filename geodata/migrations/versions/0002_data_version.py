"""Per-table data versions, bumped by statement triggers on every write (tile cache invalidation).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = (
    "admin_area", "unit_grid", "responsibility_grid", "geocode", "component", "case_record",
    "road", "land_parcel", "green_space", "drain_well", "drain_pipe", "drain_outfall",
    "pump_station", "waterlogging_point", "sanitation_facility", "parking_lot",
    "parking_occupancy", "camera", "sensor", "alarm",
)  # fmt: skip


def upgrade() -> None:
    """Create data_version, its bump function and one trigger per data table."""
    op.execute(
        "CREATE TABLE data_version (table_name text PRIMARY KEY, version bigint NOT NULL DEFAULT 0,"
        " changed_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        """
        CREATE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO data_version AS v (table_name, version, changed_at)
          VALUES (TG_TABLE_NAME, 1, now())
          ON CONFLICT (table_name) DO UPDATE SET version = v.version + 1, changed_at = now();
          RETURN NULL;
        END $$
        """
    )
    for table in TABLES:
        op.execute(f"INSERT INTO data_version (table_name) VALUES ('{table}')")
        op.execute(
            f"CREATE TRIGGER {table}_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
        )


def downgrade() -> None:
    """Drop the triggers, the function and the table."""
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bump_data_version()")
    op.execute("DROP TABLE IF EXISTS data_version")
