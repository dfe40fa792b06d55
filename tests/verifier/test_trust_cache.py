"""TrustList keeps its x5c answers for one second only: a chain that expires is refused in
the first second after its expiry, a refusal is repeated with its check name, and a chain
presented with another ``iss`` is judged again."""

from __future__ import annotations

import time

import pytest

from verifier.trust import ISSUER_TRUSTED, TrustError, parse_trust_list

from .helpers import AF_ISS, Pki


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def test_an_expired_chain_is_refused_the_next_second(pki: Pki) -> None:
    trust = parse_trust_list(pki.trust_list())
    now = int(time.time())
    first = trust.identify(pki.af.header(), {"iss": AF_ISS}, now=now)
    assert trust.identify(pki.af.header(), {"iss": AF_ISS}, now=now) == first
    later = now + 31 * 86_400  # the test leaf is valid for 30 days
    with pytest.raises(TrustError) as refused:
        trust.identify(pki.af.header(), {"iss": AF_ISS}, now=later)
    assert refused.value.check == ISSUER_TRUSTED


def test_a_refusal_is_repeated_with_its_check(pki: Pki) -> None:
    trust = parse_trust_list(pki.trust_list())
    now = int(time.time())
    for _ in range(2):
        with pytest.raises(TrustError, match="no trusted issuer") as refused:
            trust.identify(pki.rogue.header(), {"iss": "https://rogue.test"}, now=now)
        assert refused.value.check == ISSUER_TRUSTED


def test_the_same_chain_with_another_iss_is_judged_again(pki: Pki) -> None:
    trust = parse_trust_list(pki.trust_list())
    now = int(time.time())
    trust.identify(pki.af.header(), {"iss": AF_ISS}, now=now)
    with pytest.raises(TrustError, match="iss"):
        trust.identify(pki.af.header(), {"iss": "https://elsewhere.test"}, now=now)
