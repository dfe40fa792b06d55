"""Login and the one authorization dependency (issue 4 item 8; security.md T074-T078).

A person logs in with eID (:mod:`intyg.web.oidc`); the account is the HMAC of the personal
number (:class:`intyg.web.accounts.AccountKeyer`), created on first login. The session
cookie (:mod:`intyg.web.sessions`) carries only that key, the masked number and the name.

:func:`current_account` is the only way a handler learns who is asking: it yields a
:class:`Holder` whose ``account_id`` every query must filter by. Anything belonging to
another account is therefore indistinguishable from "does not exist" (404).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from intyg.web import db
from intyg.web.accounts import AccountKeyer
from intyg.web.errors import ProtocolError
from intyg.web.oidc import OidcRelyingParty
from intyg.web.sessions import BrowserSession, EndedSessions, SessionManager, derive_key

from .app import Context, WalletContext
from .models import Account, UsedLoginState

__all__ = [
    "CurrentHolder",
    "Holder",
    "LoginRequired",
    "SqlReplayCache",
    "account_for",
    "current_account",
    "eid_relying_party",
    "end_session",
    "page_sessions",
]

LOGIN_PURPOSE = "intyg/oidc-login/v1"
SESSION_COOKIE = "intyg_wallet"


class LoginRequired(Exception):
    """No authenticated session (pages answer with the login page)."""


@dataclass(frozen=True)
class Holder:
    """The logged-in person: the account id that scopes every query, and the session."""

    account_id: int
    session: BrowserSession


class SqlReplayCache:
    """:class:`intyg.web.oidc.ReplayCache` on ``used_login_states`` (every replica sees it)."""

    def __init__(self, ctx: WalletContext) -> None:
        self.ctx = ctx

    def use_once(self, key: str, expires_at: int) -> bool:
        try:
            with db.session(self.ctx.engine) as unit:
                unit.execute(
                    sa.delete(UsedLoginState).where(
                        UsedLoginState.expires_at < self.ctx.clock()  # type: ignore[arg-type]
                    )
                )
                unit.execute(
                    sa.insert(UsedLoginState).values(state_hash=key[:64], expires_at=expires_at)
                )
        except sa.exc.IntegrityError:
            return False
        return True


def eid_relying_party(ctx: WalletContext) -> OidcRelyingParty:
    """The eID relying party (made once, on first use)."""
    rp = ctx.extras.get("relying_party")
    if rp is None:
        config = ctx.settings.eid
        if config is None:
            raise ProtocolError("not_found", "eID login is not configured", 404)
        from intyg.web.outbound import OutboundClient

        rp = OidcRelyingParty(
            config,
            OutboundClient(ctx.settings.outbound_policy()),
            login_key=derive_key(ctx.store.current, f"{LOGIN_PURPOSE}/wallet/{config.name}"),
            replay_cache=SqlReplayCache(ctx),
            development=ctx.settings.is_development,
            clock=ctx.clock,
        )
        rp = ctx.extras.setdefault("relying_party", rp)
    return rp  # type: ignore[no-any-return]


def page_sessions(ctx: WalletContext) -> SessionManager:
    manager = ctx.extras.get("sessions")
    if manager is None:
        manager = ctx.extras.setdefault(
            "sessions",
            SessionManager.from_master_key(
                ctx.store.current,
                base_name=SESSION_COOKIE,
                development=ctx.settings.is_development,
                max_age=ctx.settings.session_seconds,
            ),
        )
    return manager  # type: ignore[no-any-return]


def account_keyer(ctx: WalletContext) -> AccountKeyer:
    keyer = ctx.extras.get("keyer")
    if keyer is None:
        keyer = ctx.extras.setdefault("keyer", AccountKeyer.from_master_key(ctx.store.current))
    return keyer  # type: ignore[no-any-return]


def account_for(ctx: WalletContext, key: str) -> int:
    """The account id for an account key; the account is created on first login (two first
    logins at once: one creates it, the other finds it)."""
    now = ctx.clock()
    find = sa.select(Account).where(Account.account_key == key)
    with db.session(ctx.engine) as unit:
        account = unit.scalars(find).first()
        if account is None:
            account = Account(account_key=key, created_at=now, last_login_at=now)
            if not db.add_unless_taken(unit, account):
                account = unit.scalars(find).one()
        account.last_login_at = now
        unit.flush()
        assert account.id is not None
        return account.id


def current_account(request: Request, ctx: Context) -> Holder:
    """THE authorization dependency: the logged-in person's account, or LoginRequired."""
    session = page_sessions(ctx).load(request, now=ctx.clock())
    if session is None or not session.authenticated:
        raise LoginRequired()
    account_id = session.data.get("account")
    if type(account_id) is not int:
        raise LoginRequired()
    with db.session(ctx.engine, write=False) as unit:
        key = unit.scalar(sa.select(Account.account_key).where(Account.id == account_id))
        ended = ENDED_SESSIONS.ended(unit, session)
    # The sealed cookie names both; a deleted or mismatching account is no login, nor is a
    # session ended by logout.
    if key is None or key != session.subject or ended:
        raise LoginRequired()
    return Holder(account_id, session)


def _ended_key(sid: str) -> str:
    return hashlib.sha256(b"intyg/wallet/logout\x00" + sid.encode()).hexdigest()


#: Sessions ended by logout, in ``used_login_states`` next to the used eID login states (a
#: domain-separated hash, so the two never collide).
ENDED_SESSIONS = EndedSessions(
    UsedLoginState.__table__,  # type: ignore[attr-defined]
    "state_hash",
    reference=_ended_key,
)


def end_session(ctx: WalletContext, session: BrowserSession) -> None:
    """Logout (T078): the stateless cookie is dead at once, also a copy of it; the session
    id is kept (hashed, in ``used_login_states``) until the cookie would have expired."""
    with db.session(ctx.engine) as unit:
        ENDED_SESSIONS.purge(unit, ctx.clock())  # expired login states and ended sessions
        ENDED_SESSIONS.end(unit, session)


CurrentHolder = Annotated[Holder, Depends(current_account)]
