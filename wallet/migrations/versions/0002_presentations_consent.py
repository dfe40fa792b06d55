"""OpenID4VP answering and consent records: the chain's kind and subject, the holder keys
used per consent (for withdrawal), presentation session state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="consent")
        )
        batch_op.add_column(sa.Column("subject_id", sa.String(length=32), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_consent_records_subject_id"), ["subject_id"], unique=False
        )
    with op.batch_alter_table("presentation_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("redirect_uri", sa.String(length=2048), nullable=True))
    op.create_table(
        "consent_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("thumbprint", sa.String(length=64), nullable=False),
        sa.Column("sealed_private_jwk", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_consent_keys_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consent_records.id"],
            name=op.f("fk_consent_keys_consent_id_consent_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_keys")),
    )
    with op.batch_alter_table("consent_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_keys_consent_id"), ["consent_id"])
        batch_op.create_index(batch_op.f("ix_consent_keys_account_id"), ["account_id"])


def downgrade() -> None:
    op.drop_table("consent_keys")
    with op.batch_alter_table("presentation_sessions", schema=None) as batch_op:
        batch_op.drop_column("redirect_uri")
        batch_op.drop_column("consent_id")
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_records_subject_id"))
        batch_op.drop_column("subject_id")
        batch_op.drop_column("kind")
