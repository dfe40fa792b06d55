"""Employers and their API clients (issue 5 item 1).

Operators create them with these functions (the client secret is returned once)::

    from intyg.web import db
from intyg.web.migrations import lock
    from verifier.app import build_context
    from verifier.employers import create_client, create_employer
    from verifier.settings import VerifierSettings

    ctx = build_context(VerifierSettings())
    with db.session(ctx.engine) as unit:
        employer = create_employer(unit, name="Exempel AB", org_number="556677-8899", now=0)
        secret = create_client(unit, employer_id=employer.id, client_id="hr-system",
                               name="HR system", scopes=list(SCOPES), now=0)

In development ``INTYG_VERIFIER_DEV_API_CLIENT_SECRET`` makes the employer
"Utvecklingsarbetsgivaren AB" with the client ``dev-employer`` on start.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import sqlalchemy as sa

from intyg.web import db
from intyg.web.migrations import lock

from . import audit
from .models import ApiClient, Employer, hash_client_secret

if TYPE_CHECKING:
    from .app import VerifierContext

__all__ = [
    "DEV_CLIENT_ID",
    "SCOPES",
    "EmployerError",
    "create_client",
    "create_employer",
    "ensure_dev_employer",
]

SCOPE_WRITE = "transactions:write"
SCOPE_READ = "transactions:read"
SCOPES = (SCOPE_WRITE, SCOPE_READ)
DEV_CLIENT_ID = "dev-employer"
DEV_EMPLOYER = ("Utvecklingsarbetsgivaren AB", "556000-0001")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ORG_NUMBER = re.compile(r"[0-9]{6}-?[0-9]{4}")


class EmployerError(ValueError):
    """An employer or client could not be created."""


def create_employer(unit: db.Session, *, name: str, org_number: str, now: int) -> Employer:
    if not name or len(name) > 200 or not _ORG_NUMBER.fullmatch(org_number):
        raise EmployerError("an employer needs a name and an organisation number NNNNNN-NNNN")
    employer = Employer(name=name, org_number=org_number, created_at=now)
    unit.add(employer)
    unit.flush()
    audit.record(
        unit,
        actor="operator",
        action="employer_created",
        now=now,
        subject=f"employer:{employer.id}",
    )
    return employer


def create_client(
    unit: db.Session,
    *,
    employer_id: int,
    client_id: str,
    name: str,
    scopes: list[str],
    now: int,
    secret: str | None = None,
) -> str:
    """Create an API client; returns its secret (only its scrypt hash is stored)."""
    if not _CLIENT_ID.fullmatch(client_id):
        raise EmployerError("client_id must be 1-64 of A-Z a-z 0-9 . _ -")
    if not scopes or not set(scopes) <= set(SCOPES):
        raise EmployerError(f"scopes must be a non-empty subset of {SCOPES}")
    secret = secret or secrets.token_urlsafe(32)
    unit.add(
        ApiClient(
            client_id=client_id,
            employer_id=employer_id,
            secret_hash=hash_client_secret(secret),
            name=name,
            scopes=list(scopes),
            created_at=now,
        )
    )
    unit.flush()
    audit.record(
        unit, actor="operator", action="api_client_created", now=now, subject=f"client:{client_id}"
    )
    return secret


def dev_employer(unit: db.Session, ctx: VerifierContext) -> Employer:
    """Development: the development employer, created on first use. The advisory lock makes
    replicas that start together on one database agree on a single row."""
    lock(unit, "verifier-dev-employer")
    name, org_number = DEV_EMPLOYER
    existing = unit.scalars(sa.select(Employer).where(Employer.org_number == org_number)).first()
    return existing or create_employer(unit, name=name, org_number=org_number, now=ctx.clock())


def ensure_dev_employer(ctx: VerifierContext) -> None:
    """Development: the employer and ``dev-employer`` client (idempotent across replicas)."""
    secret = ctx.settings.dev_api_client_secret
    assert secret is not None
    with db.session(ctx.engine) as unit:
        employer = dev_employer(unit, ctx)
        if unit.get(ApiClient, DEV_CLIENT_ID) is not None:
            return
        assert employer.id is not None
        create_client(
            unit,
            employer_id=employer.id,
            client_id=DEV_CLIENT_ID,
            name="Development HR system",
            scopes=list(SCOPES),
            now=ctx.clock(),
            secret=secret.get_secret_value(),
        )
