"""Pre-aggregated low-zoom point counts per tile cell, and the data version they were built at.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create tile_aggregate (counts and coordinate sums per cell) and tile_aggregate_build."""
    op.execute(
        "CREATE TABLE tile_aggregate (layer text NOT NULL, z smallint NOT NULL, cx integer NOT NULL,"
        " cy integer NOT NULL, n integer NOT NULL, sx float8 NOT NULL, sy float8 NOT NULL,"
        " PRIMARY KEY (layer, z, cx, cy))"
    )
    op.execute(
        "CREATE TABLE tile_aggregate_build (layer text PRIMARY KEY, version bigint NOT NULL,"
        " built_at timestamptz NOT NULL DEFAULT now())"
    )


def downgrade() -> None:
    """Drop both tables."""
    op.execute("DROP TABLE IF EXISTS tile_aggregate_build")
    op.execute("DROP TABLE IF EXISTS tile_aggregate")
