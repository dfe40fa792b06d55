"""The list page's names as plain string columns (design.md target: 1,000 cards < 50 ms):
``name_sv``, ``name_en``, ``issuer_name_sv``, ``issuer_name_en`` on ``credentials``, filled
from the display JSON of existing rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:00:00
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("name_sv", "name_en", "issuer_name_sv", "issuer_name_en")


def _name(display: Any, language: str, fallback: str) -> str:
    # wallet.issuance.pick at the time of writing (a migration does not import app code).
    if isinstance(display, dict):
        for locale in (language, "en", "sv", *display.keys()):
            entry = display.get(locale)
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                return entry["name"][:200]
    return fallback[:200]


def upgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.add_column(
                sa.Column(column, sa.String(length=200), nullable=False, server_default="")
            )
    cards = sa.table(
        "credentials",
        sa.column("id", sa.Integer()),
        sa.column("format", sa.String()),
        sa.column("credential_issuer", sa.String()),
        sa.column("display", sa.JSON()),
        sa.column("issuer_display", sa.JSON()),
        *(sa.column(c, sa.String()) for c in COLUMNS),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            cards.c.id,
            cards.c.format,
            cards.c.credential_issuer,
            cards.c.display,
            cards.c.issuer_display,
        )
    ).all()
    for card_id, fmt, issuer, display, issuer_display in rows:
        host = urlsplit(issuer).netloc
        connection.execute(
            sa.update(cards)
            .where(cards.c.id == card_id)
            .values(
                name_sv=_name(display, "sv", fmt),
                name_en=_name(display, "en", fmt),
                issuer_name_sv=_name(issuer_display, "sv", host),
                issuer_name_en=_name(issuer_display, "en", host),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
