"""Session generation per user: bumping it ends every session signed in before (revocation).

Sign-out bumps it from the application; a trigger bumps it whenever the password, the role or
the areas change or the user is disabled, whoever makes the change (CLI, import, plain SQL).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add app_user.session_generation and the trigger that bumps it."""
    op.execute("ALTER TABLE app_user ADD COLUMN session_generation integer NOT NULL DEFAULT 0")
    op.execute(
        """
        CREATE FUNCTION bump_session_generation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.password_hash IS DISTINCT FROM OLD.password_hash
             OR NEW.role IS DISTINCT FROM OLD.role
             OR NEW.areas IS DISTINCT FROM OLD.areas
             OR (OLD.active AND NOT NEW.active) THEN
            NEW.session_generation := OLD.session_generation + 1;
          END IF;
          RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER app_user_session_generation BEFORE UPDATE ON app_user "
        "FOR EACH ROW EXECUTE FUNCTION bump_session_generation()"
    )


def downgrade() -> None:
    """Drop the trigger, its function and the column."""
    op.execute("DROP TRIGGER IF EXISTS app_user_session_generation ON app_user")
    op.execute("DROP FUNCTION IF EXISTS bump_session_generation()")
    op.execute("ALTER TABLE app_user DROP COLUMN IF EXISTS session_generation")
