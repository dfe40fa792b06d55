"""Status lists: IETF Token Status List (draft-ietf-oauth-status-list-20) for SD-JWT VC and
W3C Bitstring Status List v1.0 (REC 15 May 2025) for VCDM 2.0 credentials.

The two lists look alike but are not interchangeable:

========================  ======================================  ================================
                          Token Status List (TSL)                 Bitstring Status List (BSL)
========================  ======================================  ================================
bit order in a byte       least significant bit first (§4.1)      most significant bit first (§2.2)
entry width               ``bits`` in {1, 2, 4, 8}                ``statusSize`` >= 1 (we: 1..8)
compression               DEFLATE in ZLIB (RFC 1950/1951)         GZIP (RFC 1952)
text encoding             base64url                               multibase ``u`` + base64url
minimum size              none                                    131,072 entries (§3.2)
secured as                ``statuslist+jwt`` (here)               a VC (``intyg.vcdm``)
========================  ======================================  ================================

Both decoders inflate with a hard output limit (security.md T107): ``zlib.decompressobj`` with
``max_length`` never produces more than the limit plus one byte, so a decompression bomb costs
bounded memory and time. Lists are kept as a ``bytearray``; reading or setting an entry is O(1).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from intyg import jose
from intyg.fetch import Fetch, FetchError

# -- shared -------------------------------------------------------------------------------

#: Largest uncompressed list accepted by default: 16 MiB = 134,217,728 one-bit entries.
DEFAULT_MAX_LIST_BYTES = 16 * 1024 * 1024
#: Status list tokens are bigger than ordinary JWTs; the payload limit in ``jose`` still applies.
MAX_STATUS_LIST_TOKEN_BYTES = 1_000_000
DEFAULT_COMPRESSION_LEVEL = 9
#: Status lists are long runs of zero bytes with a few set bits, the case run-length matching
#: is made for: on 1,000,000 entries with 1 % set, ``Z_RLE`` at level 9 is ~50x faster than the
#: default strategy at level 9 (~1 ms instead of ~100 ms) and smaller than level 6.
DEFAULT_COMPRESSION_STRATEGY = zlib.Z_RLE
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f]+")
MAX_URI_LENGTH = 2048

_STATUS_LIST_PROBLEM_BASE = "https://www.w3.org/ns/credentials/status-list#"
_VCDM_PROBLEM_BASE = "https://www.w3.org/TR/vc-data-model#"


class StatusError(ValueError):
    """A status list, token, reference or entry was refused; fail closed.

    ``code`` is the W3C error name (``RANGE_ERROR``, ``STATUS_VERIFICATION_ERROR`` ...) where
    the Bitstring Status List or VCDM defines one, else ``None``.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def problem_type(self) -> str | None:
        """RFC 9457 ``type`` URL for the error (Bitstring Status List §3.5, VCDM 2.0 §7.1)."""
        if self.code is None:
            return None
        base = _STATUS_LIST_PROBLEM_BASE if self.code.startswith("STATUS_") else _VCDM_PROBLEM_BASE
        return base + self.code


