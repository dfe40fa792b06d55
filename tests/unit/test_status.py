"""intyg.status: spec vectors, round trips, and one negative test per rejection rule.

Vectors: draft-ietf-oauth-status-list-20 §4.1/§4.2 and Appendix C (C.1-C.4), §5.1 example
claims; W3C Bitstring Status List v1.0 §2.1 and §2.2 examples.
"""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intyg import jose
from intyg.fetch import FetchResponse, fetch_from_mapping
from intyg.status import (
    INVALID,
    MIN_BITSTRING_ENTRIES,
    SUSPENDED,
    VALID,
    BitstringStatusEntry,
    BitstringStatusList,
    StatusError,
    StatusList,
    StatusListReference,
    bitstring_status,
    bitstring_status_list_credential,
    cache_lifetime,
    fetch_status_list_token,
    parse_bitstring_status_entry,
    parse_status_reference,
    sign_status_list_token,
    status_of,
    verify_status_list_token,
)

NOW = 1_800_000_000
URI = "https://example.com/statuslists/1"
LIST_URL = "https://example.com/credentials/status/3"
MiB = 1024 * 1024

# -- draft-ietf-oauth-status-list-20 vectors ----------------------------------------------

# §4.1 / §4.2: 16 entries, bits=1, bytes b9 a3.
TSL_1BIT_STATUSES = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
TSL_1BIT_BYTES = bytes([0xB9, 0xA3])
TSL_1BIT_LST = "eNrbuRgAAhcBXQ"
# §4.1 / §4.2: 12 entries, bits=2, bytes c9 44 f9.
TSL_2BIT_STATUSES = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]
TSL_2BIT_BYTES = bytes([0xC9, 0x44, 0xF9])
TSL_2BIT_LST = "eNo76fITAAPfAgc"

