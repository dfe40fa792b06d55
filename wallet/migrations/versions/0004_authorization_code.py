"""Wallet-initiated issuance (OpenID4VCI 1.0 §5, authorization code flow): the pending
authorization's OAuth ``state`` digest, the browser session it is bound to and the time it
was redeemed, on ``issuance_sessions``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issuance_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("authorization_state_hash", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("browser_session_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("authorized_at", sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_issuance_sessions_authorization_state_hash"),
            ["authorization_state_hash"],
        )


def downgrade() -> None:
    with op.batch_alter_table("issuance_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_issuance_sessions_authorization_state_hash"), type_="unique"
        )
        batch_op.drop_column("authorized_at")
        batch_op.drop_column("browser_session_hash")
        batch_op.drop_column("authorization_state_hash")
