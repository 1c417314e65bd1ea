"""大屏: the view an operator pinned on the command-centre big screen (one row at most), and the
daily record of the screen's figures that have no history of their own (camera online rate, park
coverage), so each can show its change against yesterday or last week.

With no row the screen rotates through its configured views; with a row it stays on that view
until the pin is removed. The view id is checked against the configuration by the service, not
here (views are configuration, not schema).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create bigscreen_pin (a single row keyed by id = 1) and kpi_daily."""
    op.execute(
        """
        CREATE TABLE bigscreen_pin (
            id integer PRIMARY KEY DEFAULT 1 CONSTRAINT ck_bigscreen_pin_single CHECK (id = 1),
            view_id text NOT NULL,
            pinned_by text NOT NULL,
            pinned_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE kpi_daily (
            day date NOT NULL,
            kpi text NOT NULL,
            value double precision,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (day, kpi)
        )
        """
    )


def downgrade() -> None:
    """Drop both tables."""
    op.execute("DROP TABLE IF EXISTS kpi_daily")
    op.execute("DROP TABLE IF EXISTS bigscreen_pin")
