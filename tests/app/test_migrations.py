"""The schema exists only through Alembic, and Alembic and the ORM agree."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.db import migrate
from app.db.tables import Base
from tests.conftest import BACKENDS

TABLES = {"datasets", "training_runs", "run_metrics", "registered_models", "model_versions", "model_aliases",
          "api_keys", "web_sessions", "run_tags", "alias_events", "run_logs"}


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
def test_upgrade_to_head_and_back_down(empty_database_url):
    engine = create_engine(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    assert migrate.current_revision(engine) == migrate.head_revision()

    migrate.downgrade(empty_database_url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert migrate.current_revision(engine) is None

    migrate.upgrade(empty_database_url)  # and up again: downgrade left nothing behind that blocks it
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
def test_orm_and_migrated_schema_do_not_differ(empty_database_url):
    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []
