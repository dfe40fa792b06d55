"""eID logins are counted where the relying party decides them (intyg/web/oidc.py
``complete_login``): ``completed`` or the refusal reason; and nothing logged carries the
person's number (docs/running.md "Operations")."""

from __future__ import annotations

from prometheus_client import REGISTRY

from .logcapture import captured
from .test_oidc import NUMBER, StubOp, login, make_rp, refused
from .test_oidc import stub as stub  # the fixture


def logins(outcome: str) -> float:
    labels = {"provider": "eid", "outcome": outcome}
    return REGISTRY.get_sample_value("intyg_eid_logins_total", labels) or 0.0


def test_logins_are_counted_by_outcome(stub: StubOp) -> None:
    completed, missing, wrong = (
        logins("completed"),
        logins("state_missing"),
        logins("issuer_mismatch"),
    )
    with captured() as stream:
        login(make_rp(stub), stub)
    refused("state_missing", make_rp(stub), stub, params={"state": None})
    assert logins("completed") == completed + 1
    assert logins("state_missing") == missing + 1
    assert logins("issuer_mismatch") == wrong  # only what happened is counted
    assert NUMBER not in stream.getvalue()
    assert "eID login completed" in stream.getvalue()
