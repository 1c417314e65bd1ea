"""Alembic migrations of the city data model (revisions under versions/)."""