def _deflate(data: bytes | bytearray, *, wbits: int, level: int, strategy: int) -> bytes:
    """DEFLATE in a ZLIB (``wbits`` 15) or GZIP (``wbits`` 31) wrapper."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, wbits, 9, strategy)
    return deflater.compress(data) + deflater.flush()


def _inflate(data: bytes, *, wbits: int, max_bytes: int, code: str | None) -> bytes:
    """Decompress one complete stream, refusing output larger than ``max_bytes`` (T107).

    ``max_length`` stops zlib after ``max_bytes + 1`` bytes, so memory and time stay bounded
    whatever the compressed input claims. Truncated streams and trailing bytes are refused.
    """
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise StatusError("status list is not valid compressed data", code) from exc
    if len(out) > max_bytes:
        raise StatusError(f"status list inflates to more than {max_bytes} bytes", code)
    if not inflater.eof or inflater.unused_data:
        raise StatusError("status list compressed data is truncated or has trailing bytes", code)
    return out


def _max_compressed_chars(max_bytes: int) -> int:
    # DEFLATE never expands data by more than ~0.1 % plus headers; anything longer is junk.
    return (max_bytes + max_bytes // 512 + 1024) * 4 // 3 + 4


def _is_uri(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_URI_LENGTH and bool(_URI.fullmatch(value))


# -- IETF Token Status List (draft-ietf-oauth-status-list-20) ------------------------------

VALID = 0x00
INVALID = 0x01
SUSPENDED = 0x02
ALLOWED_BITS = (1, 2, 4, 8)
STATUS_LIST_JWT_TYP = "statuslist+jwt"
STATUS_LIST_JWT_MEDIA_TYPE = "application/statuslist+jwt"
DEFAULT_TTL_SECONDS = 300
DEFAULT_TOKEN_LIFETIME_SECONDS = 24 * 3600
#: Cache bounds for :func:`cache_lifetime` (T108): never hammer the issuer, never go stale.
DEFAULT_MIN_CACHE_SECONDS = 30
DEFAULT_MAX_CACHE_SECONDS = 24 * 3600


class StatusList:
    """A Token Status List: ``bits`` bits per Referenced Token, LSB first (TSL §4.1 step 3).

    Index ``i`` lives in byte ``i * bits // 8`` at bit offset ``(i * bits) % 8`` counted from
    the least significant bit. ``size`` is the number of entries the byte array holds.
    """

    __slots__ = ("_lst", "_mask", "_per_byte", "bits", "size")

    def __init__(self, bits: int, lst: bytes | bytearray) -> None:
        if type(bits) is not int or bits not in ALLOWED_BITS:
            raise StatusError("bits must be 1, 2, 4 or 8")
        self.bits = bits
        self._per_byte = 8 // bits
        self._mask = (1 << bits) - 1
        self._lst = bytearray(lst)
        self.size = len(self._lst) * self._per_byte

    @classmethod
    def create(cls, size: int, bits: int = 1) -> StatusList:
        """An all-VALID list of at least ``size`` entries, whole bytes (TSL §4.1 step 2)."""
        if type(size) is not int or size <= 0:
            raise StatusError("size must be a positive integer")
        if type(bits) is not int or bits not in ALLOWED_BITS:
            raise StatusError("bits must be 1, 2, 4 or 8")
        return cls(bits, bytearray(-(-size * bits // 8)))

    def __len__(self) -> int:
        return self.size

    def _locate(self, idx: int) -> tuple[int, int]:
        if type(idx) is not int or not 0 <= idx < self.size:
            raise StatusError("index is outside the status list")
        byte, slot = divmod(idx, self._per_byte)
        return byte, slot * self.bits

    def get(self, idx: int) -> int:
        """The status value of entry ``idx`` (TSL §4.1 step 3)."""
        byte, shift = self._locate(idx)
        return (self._lst[byte] >> shift) & self._mask

    def set(self, idx: int, value: int) -> None:
        """Set entry ``idx`` to ``value`` (0 .. 2**bits - 1); O(1)."""
        if type(value) is not int or not 0 <= value <= self._mask:
            raise StatusError(f"status value must fit in {self.bits} bits")
        byte, shift = self._locate(idx)
        self._lst[byte] = (self._lst[byte] & ~(self._mask << shift)) | (value << shift)

    def to_bytes(self) -> bytes:
        return bytes(self._lst)

    def encode(
        self,
        level: int = DEFAULT_COMPRESSION_LEVEL,
        strategy: int = DEFAULT_COMPRESSION_STRATEGY,
    ) -> dict[str, Any]:
        """The JSON Status List ``{"bits", "lst"}`` (TSL §4.2; §4.1 step 4: ZLIB, level 9)."""
        compressed = _deflate(self._lst, wbits=zlib.MAX_WBITS, level=level, strategy=strategy)
        return {"bits": self.bits, "lst": jose.b64url_encode(compressed)}

    @classmethod
    def decode(
        cls, status_list: Mapping[str, Any], *, max_bytes: int = DEFAULT_MAX_LIST_BYTES
    ) -> StatusList:
        """Parse a JSON Status List (TSL §4.2, §8.3 step 5); inflation is bounded by ``max_bytes``
        (TSL §11.1, T107)."""
        if not isinstance(status_list, Mapping):
            raise StatusError("status_list must be a JSON object")
        bits, lst = status_list.get("bits"), status_list.get("lst")
        if type(bits) is not int or bits not in ALLOWED_BITS:
            raise StatusError("bits must be 1, 2, 4 or 8")
        if not isinstance(lst, str) or not lst:
            raise StatusError("lst must be a non-empty base64url string")
        if len(lst) > _max_compressed_chars(max_bytes):
            raise StatusError("lst is too long")
        try:
            compressed = jose.b64url_decode(lst)
        except jose.JoseError as exc:
            raise StatusError("lst is not base64url") from exc
        return cls(bits, _inflate(compressed, wbits=zlib.MAX_WBITS, max_bytes=max_bytes, code=None))


@dataclass(frozen=True)
class StatusListReference:
    """The ``status.status_list`` claim of a Referenced Token (TSL §6.2)."""

    idx: int
    uri: str


def parse_status_reference(status_claim: Mapping[str, Any]) -> StatusListReference:
    """Validate the Referenced Token's ``status`` claim value (TSL §6.2, §8.3 step 1).

    ``{"status_list": {"idx": non-negative integer, "uri": URI}}``; other members of ``status``
    and of ``status_list`` are ignored (the draft allows extensions).
    """
    # Parsed JSON gives dicts: test that first, the Mapping ABC check only for other callers.
    if type(status_claim) is not dict and not isinstance(status_claim, Mapping):
        raise StatusError("status claim must be a JSON object")
    reference = status_claim.get("status_list")
    if type(reference) is not dict and not isinstance(reference, Mapping):
        raise StatusError("status claim has no status_list object")
    idx, uri = reference.get("idx"), reference.get("uri")
    if type(idx) is not int or idx < 0:
        raise StatusError("status_list.idx must be a non-negative integer")
    if not _is_uri(uri):
        raise StatusError("status_list.uri must be a URI")
    return StatusListReference(idx, uri)


@dataclass(frozen=True)
class StatusListToken:
    """A verified Status List Token (TSL §5.1); build it with :func:`verify_status_list_token`."""

    sub: str
    iat: int
    exp: int | None
    ttl: int | float | None
    status_list: StatusList
    claims: dict[str, Any] = field(repr=False, compare=False)

    def status(self, reference: StatusListReference) -> int:
        """Status of ``reference`` (TSL §8.3 steps 4a and 6): ``sub`` must equal its ``uri``;
        an index outside the list means the Referenced Token must be rejected."""
        if reference.uri != self.sub:
            raise StatusError("status list token sub does not match the referenced uri")
        try:
            return self.status_list.get(reference.idx)
        except StatusError:
            raise StatusError("status_list.idx is outside the status list") from None

    def cache_lifetime(
        self,
        *,
        now: int,
        min_seconds: int = DEFAULT_MIN_CACHE_SECONDS,
        max_seconds: int = DEFAULT_MAX_CACHE_SECONDS,
    ) -> int:
        """See :func:`cache_lifetime`."""
        return cache_lifetime(
            self.ttl, self.exp, now=now, min_seconds=min_seconds, max_seconds=max_seconds
        )


def sign_status_list_token(
    status_list: StatusList,
    *,
    uri: str,
    key: jose.Key,
    now: int,
    ttl: int | None = DEFAULT_TTL_SECONDS,
    exp: int | None = None,
    iss: str | None = None,
    header: Mapping[str, Any] | None = None,
    level: int = DEFAULT_COMPRESSION_LEVEL,
    strategy: int = DEFAULT_COMPRESSION_STRATEGY,
) -> str:
    """Sign a Status List Token in JWT format (TSL §5.1).

    ``sub`` = ``uri``, ``iat`` = ``now``, ``exp`` defaults to one day later, ``ttl`` in
    seconds. ``header`` may add e.g. ``x5c`` (HAIP); ``typ`` is always ``statuslist+jwt``.
    """
    if not _is_uri(uri):
        raise StatusError("status list uri must be a URI")
    if ttl is not None and (type(ttl) is not int or ttl <= 0):
        raise StatusError("ttl must be a positive integer")
    claims: dict[str, Any] = {"sub": uri, "iat": now}
    if iss is not None:
        claims["iss"] = iss
    claims["exp"] = now + DEFAULT_TOKEN_LIFETIME_SECONDS if exp is None else exp
    if ttl is not None:
        claims["ttl"] = ttl
    claims["status_list"] = status_list.encode(level, strategy)
    full_header = {**(header or {}), "typ": STATUS_LIST_JWT_TYP}
    if key.kid and "kid" not in full_header:
        full_header["kid"] = key.kid
    return jose.encode_jws(claims, key, full_header)


def verify_status_list_token(
    token: str,
    key: jose.Key,
    *,
    uri: str,
    now: int | None = None,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
    require_exp: bool = False,
    max_list_bytes: int = DEFAULT_MAX_LIST_BYTES,
    max_token_bytes: int = MAX_STATUS_LIST_TOKEN_BYTES,
) -> StatusListToken:
    """Validate a Status List Token for the Referenced Token's ``uri`` (TSL §5.1, §8.3 steps 3-5).

    ``key`` is chosen by the caller (trust list / issuer metadata), never taken from the
    token. Checks, cheapest first: size, ``typ`` exactly ``statuslist+jwt``, algorithm
    allow-list, signature, ``sub`` = ``uri``, ``iat`` present, ``exp`` not passed, ``ttl``
    positive, then the Status List itself with bounded inflation.
    """
    try:
        jws = jose.parse_jws(token, max_bytes=max_token_bytes)
        if jws.header.get("typ") != STATUS_LIST_JWT_TYP:
            raise StatusError(f"status list token typ must be {STATUS_LIST_JWT_TYP!r}")
        jose.check_header(jws, algorithms=algorithms)
        jose.verify_signature(jws, key)
        claims = jws.claims()
        if claims.get("sub") != uri:
            raise StatusError("status list token sub does not match the referenced uri")
        jose.check_time_claims(
            claims, now=now, leeway=leeway, require=("iat", "exp") if require_exp else ("iat",)
        )
    except jose.JoseError as exc:
        raise StatusError(f"status list token: {exc}") from exc
    ttl = claims.get("ttl")
    if ttl is not None and (type(ttl) not in (int, float) or not 0 < ttl < float("inf")):
        raise StatusError("status list token ttl must be a positive number")
    return StatusListToken(
        sub=uri,
        iat=claims["iat"],
        exp=claims.get("exp"),
        ttl=ttl,
        status_list=StatusList.decode(claims.get("status_list"), max_bytes=max_list_bytes),
        claims=claims,
    )


def status_of(
    reference: StatusListReference | Mapping[str, Any],
    status_list_token: str,
    key: jose.Key,
    now: int | None = None,
    **verify_options: Any,
) -> int:
    """The status value of a Referenced Token (TSL §8.3): verify the token, then read ``idx``.

    ``reference`` is a parsed reference or the raw ``status`` claim. Any failure raises
    :class:`StatusError`; the caller rejects the Referenced Token (fail closed, T106).
    """
    if not isinstance(reference, StatusListReference):
        reference = parse_status_reference(reference)
    verified = verify_status_list_token(
        status_list_token, key, uri=reference.uri, now=now, **verify_options
    )
    return verified.status(reference)


def cache_lifetime(
    ttl: float | None,
    exp: int | None,
    *,
    now: int,
    min_seconds: int = DEFAULT_MIN_CACHE_SECONDS,
    max_seconds: int = DEFAULT_MAX_CACHE_SECONDS,
) -> int:
    """Seconds a verified status list may be cached (TSL §8.3 step 4d, §11.5, §13.7; T108).

    The token's ``ttl`` and the time left until ``exp`` both cap the lifetime; the result is
    clamped into ``[min_seconds, max_seconds]`` so ``ttl`` = 0 cannot cause a request storm
    and ``ttl`` = 10**12 cannot pin a stale list. A cached token whose ``exp`` passes is still
    refused on use, because verification checks ``exp``. Pure: no clock, no I/O.
    """
    if not 0 <= min_seconds <= max_seconds:
        raise StatusError("cache bounds must satisfy 0 <= min_seconds <= max_seconds")
    lifetime: float = max_seconds
    if ttl is not None:
        lifetime = min(lifetime, ttl)
    if exp is not None:
        lifetime = min(lifetime, exp - now)
    return int(min(max(lifetime, min_seconds), max_seconds))


def fetch_status_list_token(uri: str, fetch: Fetch) -> str:
    """Retrieve a Status List Token (TSL §8.1, §8.2).

    GET with ``Accept: application/statuslist+jwt``; the response must carry that media type.
    """
    try:
        response = fetch(uri, STATUS_LIST_JWT_MEDIA_TYPE)
    except FetchError as exc:
        raise StatusError("status list could not be retrieved") from exc
    media_type = response.content_type.split(";", 1)[0].strip().lower()
    if media_type != STATUS_LIST_JWT_MEDIA_TYPE:
        raise StatusError("status list response is not application/statuslist+jwt")
    try:
        return response.body.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise StatusError("status list token is not ASCII") from exc


# -- W3C Bitstring Status List v1.0 --------------------------------------------------------

MIN_BITSTRING_ENTRIES = 131_072
MAX_STATUS_SIZE = 8
MAX_STATUS_LIST_INDEX_DIGITS = 15
BITSTRING_ENTRY_TYPE = "BitstringStatusListEntry"
BITSTRING_CREDENTIAL_TYPE = "BitstringStatusListCredential"
BITSTRING_SUBJECT_TYPE = "BitstringStatusList"
VCDM_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
_STATUS_LIST_INDEX = re.compile(rf"[0-9]{{1,{MAX_STATUS_LIST_INDEX_DIGITS}}}")
_STATUS_HEX = re.compile(r"0x[0-9a-fA-F]{1,2}")
_MALFORMED = "MALFORMED_VALUE_ERROR"


class BitstringStatusList:
    """A Bitstring Status List: ``status_size`` bits per entry, MSB first (§2.2 ``encodedList``).

    Index 0 is the left-most bit, i.e. the most significant bit of byte 0 — the opposite of
    the Token Status List. A multi-bit entry reads its bits left to right, most significant
    first. The list holds at least ``min_entries`` entries (§3.2 minimumNumberOfEntries).
    """

    __slots__ = ("_bits", "_mask", "size", "status_size")

    def __init__(
        self,
        bitstring: bytes | bytearray,
        status_size: int = 1,
        *,
        min_entries: int = MIN_BITSTRING_ENTRIES,
    ) -> None:
        if type(status_size) is not int or not 1 <= status_size <= MAX_STATUS_SIZE:
            raise StatusError(
                f"statusSize must be an integer from 1 to {MAX_STATUS_SIZE}", _MALFORMED
            )
        self.status_size = status_size
        self._mask = (1 << status_size) - 1
        self._bits = bytearray(bitstring)
        self.size = len(self._bits) * 8 // status_size
        if self.size < min_entries:
            raise StatusError(
                f"status list has fewer than {min_entries} entries", "STATUS_LIST_LENGTH_ERROR"
            )

    @classmethod
    def create(
        cls,
        size: int = MIN_BITSTRING_ENTRIES,
        status_size: int = 1,
        *,
        min_entries: int = MIN_BITSTRING_ENTRIES,
    ) -> BitstringStatusList:
        """An all-zero list of at least ``size`` entries (§3.3 step 1)."""
        if type(size) is not int or size <= 0:
            raise StatusError("size must be a positive integer", _MALFORMED)
        if type(status_size) is not int or status_size <= 0:
            raise StatusError("statusSize must be a positive integer", _MALFORMED)
        return cls(bytearray(-(-size * status_size // 8)), status_size, min_entries=min_entries)

    def __len__(self) -> int:
        return self.size

    def _check_index(self, idx: int) -> None:
        if type(idx) is not int or not 0 <= idx < self.size:
            raise StatusError("statusListIndex is outside the status list", "RANGE_ERROR")

    def _span(self, idx: int) -> tuple[int, int, int]:
        """First byte, last byte (inclusive) and right shift of entry ``idx``."""
        self._check_index(idx)
        start = idx * self.status_size
        end = start + self.status_size
        last = (end - 1) >> 3
        return start >> 3, last, (last + 1) * 8 - end

    def get(self, idx: int) -> int:
        """The status value at ``idx`` (§3.2: bit position ``idx * statusSize``)."""
        if self.status_size == 1:  # the common case, without the big-int arithmetic
            self._check_index(idx)
            return (self._bits[idx >> 3] >> (7 - (idx & 7))) & 1
        first, last, shift = self._span(idx)
        return (int.from_bytes(self._bits[first : last + 1], "big") >> shift) & self._mask

    def set(self, idx: int, value: int) -> None:
        """Set the status at ``idx`` (§3.3 step 2); O(1)."""
        if type(value) is not int or not 0 <= value <= self._mask:
            raise StatusError(f"status value must fit in {self.status_size} bits", _MALFORMED)
        first, last, shift = self._span(idx)
        width = last + 1 - first
        chunk = int.from_bytes(self._bits[first : last + 1], "big")
        chunk = (chunk & ~(self._mask << shift)) | (value << shift)
        self._bits[first : last + 1] = chunk.to_bytes(width, "big")

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def encode(
        self,
        level: int = DEFAULT_COMPRESSION_LEVEL,
        strategy: int = DEFAULT_COMPRESSION_STRATEGY,
    ) -> str:
        """``encodedList``: multibase ``u`` + base64url (no padding) of GZIP (§3.3 step 3)."""
        wbits = 16 + zlib.MAX_WBITS
        compressed = _deflate(self._bits, wbits=wbits, level=level, strategy=strategy)
        return "u" + jose.b64url_encode(compressed)

    @classmethod
    def decode(
        cls,
        encoded_list: str,
        status_size: int = 1,
        *,
        min_entries: int = MIN_BITSTRING_ENTRIES,
        max_bytes: int = DEFAULT_MAX_LIST_BYTES,
    ) -> BitstringStatusList:
        """Bitstring Expansion Algorithm (§3.4) with bounded inflation (T107)."""
        if not isinstance(encoded_list, str) or not encoded_list.startswith("u"):
            raise StatusError("encodedList must be multibase base64url (prefix 'u')", _MALFORMED)
        if len(encoded_list) > _max_compressed_chars(max_bytes):
            raise StatusError("encodedList is too long", _MALFORMED)
        try:
            compressed = jose.b64url_decode(encoded_list[1:])
        except jose.JoseError as exc:
            raise StatusError("encodedList is not base64url", _MALFORMED) from exc
        bitstring = _inflate(
            compressed, wbits=16 + zlib.MAX_WBITS, max_bytes=max_bytes, code=_MALFORMED
        )
        return cls(bitstring, status_size, min_entries=min_entries)


@dataclass(frozen=True)
class BitstringStatusEntry:
    """A ``credentialStatus`` entry of type ``BitstringStatusListEntry`` (§2.1)."""

    id: str | None
    status_purpose: str
    index: int
    list_credential: str
    status_size: int = 1
    #: ``statusMessage`` as (status value, message) pairs, ordered by value; () when absent.
    status_message: tuple[tuple[int, str], ...] = ()

    def message_for(self, status: int) -> str | None:
        for value, message in self.status_message:
            if value == status:
                return message
        return None


def parse_bitstring_status_entry(entry: Mapping[str, Any]) -> BitstringStatusEntry:
    """Validate a ``BitstringStatusListEntry`` (§2.1); errors are ``MALFORMED_VALUE_ERROR``.

    ``statusListIndex`` must be ASCII digits only (no sign, spaces, underscores or other
    scripts' digits that ``int()`` would quietly accept), at most 15 of them.
    """
    if not isinstance(entry, Mapping):
        raise StatusError("credentialStatus entry must be a JSON object", _MALFORMED)
    if entry.get("type") != BITSTRING_ENTRY_TYPE:
        raise StatusError(f"credentialStatus type must be {BITSTRING_ENTRY_TYPE!r}", _MALFORMED)
    purpose = entry.get("statusPurpose")
    if not isinstance(purpose, str) or not purpose:
        raise StatusError("statusPurpose must be a non-empty string", _MALFORMED)
    index = entry.get("statusListIndex")
    if not isinstance(index, str) or not _STATUS_LIST_INDEX.fullmatch(index):
        raise StatusError("statusListIndex must be a base-10 integer string", _MALFORMED)
    list_credential = entry.get("statusListCredential")
    if not _is_uri(list_credential):
        raise StatusError("statusListCredential must be a URL", _MALFORMED)
    entry_id = entry.get("id")
    if entry_id is not None and not _is_uri(entry_id):
        raise StatusError("credentialStatus id must be a URL", _MALFORMED)
    if entry_id == list_credential:
        raise StatusError("credentialStatus id must not be the status list URL", _MALFORMED)
    status_size = entry.get("statusSize", 1)
    if type(status_size) is not int or not 1 <= status_size <= MAX_STATUS_SIZE:
        raise StatusError(f"statusSize must be an integer from 1 to {MAX_STATUS_SIZE}", _MALFORMED)
    messages = _parse_status_message(entry.get("statusMessage"), status_size)
    return BitstringStatusEntry(
        id=entry_id,
        status_purpose=purpose,
        index=int(index),
        list_credential=list_credential,
        status_size=status_size,
        status_message=messages,
    )


def _parse_status_message(value: Any, status_size: int) -> tuple[tuple[int, str], ...]:
    """§2.1 ``statusMessage``: required when ``statusSize`` > 1; one object per possible value."""
    if value is None:
        if status_size > 1:
            raise StatusError("statusMessage is required when statusSize > 1", _MALFORMED)
        return ()
    if not isinstance(value, list) or len(value) != 1 << status_size:
        raise StatusError("statusMessage must list one message per status value", _MALFORMED)
    pairs: dict[int, str] = {}
    for item in value:
        status = item.get("status") if isinstance(item, Mapping) else None
        message = item.get("message") if isinstance(item, Mapping) else None
        if not isinstance(status, str) or not _STATUS_HEX.fullmatch(status):
            raise StatusError("statusMessage status must be a hex string like '0x1'", _MALFORMED)
        if not isinstance(message, str):
            raise StatusError("statusMessage message must be a string", _MALFORMED)
        pairs[int(status, 16)] = message
    if sorted(pairs) != list(range(1 << status_size)):
        raise StatusError("statusMessage must cover each status value once", _MALFORMED)
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class BitstringStatusResult:
    """Result of the Validate Algorithm (§3.2): ``{status, purpose, valid, message?}``."""

    status: int
    purpose: str
    valid: bool
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "status": self.status,
            "purpose": self.purpose,
            "valid": self.valid,
        }
        if self.message is not None:
            result["message"] = self.message
        return result


def bitstring_status(
    entry: BitstringStatusEntry | Mapping[str, Any],
    list_credential_claims: Mapping[str, Any],
    *,
    min_entries: int = MIN_BITSTRING_ENTRIES,
    max_bytes: int = DEFAULT_MAX_LIST_BYTES,
) -> BitstringStatusResult:
    """Validate Algorithm (§3.2) after retrieval, on a list credential whose proof the caller
    has already verified (``intyg.vcdm``; proof and validity period checks belong there).

    Raises :class:`StatusError` with ``code`` ``STATUS_VERIFICATION_ERROR`` (purpose not in
    the list, list credential ``id`` not the entry's URL), ``MALFORMED_VALUE_ERROR``,
    ``STATUS_LIST_LENGTH_ERROR`` or ``RANGE_ERROR``.
    """
    if not isinstance(entry, BitstringStatusEntry):
        entry = parse_bitstring_status_entry(entry)
    subject = _status_list_subject(list_credential_claims, entry.list_credential)
    purposes = subject.get("statusPurpose")
    if isinstance(purposes, str):
        purposes = [purposes]
    if (
        not isinstance(purposes, list)
        or not purposes
        or not all(isinstance(p, str) for p in purposes)
    ):
        raise StatusError("statusPurpose must be one or more strings", _MALFORMED)
    if entry.status_purpose not in purposes:
        raise StatusError(
            "statusPurpose is not a purpose of the status list", "STATUS_VERIFICATION_ERROR"
        )
    bitstring = BitstringStatusList.decode(
        subject.get("encodedList"),
        entry.status_size,
        min_entries=min_entries,
        max_bytes=max_bytes,
    )
    status = bitstring.get(entry.index)
    return BitstringStatusResult(
        status=status,
        purpose=entry.status_purpose,
        valid=status == 0,
        message=entry.message_for(status) if entry.status_purpose == "message" else None,
    )


def _status_list_subject(claims: Mapping[str, Any], list_url: str) -> Mapping[str, Any]:
    """§2.2 shape checks of a BitstringStatusListCredential; returns its subject."""
    if not isinstance(claims, Mapping):
        raise StatusError("status list credential must be a JSON object", _MALFORMED)
    types = claims.get("type")
    if not isinstance(types, list) or BITSTRING_CREDENTIAL_TYPE not in types:
        raise StatusError(
            f"status list credential type must include {BITSTRING_CREDENTIAL_TYPE}", _MALFORMED
        )
    # The credential MAY carry an id; when it does, it must be the URL the entry pointed at,
    # otherwise a list fetched for one URL could be answered with another list of the issuer.
    if "id" in claims and claims["id"] != list_url:
        raise StatusError(
            "status list credential id is not the statusListCredential URL",
            "STATUS_VERIFICATION_ERROR",
        )
    subject = claims.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("type") != BITSTRING_SUBJECT_TYPE:
        raise StatusError(
            f"credentialSubject must be an object of type {BITSTRING_SUBJECT_TYPE}", _MALFORMED
        )
    return subject


def bitstring_status_list_credential(
    status_list: BitstringStatusList,
    *,
    id: str,
    issuer: str,
    status_purpose: str | Sequence[str],
    valid_from: datetime,
    valid_until: datetime | None = None,
    ttl_ms: int | None = None,
    subject_id: str | None = None,
    level: int = DEFAULT_COMPRESSION_LEVEL,
    strategy: int = DEFAULT_COMPRESSION_STRATEGY,
) -> dict[str, Any]:
    """An UNSIGNED BitstringStatusListCredential (§2.2; §3.1 Generate Algorithm) as a dict.

    Securing it (vc+jwt) is the job of ``intyg.vcdm``. ``ttl_ms`` is in milliseconds.
    """
    purposes = [status_purpose] if isinstance(status_purpose, str) else list(status_purpose)
    if not purposes or not all(isinstance(p, str) and p for p in purposes):
        raise StatusError("statusPurpose must be one or more non-empty strings", _MALFORMED)
    if not _is_uri(id) or not _is_uri(issuer):
        raise StatusError("id and issuer must be URLs", _MALFORMED)
    if ttl_ms is not None and (type(ttl_ms) is not int or ttl_ms <= 0):
        raise StatusError("ttl must be a positive number of milliseconds", _MALFORMED)
    subject: dict[str, Any] = {
        "id": subject_id or f"{id}#list",
        "type": BITSTRING_SUBJECT_TYPE,
        "statusPurpose": purposes[0] if len(purposes) == 1 else purposes,
        "encodedList": status_list.encode(level, strategy),
    }
    if ttl_ms is not None:
        subject["ttl"] = ttl_ms
    credential: dict[str, Any] = {
        "@context": [VCDM_V2_CONTEXT],
        "id": id,
        "type": ["VerifiableCredential", BITSTRING_CREDENTIAL_TYPE],
        "issuer": issuer,
        "validFrom": _xsd_datetime(valid_from),
    }
    if valid_until is not None:
        credential["validUntil"] = _xsd_datetime(valid_until)
    credential["credentialSubject"] = subject
    return credential


def _xsd_datetime(moment: datetime) -> str:
    """An XML Schema dateTimeStamp in UTC with ``Z`` (VCDM 2.0 §4.9)."""
    if moment.tzinfo is None:
        raise StatusError("validity times must be timezone-aware", _MALFORMED)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
