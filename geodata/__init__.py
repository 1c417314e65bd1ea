"""Database access: settings-driven engine, ORM models, migrations and query builders."""