# Appendix C: lists of 2**20 entries; every entry not listed is 0.
C1_SET = {
    0: 1, 1993: 1, 25460: 1, 159495: 1, 495669: 1, 554353: 1,
    645645: 1, 723232: 1, 854545: 1, 934534: 1, 1000345: 1,
}  # fmt: skip
C2_SET = {
    0: 1, 1993: 2, 25460: 1, 159495: 3, 495669: 1, 554353: 1,
    645645: 2, 723232: 1, 854545: 1, 934534: 2, 1000345: 3,
}  # fmt: skip
C3_SET = {
    0: 1, 1993: 2, 35460: 3, 459495: 4, 595669: 5, 754353: 6, 845645: 7, 923232: 8,
    924445: 9, 934534: 10, 1004534: 11, 1000345: 12, 1030203: 13, 1030204: 14, 1030205: 15,
}  # fmt: skip
C1_LST = (
    "eNrt3AENwCAMAEGogklACtKQPg9LugC9k_ACvreiogEAAKkeCQAAAAAAAAAAAAAA"
    "AAAAAIBylgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "XG9IAAAAAAAAAPwsJAAAAAAAAAAAAAAAvhsSAAAAAAAAAAAA7KpLAAAAAAAAAAAA"
    "AAAAAAAAAJsLCQAAAAAAAAAAADjelAAAAAAAAAAAKjDMAQAAAACAZC8L2AEb"
)
C2_LST = (
    "eNrt2zENACEQAEEuoaBABP5VIO01fCjIHTMStt9ovGVIAAAAAABAbiEBAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEB5WwIAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAID0ugQAAAAAAAAAAAAAAAAAQG12SgAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAOCSIQEAAAAAAAAAAAAAAAAAAAAAAAD8ExIAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAwJEuAQAAAAAAAAAAAAAAAAAAAAAAAMB9SwIAAAAAAAAA"
    "AAAAAAAAAACoYUoAAAAAAAAAAAAAAEBqH81gAQw"
)
C3_LST = (
    "eNrt0EENgDAQADAIHwImkIIEJEwCUpCEBBQRHOy35Li1EjoOQGabAgAAAAAAAAAA"
    "AAAAAAAAACC1SQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAABADrsCAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADoxaEA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIIoCgAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACArpwKAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAGhqVkAzlwIAAAAAiGVRAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAABx3AoAgLpVAQAAAAAAAAAAAAAAwM89rwMAAAAAAAAA"
    "AAjsA9xMBMA"
)
C4_LST = (
    "eNrt0WOQM2kYhtGsbdu2bdu2bdu2bdu2bdu2jVnU1my-SWYm6U5enFPVf7ue97or"
    "FYAo7CQBAACQuuckAABStqUEAAAAAAAAtN6wEgAE71QJAAAAAIrwhwQAAAAAAdtA"
    "AgAAAAAAACLwkAQAAAAAAAAAAACUaFcJAACAeJwkAQAAAAAAAABQvL4kAAAAWmJw"
    "CQAAAAAAAAjAwBIAAAB06ywJoDKQBARpfgkAAAAAAAAAAAAAAAAAAACo50sJAAAA"
    "AAAAAOiRcSQAAAAAgAJNKgEAAG23mgQAAAAAAECw3pUAQvegBAAAAAAAAADduE4C"
    "AAAAyjSvBAAQiw8koHjvSABAb-wlARCONyVoxtMSZOd0CQAAAOjWDRKQmLckAAAA"
    "AACysLYEQGcnSAAAAAAQooUlAABI15kSAIH5RAIgLB9LABC4_SUgGZNIAABAmM6R"
    "oLbTJIASzCIBAEAhfpcAAAAAAABquk8CAAAAAAAAaJl9SvvzBOICAFWmkIBgfSgB"
    "AAAANOgrCQAAAAAAAADStK8EAAC03gASAAAAAAAAAADFWFUCAAAAMjOaBEADHpYA"
    "QjCIBADduFwCAAAAAGitMSSI3BUSAECOHpAA6IHrJQAAAAAAsjeVBAAAKRpVAorW"
    "vwQAAAAAAAAAkKRtJAAAAAAAgCbcLAF0bXUJAAAAoF02kYDg7CYBAAAAAEB6NpQA"
    "AAAAAAAAAAAAAEr1uQQAAF06VgIAAAAAAAAAqDaeBAAQqgMkAAAAAABogQMlAAAA"
    "AAAa87MEAAAQiwslAAAAAAAAAAAAAAAAMrOyBAAAiekv-hcsY0Sgne6QAAAAAAAg"
    "aUtJAAAAAAAAAAAAAAAAAAAAAAAAAADwt-07vjVkAAAAgDy8KgFAUEaSAAAAAJL3"
    "vgQAWdhcAgAAoBHDSUDo1pQAAACI2o4SAABZm14CALoyuwQAAPznGQkgZwdLAAAQ"
    "ukclAAAAAAAAAAAAgKbMKgEAAAAAAAAAAAAAAAAAAECftpYAAAAAAAAAAAAACnaX"
    "BAAAAADk7iMJAAAAAAAAAABqe00CAnGbBBG4TAIAgFDdKgFAXCaWAAAAAAAAAAAA"
    "AAAAAKAJQwR72XbGAQAAAKAhh0sAAAAAAABQgO8kAAAAAAAAAAAAACAaM0kAAAC5"
    "W0QCAIJ3mAQAxGwxCQAA6nhSAsjZBRIAANEbWQIAAAAAaJE3JACAwA0qAUBIVpKA"
    "lphbAiAPp0iQnKEkAAAAAAAgBP1KAAAAdOl4CQAAAAAAAPjLZBIAAG10RtrPm8_C"
    "AEBMTpYAAAAAAIjQYBL8z5QSAAAAAEDYPpUAACAsj0gAAADQkHMlAAjHDxIA0Lg9"
    "JQAAgHDsLQEAAABAQS6WAAAAgLjNFs2l_RgLAIAEfCEBlGZZCQAAaIHjJACgtlsk"
    "AAAozb0SAAAAVFtfAgAAAAAAAAAAAAAAAAAAAAAAAKDDtxIAAAAAVZaTAKB5W0kA"
    "ANCAsSUgJ0tL0GqHSNBbL0gAZflRAgCARG0kQXNmlgCABiwkAQAAAEB25pIAAAAA"
    "AAAAAAAAoFh9SwAAAAAAADWNmOSrpjFsEoaRgDKcF9Q1dxsEAAAAAAAAAAAAAAAA"
    "gPZ6SQIAAAAAAAAAgChMLgEAAAAAAAAAqZlQAsK2qQQAAAAAAAD06XUJAAAAqG9b"
    "CQAAgLD9IgEAAAAAAAAAAAAAAAAAAEBNe0gAAAAAAAAAAEBPHSEBAAAAlOZtCYA4"
    "fS8B0GFRCQAo0gISAOTgNwmC840EAAAAAAAAAAAAAAAAAAAAUJydJfjXPBIAAAAA"
    "AAAAAAAAAABk6WwJAAAAAAAAAAAAAAAAqG8UCQAAgPpOlAAAIA83SQAANWwc9HUj"
    "GAgAAAAAAACAusaSAAAAAAAAAAAAAAAAAAAAAAAAAAAAqHKVBACQjxklAAAAAAAA"
    "AKBHxpQAAAAAACBME0lAdlaUAACyt7sEAAAA0Nl0EgAAAAAAAAAAAABA-8wgAQAA"
    "AAAAAKU4SgKgUtlBAgAAAAAAAAAAgMCMLwEE51kJICdzSgCJGl2CsE0tAQAA0L11"
    "JQAAAAAAAAjUOhIAAAAAAAAAAAAAAGTqeQkAAAAAAAAAAAAAKM8SEjTrJwkAAAAA"
    "AACocqQEULgVJAAAACjDUxJUKgtKAAAAqbpRAgCA0n0mAQAAAABAGzwmAUCTLpUA"
    "AAAAAAAAAEjZNRIAAAAAAAAAAAAAAAAAAAAA8I-vJaAlhpQAAAAAAHrvzjJ-OqCu"
    "uVlLAojP8BJAr70sQZVDJYAgXS0BAAAAAAAAAAAAtMnyEgAAAAAAFONKCQAAAAAA"
    "AADorc0kAAAAAAAAgDqOlgAAAAAAAAAAAADIwv0SAAAAAAAAAAAAAADBuV0CIFVD"
    "SwAAAABAAI6RAAAAAGIwrQSEZAsJAABouRclAAAAAKDDrxIAAAA0bkkJgFiMKwEA"
    "AAAAAHQyhwRk7h4JAAAAAAAAAAAgatdKAACUYj0JAAAAAAAAAAAAQnORBLTFJRIA"
    "AAAAkIaDJAAAAJryngQAAAAAAAAAAAA98oQEAAAAAAAAAEC2zpcgWY9LQKL2kwAg"
    "GK9IAAAAAPHaRQIAAAAAAAAAAADIxyoSAAAAAAAAAAAAAADQFotLAECz_gQ1PX-B"
)
C4_INDICES = [  # value = position in this list (0..255)
    233478,
    52451,
    576778,
    513575,
    468106,
    292632,
    214947,
    182323,
    884834,
    66653,
    62489,
    196493,
    458517,
    487925,
    55649,
    416992,
    879796,
    462297,
    942059,
    583408,
    13628,
    334829,
    886286,
    713557,
    582738,
    326064,
    451545,
    705889,
    214350,
    194502,
    796765,
    202828,
    752834,
    721327,
    554740,
    91122,
    963483,
    261779,
    793844,
    165255,
    614839,
    758403,
    403258,
    145867,
    96100,
    477937,
    606890,
    167335,
    488197,
    211815,
    797182,
    582952,
    950870,
    765108,
    341110,
    776325,
    745056,
    439368,
    559893,
    149741,
    358903,
    513405,
    342679,
    969429,
    795775,
    566121,
    460566,
    680070,
    117310,
    480348,
    67319,
    661552,
    841303,
    561493,
    138807,
    442463,
    659927,
    445910,
    1046963,
    829700,
    962282,
    299623,
    555493,
    292826,
    517215,
    551009,
    898490,
    837603,
    759161,
    459948,
    290102,
    1034977,
    190650,
    98810,
    229950,
    320531,
    335506,
    885333,
    133227,
    806915,
    800313,
    981571,
    527253,
    24077,
    240232,
    559572,
    713399,
    233941,
    615514,
    911768,
    331680,
    951527,
    6805,
    552366,
    374660,
    223159,
    625884,
    417146,
    320527,
    784154,
    338792,
    1199,
    679804,
    1024680,
    40845,
    234603,
    761225,
    644903,
    502167,
    121477,
    505144,
    165165,
    179628,
    1019195,
    145149,
    263738,
    269256,
    996739,
    346296,
    555864,
    887384,
    444173,
    421844,
    653716,
    836747,
    783119,
    918762,
    946835,
    253764,
    519895,
    471224,
    134272,
    709016,
    44112,
    482585,
    461829,
    15080,
    148883,
    123467,
    480125,
    141348,
    65877,
    692958,
    148598,
    499131,
    584009,
    1017987,
    449287,
    277478,
    991262,
    509602,
    991896,
    853666,
    399318,
    197815,
    203278,
    903979,
    743015,
    888308,
    862143,
    979421,
    113605,
    206397,
    127113,
    844358,
    711569,
    229153,
    521470,
    401793,
    398896,
    940810,
    293983,
    884749,
    384802,
    584151,
    970201,
    523882,
    158093,
    929312,
    205329,
    106091,
    30949,
    195586,
    495723,
    348779,
    852312,
    1018463,
    1009481,
    448260,
    841042,
    122967,
    345269,
    794764,
    4520,
    818773,
    556171,
    954221,
    598210,
    887110,
    1020623,
    324632,
    398244,
    622241,
    456551,
    122648,
    127837,
    657676,
    119884,
    105156,
    999897,
    330160,
    119285,
    168005,
    389703,
    143699,
    142524,
    493258,
    846778,
    251420,
    516351,
    83344,
    171931,
    879178,
    663475,
    546865,
    428362,
    658891,
    500560,
    557034,
    830023,
    274471,
    629139,
    958869,
    663071,
    152133,
    19535,
]
C4_SET = {idx: value for value, idx in enumerate(C4_INDICES) if value}

