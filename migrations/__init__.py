"""Alembic migrations of the registry (`app.db.upgrade()` runs them)."""
