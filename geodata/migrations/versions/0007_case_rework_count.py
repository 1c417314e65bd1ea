"""案件返工次数: how many times the 核查 (verification) sent a case back to 处置 (handling).

Needed for 返工率 (rework rate) in the case KPIs. Existing cases get 0 (no rework recorded).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add case_record.rework_count (non-negative, default 0)."""
    op.execute(
        "ALTER TABLE case_record ADD COLUMN rework_count integer NOT NULL DEFAULT 0 "
        "CONSTRAINT ck_case_record_rework_count CHECK (rework_count >= 0)"
    )


def downgrade() -> None:
    """Drop the column (and with it its check)."""
    op.execute("ALTER TABLE case_record DROP COLUMN IF EXISTS rework_count")