# -- W3C Bitstring Status List v1.0 vectors -------------------------------------------------

# §2.2 example BitstringStatusListCredential: an empty list of 131,072 entries.
W3C_ENCODED_LIST = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
W3C_ENTRY = {
    "id": "https://example.com/credentials/status/3#94567",
    "type": "BitstringStatusListEntry",
    "statusPurpose": "revocation",
    "statusListIndex": "94567",
    "statusListCredential": LIST_URL,
}
W3C_LIST_CREDENTIAL = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "id": LIST_URL,
    "type": ["VerifiableCredential", "BitstringStatusListCredential"],
    "issuer": "did:example:12345",
    "validFrom": "2021-04-05T14:27:40Z",
    "credentialSubject": {
        "id": "https://example.com/status/3#list",
        "type": "BitstringStatusList",
        "statusPurpose": "revocation",
        "encodedList": W3C_ENCODED_LIST,
    },
}
# §2.1 example entry with statusPurpose "message" (the spec elides the 4th message).
W3C_MESSAGE_ENTRY = {
    "id": "https://example.com/credentials/status/8#492847",
    "type": "BitstringStatusListEntry",
    "statusPurpose": "message",
    "statusListIndex": "492847",
    "statusSize": 2,
    "statusListCredential": "https://example.com/credentials/status/8",
    "statusMessage": [
        {"status": "0x0", "message": "pending_review"},
        {"status": "0x1", "message": "accepted"},
        {"status": "0x2", "message": "rejected"},
        {"status": "0x3", "message": "undefined"},
    ],
    "statusReference": "https://example.org/status-dictionary/",
}


