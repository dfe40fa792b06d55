"""Fault points for the reliability scenarios (bench/faults, tests/reliability; security.md
L06, L08, L09): a crash at an exact place, as a power cut would cause it.

``INTYG_FAULT=<point>`` (or ``<point>:<n>`` for the n-th pass) makes :func:`crash_point`
kill its own process with SIGKILL there: no clean-up, no reply, open transactions lost.
Only in development: the services pass ``development=settings.is_development``, so the
variable does nothing in production. Points (grep ``crash_point(``):

- ``issuer.credential.signed``: the credentials are signed, their rows not committed;
- ``issuer.credential.committed``: committed, the response not sent;
- ``wallet.issuance.proof_sent``: the wallet's holder keys are marked as sent in proofs;
- ``wallet.presentation.consented``: the consent is committed, nothing sent to the verifier.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

__all__ = ["FAULT_VARIABLE", "crash_point"]

FAULT_VARIABLE = "INTYG_FAULT"
_passes: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(name: str, *, development: bool) -> None:
    """SIGKILL this process when ``INTYG_FAULT`` names this point (development only)."""
    spec = os.environ.get(FAULT_VARIABLE)
    if not spec or not development:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _lock:
        _passes[name] += 1
        due = _passes[name] == (int(nth) if nth.isdigit() else 1)
    if due:
        os.kill(os.getpid(), signal.SIGKILL)
