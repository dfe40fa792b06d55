"""Alembic environment for the verifier (see :func:`intyg.web.migrations.run_env`)."""

from __future__ import annotations

from intyg.web.migrations import run_env
from verifier import models

run_env(models.metadata)