@pytest.fixture(scope="module")
def key() -> jose.Key:
    return jose.generate_key("ES256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _zlib_bomb(inflated_bytes: int) -> bytes:
    """ZLIB stream of ``inflated_bytes`` zeros (~1000:1), built without holding them."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_RLE)
    chunk = bytes(MiB)
    parts = [deflater.compress(chunk) for _ in range(inflated_bytes // MiB)]
    return b"".join(parts) + deflater.flush()


def _gzip_bomb(inflated_bytes: int) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9, zlib.Z_RLE)
    chunk = bytes(MiB)
    parts = [deflater.compress(chunk) for _ in range(inflated_bytes // MiB)]
    return b"".join(parts) + deflater.flush()


def _peak_bytes(action) -> int:
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _token(key: jose.Key, claims: dict, header: dict | None = None) -> str:
    return jose.encode_jws(claims, key, {"typ": "statuslist+jwt", **(header or {})})


def _claims(**overrides) -> dict:
    claims = {
        "sub": URI,
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "ttl": 43200,
        "status_list": {"bits": 1, "lst": TSL_1BIT_LST},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


# == Token Status List: encoding ===========================================================


@pytest.mark.parametrize(
    ("bits", "statuses", "raw", "lst"),
    [
        (1, TSL_1BIT_STATUSES, TSL_1BIT_BYTES, TSL_1BIT_LST),
        (2, TSL_2BIT_STATUSES, TSL_2BIT_BYTES, TSL_2BIT_LST),
    ],
)
def test_tsl_section_4_examples(bits, statuses, raw, lst):
    decoded = StatusList.decode({"bits": bits, "lst": lst})
    assert decoded.to_bytes() == raw
    assert [decoded.get(i) for i in range(len(statuses))] == statuses

    built = StatusList.create(len(statuses), bits)
    for idx, value in enumerate(statuses):
        built.set(idx, value)
    assert built.to_bytes() == raw
    # The draft's lst is zlib level 9, default strategy; ours defaults to Z_RLE, same bytes out.
    assert built.encode(9, zlib.Z_DEFAULT_STRATEGY) == {"bits": bits, "lst": lst}
    assert StatusList.decode(built.encode()).to_bytes() == raw


@pytest.mark.parametrize(
    ("bits", "lst", "expected"),
    [(1, C1_LST, C1_SET), (2, C2_LST, C2_SET), (4, C3_LST, C3_SET), (8, C4_LST, C4_SET)],
    ids=["C.1 1-bit", "C.2 2-bit", "C.3 4-bit", "C.4 8-bit"],
)
def test_tsl_appendix_c_vectors(bits, lst, expected):
    decoded = StatusList.decode({"bits": bits, "lst": lst})
    assert len(decoded) == 2**20
    raw = decoded.to_bytes()
    nonzero = {}
    for byte_index in (i for i, b in enumerate(raw) if b):
        for idx in range(byte_index * 8 // bits, (byte_index + 1) * 8 // bits):
            if decoded.get(idx):
                nonzero[idx] = decoded.get(idx)
    assert nonzero == expected

    built = StatusList.create(2**20, bits)
    for idx, value in expected.items():
        built.set(idx, value)
    assert built.encode(9, zlib.Z_DEFAULT_STRATEGY)["lst"] == lst
    assert StatusList.decode(built.encode()).to_bytes() == raw


def test_tsl_bit_order_is_lsb_first_hand_computed():
    one = StatusList.create(16, 1)
    one.set(0, 1)
    assert one.to_bytes() == b"\x01\x00"
    one.set(7, 1)
    one.set(8, 1)
    assert one.to_bytes() == b"\x81\x01"
    two = StatusList.create(8, 2)
    two.set(1, SUSPENDED)  # bits 2-3 of byte 0
    two.set(4, INVALID)  # bits 0-1 of byte 1
    assert two.to_bytes() == b"\x08\x01"
    four = StatusList.create(4, 4)
    four.set(1, 0xA)
    assert four.to_bytes() == b"\xa0\x00"
    eight = StatusList.create(2, 8)
    eight.set(1, 0x5C)
    assert eight.to_bytes() == b"\x00\x5c"


def test_tsl_set_overwrites_only_its_own_bits():
    status_list = StatusList.create(8, 2)
    for idx in range(8):
        status_list.set(idx, 3)
    status_list.set(5, VALID)
    assert [status_list.get(i) for i in range(8)] == [3, 3, 3, 3, 3, 0, 3, 3]


def test_tsl_create_rounds_up_to_whole_bytes():
    assert len(StatusList.create(1, 1)) == 8
    assert len(StatusList.create(9, 2)) == 12
    assert len(StatusList.create(1_000_000, 1).to_bytes()) == 125_000


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([1, 2, 4, 8]).flatmap(
        lambda bits: st.tuples(
            st.just(bits), st.lists(st.integers(0, 2**bits - 1), min_size=1, max_size=300)
        )
    )
)
def test_tsl_round_trip(bits_and_statuses):
    bits, statuses = bits_and_statuses
    status_list = StatusList.create(len(statuses), bits)
    for idx, value in enumerate(statuses):
        status_list.set(idx, value)
    decoded = StatusList.decode(status_list.encode())
    assert decoded.bits == bits
    assert [decoded.get(i) for i in range(len(statuses))] == statuses
    assert all(decoded.get(i) == 0 for i in range(len(statuses), len(decoded)))


# == Token Status List: rejections ==========================================================


@pytest.mark.parametrize("bits", [0, 3, 5, 16, -1, True, "1", 1.0, None])
def test_tsl_bits_other_than_1_2_4_8_refused(bits):
    with pytest.raises(StatusError, match="bits must be 1, 2, 4 or 8"):
        StatusList.decode({"bits": bits, "lst": TSL_1BIT_LST})
    with pytest.raises(StatusError, match="bits must be 1, 2, 4 or 8"):
        StatusList.create(8, bits)


@pytest.mark.parametrize(
    "lst", ["eNrb+RgAAhcBXQ", "eNrbuRgAAhcBXQ==", "eNrb uRgAAhcBXQ", "eNrb/RgAAhcBXQ", "e"]
)
def test_tsl_lst_not_base64url_refused(lst):
    with pytest.raises(StatusError, match="lst is not base64url"):
        StatusList.decode({"bits": 1, "lst": lst})


@pytest.mark.parametrize("lst", [None, 7, "", ["eNrbuRgAAhcBXQ"]])
def test_tsl_lst_missing_or_not_string_refused(lst):
    with pytest.raises(StatusError, match="lst must be a non-empty base64url string"):
        StatusList.decode({"bits": 1, "lst": lst})


@pytest.mark.parametrize(
    "payload",
    [
        b"not zlib at all",
        gzip.compress(TSL_1BIT_BYTES),  # GZIP wrapper is the Bitstring list's, not TSL's
        zlib.compress(TSL_1BIT_BYTES, 9)[2:-4],  # raw DEFLATE without the ZLIB wrapper
    ],
    ids=["junk", "gzip", "raw-deflate"],
)
def test_tsl_lst_not_zlib_refused(payload):
    with pytest.raises(StatusError, match="not valid compressed data"):
        StatusList.decode({"bits": 1, "lst": _b64(payload)})


@pytest.mark.parametrize(
    "payload",
    [zlib.compress(TSL_1BIT_BYTES)[:-3], zlib.compress(TSL_1BIT_BYTES) + b"\x00"],
    ids=["truncated", "trailing-bytes"],
)
def test_tsl_lst_truncated_or_trailing_refused(payload):
    with pytest.raises(StatusError, match="truncated or has trailing bytes"):
        StatusList.decode({"bits": 1, "lst": _b64(payload)})


def test_tsl_status_list_not_an_object_refused():
    with pytest.raises(StatusError, match="status_list must be a JSON object"):
        StatusList.decode(["bits", 1])


def test_tsl_zlib_bomb_refused_with_bounded_memory():
    bomb = _b64(_zlib_bomb(64 * MiB))  # ~64 KB of text claiming 64 MiB
    assert len(bomb) < 100_000

    def decode():
        with pytest.raises(StatusError, match="inflates to more than"):
            StatusList.decode({"bits": 1, "lst": bomb}, max_bytes=1 * MiB)

    assert _peak_bytes(decode) < 3 * MiB


def test_tsl_zlib_bomb_refused_under_default_limit():
    bomb = _b64(_zlib_bomb(64 * MiB))

    def decode():
        with pytest.raises(StatusError, match="inflates to more than 16777216 bytes"):
            StatusList.decode({"bits": 1, "lst": bomb})

    assert (
        _peak_bytes(decode) < 2 * 16 * MiB + MiB
    )  # bounded by the 16 MiB limit, never the 64 MiB claimed


def test_tsl_lst_longer_than_any_allowed_list_refused():
    with pytest.raises(StatusError, match="lst is too long"):
        StatusList.decode({"bits": 1, "lst": "A" * 5000}, max_bytes=1000)


@pytest.mark.parametrize("idx", [-1, 16, 10**30, True, 1.0, "1", None])
def test_tsl_get_outside_list_refused(idx):
    with pytest.raises(StatusError, match="index is outside the status list"):
        StatusList.decode({"bits": 1, "lst": TSL_1BIT_LST}).get(idx)


@pytest.mark.parametrize("value", [2, -1, True, 1.0, "1"])
def test_tsl_set_value_too_wide_refused(value):
    with pytest.raises(StatusError, match="status value must fit in 1 bits"):
        StatusList.create(8).set(0, value)


@pytest.mark.parametrize("size", [0, -8, True, 8.0])
def test_tsl_create_size_must_be_positive_int(size):
    with pytest.raises(StatusError, match="size must be a positive integer"):
        StatusList.create(size)


# == Referenced Token status claim ==========================================================


def test_status_reference_draft_example():
    claim = {"status_list": {"idx": 0, "uri": "https://example.com/statuslists/1"}}
    assert parse_status_reference(claim) == StatusListReference(0, URI)


def test_status_reference_ignores_extension_members():
    claim = {"status_list": {"idx": 412, "uri": URI, "x": 1}, "other_mechanism": {}}
    assert parse_status_reference(claim).idx == 412


@pytest.mark.parametrize("idx", [-1, True, False, "5", 5.0, None, [1]])
def test_status_reference_idx_must_be_non_negative_int(idx):
    with pytest.raises(StatusError, match="idx must be a non-negative integer"):
        parse_status_reference({"status_list": {"idx": idx, "uri": URI}})


@pytest.mark.parametrize(
    "uri", [None, 5, "", "statuslists/1", "https://exa mple.com/1", "https://x/\n", "a" * 3000]
)
def test_status_reference_uri_must_be_uri(uri):
    with pytest.raises(StatusError, match="uri must be a URI"):
        parse_status_reference({"status_list": {"idx": 1, "uri": uri}})


@pytest.mark.parametrize("claim", [None, [], "x", {}, {"status_list": "x"}, {"status_list": []}])
def test_status_reference_shape_refused(claim):
    with pytest.raises(StatusError, match="status claim"):
        parse_status_reference(claim)


# == Status List Token ======================================================================


def test_sign_status_list_token_shape(key):
    """T053: typ statuslist+jwt, sub = uri, iat, exp, ttl, status_list."""
    status_list = StatusList.create(16)
    token = sign_status_list_token(status_list, uri=URI, key=key, now=NOW, ttl=43200)
    jws = jose.parse_jws(token)
    assert jws.header == {"alg": "ES256", "typ": "statuslist+jwt", "kid": key.kid}
    claims = jws.claims()
    assert claims["sub"] == URI
    assert claims["iat"] == NOW
    assert claims["exp"] > NOW
    assert claims["ttl"] == 43200
    assert StatusList.decode(claims["status_list"]).to_bytes() == bytes(2)


def test_sign_status_list_token_extra_header_cannot_change_typ(key):
    token = sign_status_list_token(
        StatusList.create(8), uri=URI, key=key, now=NOW, header={"typ": "JWT", "x5c": ["AA"]}
    )
    assert jose.parse_jws(token).header["typ"] == "statuslist+jwt"
    assert jose.parse_jws(token).header["x5c"] == ["AA"]


@pytest.mark.parametrize("ttl", [0, -5, 1.5, True])
def test_sign_status_list_token_ttl_must_be_positive_int(key, ttl):
    with pytest.raises(StatusError, match="ttl must be a positive integer"):
        sign_status_list_token(StatusList.create(8), uri=URI, key=key, now=NOW, ttl=ttl)


def test_revoking_one_entry_changes_only_that_bit(key):
    """T053: revoke one credential, republish: exactly one bit differs."""
    status_list = StatusList.create(100_000)
    before = sign_status_list_token(status_list, uri=URI, key=key, now=NOW)
    status_list.set(4242, INVALID)
    after = sign_status_list_token(status_list, uri=URI, key=key, now=NOW + 1)
    old = verify_status_list_token(before, key.public(), uri=URI, now=NOW + 1).status_list
    new = verify_status_list_token(after, key.public(), uri=URI, now=NOW + 1).status_list
    diff = [a ^ b for a, b in zip(old.to_bytes(), new.to_bytes(), strict=True)]
    assert [(i, d) for i, d in enumerate(diff) if d] == [(4242 // 8, 1 << (4242 % 8))]


def test_draft_jwt_example_claims_verify(key):
    """§5.1 example claim set, signed with our key (the draft's key is not published)."""
    token = _token(key, {
        "exp": 2291720170,
        "iat": 1686920170,
        "status_list": {"bits": 1, "lst": TSL_1BIT_LST},
        "sub": "https://example.com/statuslists/1",
        "ttl": 43200,
    })  # fmt: skip
    verified = verify_status_list_token(token, key.public(), uri=URI, now=1686920170 + 60)
    assert (verified.iat, verified.exp, verified.ttl) == (1686920170, 2291720170, 43200)
    statuses = [verified.status(StatusListReference(i, URI)) for i in range(16)]
    assert statuses == TSL_1BIT_STATUSES


def test_status_of_reads_the_referenced_index(key):
    status_list = StatusList.create(64, 2)
    status_list.set(3, SUSPENDED)
    status_list.set(7, INVALID)
    token = sign_status_list_token(status_list, uri=URI, key=key, now=NOW)
    claim = {"status_list": {"idx": 3, "uri": URI}}
    assert status_of(claim, token, key.public(), NOW) == SUSPENDED
    assert status_of(StatusListReference(7, URI), token, key.public(), NOW) == INVALID
    assert status_of(StatusListReference(8, URI), token, key.public(), NOW) == VALID


@pytest.mark.parametrize("typ", ["JWT", "statuslist+cwt", "application/statuslist+jwt", None])
def test_token_typ_must_be_exactly_statuslist_jwt(key, typ):
    header = {"typ": typ} if typ else {}
    token = jose.encode_jws(_claims(), key, header)
    with pytest.raises(StatusError, match="typ must be 'statuslist\\+jwt'"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW)


def test_token_bad_signature_refused(key):
    token = _token(jose.generate_key("ES256"), _claims())
    with pytest.raises(StatusError, match="signature verification failed"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW)


def test_token_key_in_header_is_never_used(key):
    attacker = jose.generate_key("ES256")
    token = _token(attacker, _claims(), {"jwk": attacker.public_jwk()})
    with pytest.raises(StatusError, match="signature verification failed"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW)


def test_token_tampered_payload_refused(key):
    header, _, signature = _token(key, _claims()).split(".")
    forged = _b64(
        jose.strict_json.dumps(_claims(status_list={"bits": 1, "lst": "eJwDAAAAAAE"})).encode()
    )
    with pytest.raises(StatusError, match="signature verification failed"):
        verify_status_list_token(f"{header}.{forged}.{signature}", key.public(), uri=URI, now=NOW)


def test_token_algorithm_outside_allow_list_refused(key):
    header = _b64(b'{"alg":"HS256","typ":"statuslist+jwt"}')
    body = _b64(jose.strict_json.dumps(_claims()).encode())
    with pytest.raises(StatusError, match="never accepted"):
        verify_status_list_token(f"{header}.{body}.c2ln", key.public(), uri=URI, now=NOW)


def test_token_sub_must_equal_referenced_uri(key):
    token = _token(key, _claims(sub="https://example.com/statuslists/2"))
    with pytest.raises(StatusError, match="sub does not match the referenced uri"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW)
    with pytest.raises(StatusError, match="sub does not match the referenced uri"):
        status_of(StatusListReference(0, URI), token, key.public(), NOW)


def test_token_sub_missing_refused(key):
    with pytest.raises(StatusError, match="sub does not match"):
        verify_status_list_token(_token(key, _claims(sub=None)), key.public(), uri=URI, now=NOW)


def test_verified_token_refuses_reference_to_another_list(key):
    verified = verify_status_list_token(_token(key, _claims()), key.public(), uri=URI, now=NOW)
    with pytest.raises(StatusError, match="sub does not match"):
        verified.status(StatusListReference(0, "https://example.com/statuslists/2"))


def test_token_expired_refused(key):
    token = _token(key, _claims(exp=NOW - 3600))
    with pytest.raises(StatusError, match="expired"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW)


def test_token_exp_optional_unless_required(key):
    token = _token(key, _claims(exp=None))
    assert verify_status_list_token(token, key.public(), uri=URI, now=NOW).exp is None
    with pytest.raises(StatusError, match="missing exp"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW, require_exp=True)


def test_token_iat_required(key):
    with pytest.raises(StatusError, match="missing iat"):
        verify_status_list_token(_token(key, _claims(iat=None)), key.public(), uri=URI, now=NOW)


@pytest.mark.parametrize("iat", [NOW + 3600, "1800000000", 1.5e9])
def test_token_iat_in_future_or_malformed_refused(key, iat):
    with pytest.raises(StatusError, match="iat"):
        verify_status_list_token(_token(key, _claims(iat=iat)), key.public(), uri=URI, now=NOW)


@pytest.mark.parametrize("ttl", [0, -1, "43200", True, [1]])
def test_token_ttl_must_be_positive_number(key, ttl):
    with pytest.raises(StatusError, match="ttl must be a positive number"):
        verify_status_list_token(_token(key, _claims(ttl=ttl)), key.public(), uri=URI, now=NOW)


def test_token_status_list_missing_refused(key):
    token = _token(key, _claims(status_list=None))
    with pytest.raises(StatusError, match="status_list must be a JSON object"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW)


def test_token_with_bits_3_refused(key):
    token = _token(key, _claims(status_list={"bits": 3, "lst": TSL_1BIT_LST}))
    with pytest.raises(StatusError, match="bits must be 1, 2, 4 or 8"):
        verify_status_list_token(token, key.public(), uri=URI, now=NOW)


def test_token_with_zlib_bomb_refused(key):
    """T107: a signed token whose lst claims 64 MiB is refused with bounded memory."""
    bomb = _b64(_zlib_bomb(64 * MiB))
    token = _token(key, _claims(status_list={"bits": 1, "lst": bomb}))

    def verify():
        with pytest.raises(StatusError, match="inflates to more than"):
            verify_status_list_token(token, key.public(), uri=URI, now=NOW, max_list_bytes=MiB)

    assert _peak_bytes(verify) < 4 * MiB


def test_token_too_large_refused(key):
    with pytest.raises(StatusError, match="token larger than"):
        verify_status_list_token("a" * 2_000_000, key.public(), uri=URI, now=NOW)


@pytest.mark.parametrize("idx", [16, 10**6])
def test_status_of_index_out_of_range_rejects_referenced_token(key, idx):
    token = _token(key, _claims())
    with pytest.raises(StatusError, match="idx is outside the status list"):
        status_of({"status_list": {"idx": idx, "uri": URI}}, token, key.public(), NOW)


@pytest.mark.parametrize("idx", [-1, True, "3"])
def test_status_of_malformed_idx_refused(key, idx):
    token = _token(key, _claims())
    with pytest.raises(StatusError, match="idx must be a non-negative integer"):
        status_of({"status_list": {"idx": idx, "uri": URI}}, token, key.public(), NOW)


# == caching (T108) ==========================================================================


@pytest.mark.parametrize(
    ("ttl", "exp", "expected"),
    [
        (0.001, None, 30),  # ttl ~0 -> lower bound, no request storm
        (10**12, None, 86400),  # huge ttl -> upper bound
        (None, NOW + 10**9, 86400),  # exp far in the future -> upper bound
        (600, NOW + 10**9, 600),
        (600, NOW + 120, 120),  # exp sooner than ttl wins
        (600, NOW - 5, 30),  # already expired: lower bound (verification refuses it anyway)
        (None, None, 86400),
        (43200.5, None, 43200),
    ],
)
def test_cache_lifetime_clamped(ttl, exp, expected):
    assert cache_lifetime(ttl, exp, now=NOW, min_seconds=30, max_seconds=86400) == expected


def test_cache_lifetime_from_verified_token(key):
    token = _token(key, _claims(ttl=10**12, exp=NOW + 10**8))
    verified = verify_status_list_token(token, key.public(), uri=URI, now=NOW)
    assert verified.cache_lifetime(now=NOW, min_seconds=60, max_seconds=3600) == 3600


def test_cache_lifetime_bounds_must_be_ordered():
    with pytest.raises(StatusError, match="cache bounds"):
        cache_lifetime(60, None, now=NOW, min_seconds=100, max_seconds=10)


# == fetching ================================================================================


def test_fetch_status_list_token(key):
    token = _token(key, _claims())
    fetch = fetch_from_mapping(
        {URI: FetchResponse(token.encode(), "application/statuslist+jwt; charset=utf-8")}
    )
    assert fetch_status_list_token(URI, fetch) == token


def test_fetch_wrong_media_type_refused(key):
    fetch = fetch_from_mapping({URI: FetchResponse(b"x.y.z", "application/json")})
    with pytest.raises(StatusError, match="not application/statuslist\\+jwt"):
        fetch_status_list_token(URI, fetch)


def test_fetch_failure_is_status_error():
    with pytest.raises(StatusError, match="could not be retrieved"):
        fetch_status_list_token(URI, fetch_from_mapping({}))


# == Bitstring Status List: encoding =========================================================


def test_w3c_example_encoded_list():
    decoded = BitstringStatusList.decode(W3C_ENCODED_LIST)
    assert len(decoded) == MIN_BITSTRING_ENTRIES
    assert decoded.to_bytes() == bytes(16384)
    # The example was made with GZIP level 6, default strategy; we reproduce it exactly.
    assert BitstringStatusList.create().encode(6, zlib.Z_DEFAULT_STRATEGY) == W3C_ENCODED_LIST
    assert BitstringStatusList.decode(BitstringStatusList.create().encode()).to_bytes() == bytes(
        16384
    )


def test_w3c_example_entry_against_example_list():
    entry = parse_bitstring_status_entry(W3C_ENTRY)
    assert entry == BitstringStatusEntry(
        id="https://example.com/credentials/status/3#94567",
        status_purpose="revocation",
        index=94567,
        list_credential=LIST_URL,
    )
    result = bitstring_status(entry, W3C_LIST_CREDENTIAL)
    assert result.as_dict() == {"status": 0, "purpose": "revocation", "valid": True}


def test_bitstring_bit_order_is_msb_first_hand_computed():
    """Index 0 is the most significant bit of byte 0: the opposite of the TSL order."""
    one = BitstringStatusList.create()
    one.set(0, 1)
    assert one.to_bytes()[:2] == b"\x80\x00"
    one.set(7, 1)
    one.set(8, 1)
    assert one.to_bytes()[:2] == b"\x81\x80"
    two = BitstringStatusList.create(status_size=2)
    two.set(0, 0b01)
    two.set(1, 0b11)
    assert two.to_bytes()[:1] == b"\x70"  # 01 11 00 00
    three = BitstringStatusList.create(status_size=3)
    three.set(2, 0b101)  # bits 6, 7 of byte 0 and bit 0 (MSB) of byte 1
    assert three.to_bytes()[:2] == b"\x02\x80"
    assert three.get(2) == 0b101
    assert [three.get(i) for i in (0, 1, 3)] == [0, 0, 0]


def test_same_index_lands_on_opposite_bits_in_the_two_lists():
    tsl, bsl = StatusList.create(MIN_BITSTRING_ENTRIES), BitstringStatusList.create()
    tsl.set(1, 1)
    bsl.set(1, 1)
    assert tsl.to_bytes()[0] == 0b0000_0010
    assert bsl.to_bytes()[0] == 0b0100_0000


def test_bitstring_million_entries():
    status_list = BitstringStatusList.create(1_000_000)
    status_list.set(999_999, 1)
    decoded = BitstringStatusList.decode(status_list.encode())
    assert len(decoded) == 1_000_000
    assert decoded.get(999_999) == 1
    assert decoded.get(999_998) == 0


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda size: st.tuples(
            st.just(size),
            st.dictionaries(
                st.integers(0, 2000), st.integers(0, 2**size - 1), min_size=0, max_size=50
            ),
        )
    )
)
def test_bitstring_round_trip(size_and_values):
    status_size, values = size_and_values
    status_list = BitstringStatusList.create(2001, status_size, min_entries=1)
    for idx, value in values.items():
        status_list.set(idx, value)
    decoded = BitstringStatusList.decode(status_list.encode(), status_size, min_entries=1)
    assert decoded.to_bytes() == status_list.to_bytes()
    assert all(decoded.get(i) == values.get(i, 0) for i in range(2001))


