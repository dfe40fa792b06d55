"""The verifier's Alembic migrations produce exactly the schema its models describe."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from verifier import models
from verifier.db import migrate


def test_migrated_schema_matches_models(engine: sa.Engine) -> None:
    migrate(engine)
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), models.metadata
        )
    assert diff == []


def test_migrate_twice_is_a_no_op(engine: sa.Engine) -> None:
    migrate(engine)
    migrate(engine)
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0003"
