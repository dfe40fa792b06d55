"""The wallet's Alembic migrations produce exactly the models' schema (no autogenerate
diff), on SQLite and PostgreSQL; 0003 fills the list page's name columns of existing rows."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from intyg.web import db
from wallet.db import migrate
from wallet.models import metadata


def test_no_autogenerate_diff(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = [
                d for d in compare_metadata(context, metadata) if "alembic_version" not in str(d)
            ]
        assert diff == []
    finally:
        engine.dispose()


def test_0003_fills_names_of_existing_cards(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        migrate(engine, "0002")
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO accounts (account_key, created_at, last_login_at) "
                    "VALUES ('k', 1, 1)"
                )
            )
            account = connection.execute(sa.text("SELECT id FROM accounts")).scalar_one()
            connection.execute(
                sa.text(
                    "INSERT INTO credentials (public_id, account_id, format, configuration_id, "
                    "credential_issuer, issuer_display, display, received_at, status, "
                    "instance_count) VALUES ('p', :a, 'dc+sd-jwt', 'c', 'https://af.example', "
                    ":issuer, :display, 1, 'valid', 1)"
                ),
                {
                    "a": account,
                    "issuer": '{"sv": {"name": "Arbetsförmedlingen"}}',
                    "display": '{"en": {"name": "Registration"}, "sv": {"name": "Inskrivning"}}',
                },
            )
        migrate(engine)
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT name_sv, name_en, issuer_name_sv, issuer_name_en FROM credentials")
            ).one()
        assert tuple(row) == (
            "Inskrivning",
            "Registration",
            "Arbetsförmedlingen",
            "Arbetsförmedlingen",
        )
    finally:
        engine.dispose()