@settings(max_examples=10, deadline=None)
@given(st.sets(st.integers(0, MIN_BITSTRING_ENTRIES - 1), max_size=40))
def test_bitstring_round_trip_full_size(indices):
    status_list = BitstringStatusList.create()
    for idx in indices:
        status_list.set(idx, 1)
    decoded = BitstringStatusList.decode(status_list.encode())
    assert {i for i in range(len(decoded)) if decoded.get(i)} == indices


@settings(max_examples=50)
@given(st.integers(0, 10**15 - 1))
def test_status_list_index_round_trip(index):
    entry = parse_bitstring_status_entry({**W3C_ENTRY, "statusListIndex": str(index)})
    assert entry.index == index


# == Bitstring Status List: rejections =======================================================


def test_bitstring_smaller_than_131072_entries_refused():
    with pytest.raises(StatusError, match="fewer than 131072 entries") as caught:
        BitstringStatusList.create(MIN_BITSTRING_ENTRIES - 8)
    assert caught.value.code == "STATUS_LIST_LENGTH_ERROR"
    short = "u" + _b64(gzip.compress(bytes(16383)))
    with pytest.raises(StatusError) as caught:
        BitstringStatusList.decode(short)
    assert caught.value.code == "STATUS_LIST_LENGTH_ERROR"


