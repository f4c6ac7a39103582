"""Database: typed SQLAlchemy 2.0 mappings (tables.py), engines and sessions (session.py), Alembic (migrate.py)."""
