"""Page users' password login and failed webhook deliveries.

- ``page_users.password_hash``: scrypt hash (:mod:`intyg.web.client_secrets`) for the
  username + password login of the employer pages; ``subject`` is ``login:<username>``.
  NULL for users who log in otherwise.
- ``webhook_outbox.failed_at``: set when the sender gave up after
  ``webhook_max_attempts`` (verifier/webhooks.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("page_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=256), nullable=True))
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.drop_column("failed_at")
    with op.batch_alter_table("page_users", schema=None) as batch_op:
        batch_op.drop_column("password_hash")