def test_bitstring_length_counts_entries_not_bits():
    """§3.2: length / statusSize < 131,072 -> STATUS_LIST_LENGTH_ERROR."""
    with pytest.raises(StatusError) as caught:
        BitstringStatusList.decode(W3C_ENCODED_LIST, 2)
    assert caught.value.code == "STATUS_LIST_LENGTH_ERROR"


def test_bitstring_status_short_list_is_length_error():
    claims = _list_claims("u" + _b64(gzip.compress(bytes(1024))))
    with pytest.raises(StatusError) as caught:
        bitstring_status(W3C_ENTRY, claims)
    assert caught.value.code == "STATUS_LIST_LENGTH_ERROR"
    assert caught.value.problem_type == (
        "https://www.w3.org/ns/credentials/status-list#STATUS_LIST_LENGTH_ERROR"
    )


def test_bitstring_gzip_bomb_refused_with_bounded_memory():
    bomb = "u" + _b64(_gzip_bomb(64 * MiB))

    def decode():
        with pytest.raises(StatusError, match="inflates to more than") as caught:
            BitstringStatusList.decode(bomb, max_bytes=MiB)
        assert caught.value.code == "MALFORMED_VALUE_ERROR"

    assert _peak_bytes(decode) < 3 * MiB


def test_bitstring_gzip_bomb_in_list_credential_refused():
    claims = _list_claims("u" + _b64(_gzip_bomb(64 * MiB)))

    def check():
        with pytest.raises(StatusError, match="inflates to more than") as caught:
            bitstring_status(W3C_ENTRY, claims, max_bytes=MiB)
        assert caught.value.code == "MALFORMED_VALUE_ERROR"

    assert _peak_bytes(check) < 4 * MiB


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (W3C_ENCODED_LIST[1:], "prefix 'u'"),  # StatusList2021 form without multibase prefix
        ("z" + W3C_ENCODED_LIST[1:], "prefix 'u'"),
        ("uH4sI+AAA", "not base64url"),
        ("u" + _b64(zlib.compress(bytes(16384))), "not valid compressed data"),  # ZLIB, not GZIP
        ("u" + _b64(gzip.compress(bytes(16384)) + b"\x00\x00"), "truncated or has trailing"),
        ("u" + _b64(gzip.compress(bytes(16384))[:-5]), "truncated or has trailing"),
        (12345, "prefix 'u'"),
    ],
)
def test_bitstring_malformed_encoded_list_refused(encoded, message):
    with pytest.raises(StatusError, match=message) as caught:
        BitstringStatusList.decode(encoded)
    assert caught.value.code == "MALFORMED_VALUE_ERROR"


