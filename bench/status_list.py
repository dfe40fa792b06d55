"""Status list benchmarks: revoke + republish on 1,000,000-entry lists (design.md target ≤ 50 ms).

Lists start with 1 % of entries set at random (a realistic revocation rate, and harder to
compress than an empty list). Each figure is the median of ``RUNS`` runs in milliseconds.

    .venv/bin/python bench/status_list.py
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from intyg import jose
from intyg.status import (
    INVALID,
    BitstringStatusList,
    StatusList,
    StatusListReference,
    bitstring_status,
    sign_status_list_token,
    status_of,
)

ENTRIES = 1_000_000
PRESET_FRACTION = 0.01
RUNS = 20
URI = "https://issuer.intyg.example/statuslists/1"
LIST_URL = "https://issuer.intyg.example/status/3"
NOW = 1_800_000_000


def _median_ms(action: Callable[[], object], runs: int = RUNS) -> float:
    action()  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _token_status_list(bits: int, rng: random.Random) -> StatusList:
    status_list = StatusList.create(ENTRIES, bits)
    for idx in rng.sample(range(ENTRIES), int(ENTRIES * PRESET_FRACTION)):
        status_list.set(idx, INVALID)
    return status_list


def _bitstring_status_list(rng: random.Random) -> BitstringStatusList:
    status_list = BitstringStatusList.create(ENTRIES)
    for idx in rng.sample(range(ENTRIES), int(ENTRIES * PRESET_FRACTION)):
        status_list.set(idx, 1)
    return status_list


def run() -> list[tuple[str, float]]:
    """``(label, median milliseconds)`` for each status list operation."""
    rng = random.Random(20260512)
    key = jose.generate_key("ES256")
    results: list[tuple[str, float]] = []

    for bits in (1, 2):
        tsl = _token_status_list(bits, rng)

        def revoke_and_encode(tsl: StatusList = tsl) -> object:
            tsl.set(rng.randrange(ENTRIES), INVALID)
            return tsl.encode()

        results.append(
            (f"TSL 1M bits={bits}: set one entry + encode", _median_ms(revoke_and_encode))
        )

    tsl = _token_status_list(1, rng)

    def revoke_and_sign() -> object:
        tsl.set(rng.randrange(ENTRIES), INVALID)
        return sign_status_list_token(tsl, uri=URI, key=key, now=NOW)

    results.append(
        ("TSL 1M bits=1: set one entry + sign statuslist+jwt", _median_ms(revoke_and_sign))
    )

    token = sign_status_list_token(tsl, uri=URI, key=key, now=NOW)
    public = key.public()

    def verify_and_lookup() -> object:
        return status_of(StatusListReference(rng.randrange(ENTRIES), URI), token, public, NOW)

    results.append(
        ("TSL 1M bits=1: verify token + inflate + lookup", _median_ms(verify_and_lookup))
    )

    bsl = _bitstring_status_list(rng)

    def revoke_and_encode_bitstring() -> object:
        bsl.set(rng.randrange(ENTRIES), 1)
        return bsl.encode()

    results.append(
        ("Bitstring 1M: set one entry + encode", _median_ms(revoke_and_encode_bitstring))
    )

    claims = {
        "id": LIST_URL,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "credentialSubject": {
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": bsl.encode(),
        },
    }

    def decode_and_lookup() -> object:
        entry = {
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(rng.randrange(ENTRIES)),
            "statusListCredential": LIST_URL,
        }
        return bitstring_status(entry, claims)

    results.append(("Bitstring 1M: inflate + lookup", _median_ms(decode_and_lookup)))
    return results


if __name__ == "__main__":
    for label, milliseconds in run():
        print(f"{label:<55} {milliseconds:8.2f} ms")
