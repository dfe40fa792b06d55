"""Alembic environment for the issuer (see :func:`intyg.web.migrations.run_env`)."""

from __future__ import annotations

from intyg.web.migrations import run_env
from issuer import models

run_env(models.metadata)