@pytest.mark.parametrize("idx", [MIN_BITSTRING_ENTRIES, -1, True, "1"])
def test_bitstring_index_outside_list_is_range_error(idx):
    with pytest.raises(StatusError) as caught:
        BitstringStatusList.create().get(idx)
    assert caught.value.code == "RANGE_ERROR"
    with pytest.raises(StatusError) as caught:
        BitstringStatusList.create(status_size=2).get(idx)
    assert caught.value.code == "RANGE_ERROR"


def test_bitstring_status_index_outside_list_is_range_error():
    entry = {**W3C_ENTRY, "statusListIndex": str(MIN_BITSTRING_ENTRIES)}
    with pytest.raises(StatusError) as caught:
        bitstring_status(entry, W3C_LIST_CREDENTIAL)
    assert caught.value.code == "RANGE_ERROR"
    assert caught.value.problem_type == "https://www.w3.org/TR/vc-data-model#RANGE_ERROR"


@pytest.mark.parametrize("value", [2, -1, True])
def test_bitstring_set_value_too_wide_refused(value):
    with pytest.raises(StatusError, match="must fit in 1 bits"):
        BitstringStatusList.create().set(0, value)


@pytest.mark.parametrize("status_size", [0, -1, 9, True, "2"])
def test_bitstring_status_size_out_of_range_refused(status_size):
    with pytest.raises(StatusError, match="statusSize"):
        BitstringStatusList.create(status_size=status_size)


def test_bitstring_status_purpose_mismatch_is_verification_error():
    entry = {**W3C_ENTRY, "statusPurpose": "suspension"}
    with pytest.raises(StatusError) as caught:
        bitstring_status(entry, W3C_LIST_CREDENTIAL)
    assert caught.value.code == "STATUS_VERIFICATION_ERROR"


def test_bitstring_status_list_with_several_purposes():
    bsl = BitstringStatusList.create()
    bsl.set(94567, 1)
    claims = _list_claims(bsl.encode(), purpose=["revocation", "suspension"])
    result = bitstring_status({**W3C_ENTRY, "statusPurpose": "suspension"}, claims)
    assert result.as_dict() == {"status": 1, "purpose": "suspension", "valid": False}


def test_bitstring_status_list_credential_id_must_be_entry_url():
    claims = {**W3C_LIST_CREDENTIAL, "id": "https://example.com/credentials/status/4"}
    with pytest.raises(StatusError) as caught:
        bitstring_status(W3C_ENTRY, claims)
    assert caught.value.code == "STATUS_VERIFICATION_ERROR"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(type=["VerifiableCredential"]),
        lambda c: c.update(type="BitstringStatusListCredential"),
        lambda c: c.update(credentialSubject=[c["credentialSubject"]]),
        lambda c: c["credentialSubject"].update(type="StatusList2021"),
        lambda c: c["credentialSubject"].pop("statusPurpose"),
        lambda c: c["credentialSubject"].update(statusPurpose=[]),
        lambda c: c["credentialSubject"].update(statusPurpose=["revocation", 7]),
        lambda c: c["credentialSubject"].pop("encodedList"),
    ],
    ids=["type", "type-string", "subject-array", "subject-type", "no-purpose", "empty-purpose",
         "non-string-purpose", "no-encoded-list"],
)  # fmt: skip
def test_bitstring_malformed_list_credential_refused(mutate):
    claims = {
        **W3C_LIST_CREDENTIAL,
        "credentialSubject": dict(W3C_LIST_CREDENTIAL["credentialSubject"]),
    }
    mutate(claims)
    with pytest.raises(StatusError) as caught:
        bitstring_status(W3C_ENTRY, claims)
    assert caught.value.code == "MALFORMED_VALUE_ERROR"


def test_bitstring_message_purpose_reports_message():
    entry = {**W3C_MESSAGE_ENTRY, "statusListCredential": LIST_URL}
    bsl = BitstringStatusList.create(500_000, status_size=2)
    bsl.set(492847, 2)
    result = bitstring_status(entry, _list_claims(bsl.encode(), purpose="message"))
    assert result.as_dict() == {
        "status": 2,
        "purpose": "message",
        "valid": False,
        "message": "rejected",
    }


def test_w3c_message_entry_parses():
    entry = parse_bitstring_status_entry(W3C_MESSAGE_ENTRY)
    assert entry.status_size == 2
    assert entry.message_for(1) == "accepted"


@pytest.mark.parametrize(
    "index",
    [94567, "-1", "+1", " 1", "1 ", "0x10", "1_000", "1e3", "", "١٢", "１", "9" * 16, None],
    ids=["int", "neg", "plus", "lead-space", "trail-space", "hex", "underscore", "exp",
         "empty", "arabic-indic", "fullwidth", "too-long", "missing"],
)  # fmt: skip
def test_entry_index_must_be_base10_string(index):
    with pytest.raises(StatusError, match="statusListIndex must be a base-10") as caught:
        parse_bitstring_status_entry({**W3C_ENTRY, "statusListIndex": index})
    assert caught.value.code == "MALFORMED_VALUE_ERROR"


@pytest.mark.parametrize(
    "entry_type",
    ["StatusList2021Entry", ["BitstringStatusListEntry"], None, "bitstringstatuslistentry"],
)
def test_entry_type_must_be_bitstring_status_list_entry(entry_type):
    with pytest.raises(StatusError, match="type must be 'BitstringStatusListEntry'") as caught:
        parse_bitstring_status_entry({**W3C_ENTRY, "type": entry_type})
    assert caught.value.code == "MALFORMED_VALUE_ERROR"


def test_entry_id_equal_to_list_url_refused():
    with pytest.raises(StatusError, match="id must not be the status list URL"):
        parse_bitstring_status_entry({**W3C_ENTRY, "id": LIST_URL})


def test_entry_id_optional():
    entry = {k: v for k, v in W3C_ENTRY.items() if k != "id"}
    assert parse_bitstring_status_entry(entry).id is None


@pytest.mark.parametrize("purpose", [None, "", 7, ["revocation"]])
def test_entry_purpose_must_be_string(purpose):
    with pytest.raises(StatusError, match="statusPurpose must be a non-empty string"):
        parse_bitstring_status_entry({**W3C_ENTRY, "statusPurpose": purpose})


@pytest.mark.parametrize("url", [None, "", "status/3", 3])
def test_entry_list_credential_must_be_url(url):
    with pytest.raises(StatusError, match="statusListCredential must be a URL"):
        parse_bitstring_status_entry({**W3C_ENTRY, "statusListCredential": url})


def test_entry_not_an_object_refused():
    with pytest.raises(StatusError, match="must be a JSON object"):
        parse_bitstring_status_entry([W3C_ENTRY])


@pytest.mark.parametrize("status_size", [0, -1, 9, True, "2", 1.0])
def test_entry_status_size_invalid_refused(status_size):
    with pytest.raises(StatusError, match="statusSize must be an integer from 1 to 8"):
        parse_bitstring_status_entry({**W3C_MESSAGE_ENTRY, "statusSize": status_size})


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (None, "statusMessage is required"),
        (W3C_MESSAGE_ENTRY["statusMessage"][:3], "one message per status value"),
        ("pending", "one message per status value"),
        ([*W3C_MESSAGE_ENTRY["statusMessage"][:3], {"status": "3", "message": "x"}], "hex"),
        ([*W3C_MESSAGE_ENTRY["statusMessage"][:3], {"status": "0x3"}], "message must be a string"),
        ([*W3C_MESSAGE_ENTRY["statusMessage"][:3], {"status": "0x2", "message": "x"}], "once"),
        ([*W3C_MESSAGE_ENTRY["statusMessage"][:3], "0x3"], "hex"),
    ],
)
def test_entry_status_message_rules(messages, error):
    entry = {k: v for k, v in W3C_MESSAGE_ENTRY.items() if k != "statusMessage"}
    if messages is not None:
        entry["statusMessage"] = messages
    with pytest.raises(StatusError, match=error):
        parse_bitstring_status_entry(entry)


# == Bitstring Status List credential (unsigned) =============================================


def test_bitstring_status_list_credential_shape():
    bsl = BitstringStatusList.create()
    bsl.set(94567, 1)
    credential = bitstring_status_list_credential(
        bsl,
        id=LIST_URL,
        issuer="https://issuer.intyg.example",
        status_purpose="revocation",
        valid_from=datetime(2026, 1, 12, 8, 0, 0, 123, tzinfo=UTC),
        valid_until=datetime(2026, 1, 13, 8, 0, tzinfo=UTC),
        ttl_ms=300_000,
    )
    assert credential["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert credential["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert credential["issuer"] == "https://issuer.intyg.example"
    assert credential["validFrom"] == "2026-01-12T08:00:00Z"
    assert credential["validUntil"] == "2026-01-13T08:00:00Z"
    subject = credential["credentialSubject"]
    assert subject["id"] == LIST_URL + "#list"
    assert subject["type"] == "BitstringStatusList"
    assert subject["statusPurpose"] == "revocation"
    assert subject["ttl"] == 300_000
    assert "proof" not in credential
    result = bitstring_status(W3C_ENTRY, credential)
    assert result.as_dict() == {"status": 1, "purpose": "revocation", "valid": False}


def test_bitstring_status_list_credential_several_purposes():
    credential = bitstring_status_list_credential(
        BitstringStatusList.create(),
        id=LIST_URL,
        issuer="did:example:12345",
        status_purpose=["revocation", "suspension"],
        valid_from=datetime(2026, 1, 12, tzinfo=UTC),
    )
    assert credential["credentialSubject"]["statusPurpose"] == ["revocation", "suspension"]
    assert "validUntil" not in credential
    assert "ttl" not in credential["credentialSubject"]


def test_bitstring_status_list_credential_naive_time_refused():
    with pytest.raises(StatusError, match="timezone-aware"):
        bitstring_status_list_credential(
            BitstringStatusList.create(),
            id=LIST_URL,
            issuer="did:example:12345",
            status_purpose="revocation",
            valid_from=datetime(2026, 1, 12),
        )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"status_purpose": []}, "statusPurpose"),
        ({"status_purpose": ""}, "statusPurpose"),
        ({"id": "not a url"}, "must be URLs"),
        ({"ttl_ms": 0}, "ttl"),
    ],
)
def test_bitstring_status_list_credential_bad_arguments(kwargs, error):
    arguments = {
        "id": LIST_URL,
        "issuer": "did:example:12345",
        "status_purpose": "revocation",
        "valid_from": datetime(2026, 1, 12, tzinfo=UTC),
        **kwargs,
    }
    with pytest.raises(StatusError, match=error):
        bitstring_status_list_credential(BitstringStatusList.create(), **arguments)


def test_status_error_codes():
    assert StatusError("x").code is None
    assert StatusError("x").problem_type is None
    assert StatusError("x", "STATUS_VERIFICATION_ERROR").problem_type == (
        "https://www.w3.org/ns/credentials/status-list#STATUS_VERIFICATION_ERROR"
    )
    assert isinstance(StatusError("x"), ValueError)


def _list_claims(encoded_list: str, purpose: str | list[str] = "revocation") -> dict:
    return {
        **W3C_LIST_CREDENTIAL,
        "credentialSubject": {
            **W3C_LIST_CREDENTIAL["credentialSubject"],
            "statusPurpose": purpose,
            "encodedList": encoded_list,
        },
    }
