"""The one guarded outbound HTTP client (design.md "House rules"; security.md T085, T097,
T107, T123, L11, L13).

A cloud wallet, an issuer and a verifier fetch URLs chosen by strangers: ``request_uri``,
``response_uri``, issuer metadata, ``did:web`` documents, status lists, type metadata.
Every such request goes through this module, so the rules live in one place:

- only ``https`` outside development; in development ``http`` only to loopback;
- no userinfo, no odd schemes, no numeric host forms other than canonical IP literals
  (``2130706433``, ``0177.0.0.1`` and ``127.1`` are refused, WHATWG URL "IPv4 parser");
- the host is resolved here, every resolved address is checked (no private, loopback,
  link-local, multicast, reserved, unspecified or IPv4-embedded private addresses outside
  development), and the connection goes to the address that was checked: a second DNS
  answer cannot swap in another target (DNS rebinding). The URL keeps the host name, so the
  ``Host`` header, TLS SNI and certificate check use the original name;
- connect, read and write timeouts, and a total deadline for the whole exchange that every
  socket operation is clamped to (a 1 byte/s "slowloris" server is cut off);
- the response size is enforced while streaming, also after decompression;
- redirects are off by default (OpenID4VP ``request_uri``/``response_uri``), and when allowed
  every hop is re-validated: same host, never ``https`` to ``http``;
- no cookies, no proxies or ``.netrc`` from the environment, a neutral ``User-Agent`` and no
  forwarded client-IP headers (T123).

How the address is pinned: httpx sends through an ``httpcore`` connection pool whose network
backend is ours. ``httpcore`` asks the backend to ``connect_tcp(host, port)``; the backend
resolves ``host``, checks all addresses and opens the socket to one of the checked
addresses; ``httpcore`` then starts TLS with ``server_hostname`` = the URL host. So the pool
key, ``Host`` and SNI stay the name while the socket is bound to a vetted IP.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
import certifi
import httpcore
import httpx

from intyg import strict_json
from intyg.fetch import Fetch, FetchError, FetchResponse

__all__ = [
    "AsyncGuardedTransport",
    "AsyncOutboundClient",
    "GuardedTransport",
    "OutboundClient",
    "OutboundError",
    "OutboundPolicy",
    "check_address",
    "check_url",
    "when_busy",
]

#: Sent on every request: names no library or version (T123, VP "No Fingerprinting").
DEFAULT_USER_AGENT = "intyg"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: The longest ``Retry-After`` a caller waits for (:meth:`OutboundError.retry_after`).
MAX_RETRY_AFTER_SECONDS = 5.0
#: How often :func:`when_busy` asks again.
BUSY_RETRIES = 3
T = TypeVar("T")
#: Error bodies are kept (bounded) so a caller can read e.g. an OAuth error response.
MAX_ERROR_BODY_BYTES = 16 * 1024
#: Headers a caller may not set: they would leak client data or defeat the guards.
FORBIDDEN_HEADERS = frozenset(
    {
        "accept-encoding",
        "connection",
        "content-length",
        "cookie",
        "forwarded",
        "host",
        "proxy-authorization",
        "transfer-encoding",
        "user-agent",
        "via",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)

_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class OutboundError(FetchError):
    """An outbound request was refused or failed; the message is safe to show.

    ``reason`` is one of ``policy``, ``timeout``, ``too_large``, ``redirect``, ``status``,
    ``tls`` or ``network``. For ``status``, ``status_code`` and the (bounded) ``response``
    are set so a caller can read an OAuth error body.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status_code: int | None = None,
        response: FetchResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status_code = status_code
        self.response = response

    def retry_after(self, max_seconds: float = MAX_RETRY_AFTER_SECONDS) -> float | None:
        """Seconds to wait when the server answered 503 with a delay-seconds ``Retry-After``
        of at most ``max_seconds`` (RFC 9110 §10.2.3): its "busy, nothing done, try again"."""
        if self.status_code != 503 or self.response is None:
            return None
        value = str(self.response.headers.get("retry-after", "")).strip()
        if not value.isdigit() or int(value) > max_seconds:
            return None
        return float(value)


def when_busy(call: Callable[[], T], retries: int = BUSY_RETRIES) -> T:
    """``call()``, and again after each 503 with a short ``Retry-After`` (at most ``retries``
    times): the server was busy and did nothing, so the same request is still good."""
    for _ in range(retries):
        try:
            return call()
        except OutboundError as exc:
            delay = exc.retry_after()
            if delay is None:
                raise
            time.sleep(delay)
    return call()


@dataclass(frozen=True)
class OutboundPolicy:
    """What outbound requests may do. One policy per service, from its settings.

    ``allowed_networks`` lists CIDR blocks an operator trusts although they are not public
    (e.g. a verifier on an internal network); ``resolver`` replaces DNS (split-horizon
    setups and tests); it returns IP address strings.
    """

    development: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 15.0
    max_response_bytes: int = 1_000_000
    max_redirects: int = 0
    user_agent: str = DEFAULT_USER_AGENT
    allowed_networks: tuple[str, ...] = ()
    ca_bundle: str | None = None
    resolver: Resolver | None = field(default=None, compare=False)
    max_connections: int = 50

    def __post_init__(self) -> None:
        networks = tuple(ipaddress.ip_network(n, strict=True) for n in self.allowed_networks)
        object.__setattr__(self, "_networks", networks)

    def ssl_context(self) -> ssl.SSLContext:
        """Certificate-verifying TLS 1.2+ context over ``ca_bundle`` or certifi's roots."""
        context = ssl.create_default_context(cafile=self.ca_bundle or certifi.where())
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def timeouts(self) -> dict[str, float]:
        return {
            "connect": self.connect_timeout,
            "read": self.read_timeout,
            "write": self.read_timeout,
            "pool": self.connect_timeout,
        }


# -- address and URL checks --------------------------------------------------------------


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _permitted(ip: IPAddress, development: bool) -> bool:
    # Link-local covers cloud metadata (169.254.169.254): refused even in development.
    if ip.is_multicast or ip.is_unspecified or ip.is_link_local:
        return False
    if development and ip.is_loopback:
        return True  # before is_reserved: ::1 lies in the reserved ::/8
    if ip.is_reserved:
        return False
    return ip.is_global or (development and ip.is_private)


def check_address(address: str | IPAddress, policy: OutboundPolicy) -> IPAddress:
    """Refuse an address outbound requests may not reach (security.md T085)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise OutboundError("not an IP address", reason="policy") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise OutboundError("scoped IPv6 addresses are not allowed", reason="policy")
    if any(ip in network for network in policy._networks):  # type: ignore[attr-defined]
        return ip
    for candidate in (ip, _embedded_ipv4(ip)):
        if candidate is not None and not _permitted(candidate, policy.development):
            raise OutboundError("target address is not allowed", reason="policy")
    return ip


def _is_loopback_name(host: str) -> bool:
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_host(host: str) -> None:
    """Host must be a DNS name or a canonical IP literal (WHATWG URL host parsing)."""
    if not host:
        raise OutboundError("URL has no host", reason="policy")
    if ":" in host:
        if "%" in host:
            raise OutboundError("scoped IPv6 literals are not allowed", reason="policy")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise OutboundError("malformed IPv6 literal", reason="policy") from None
        return
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A numeric last label makes the whole host an IPv4 address to browsers and libc;
        # only the canonical dotted-quad form is unambiguous.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise OutboundError("non-canonical numeric host", reason="policy") from None
        return
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise OutboundError("malformed host name", reason="policy")


def check_url(url: str | httpx.URL, policy: OutboundPolicy) -> httpx.URL:
    """Validate a target URL before any connection (scheme, userinfo, host form)."""
    if isinstance(url, str):
        if _UNSAFE_URL_CHARS.search(url):
            raise OutboundError("URL contains whitespace or control characters", reason="policy")
        try:
            url = httpx.URL(url)
        except (httpx.InvalidURL, ValueError):
            raise OutboundError("malformed URL", reason="policy") from None
    scheme = url.scheme
    if scheme not in ("https", "http"):
        raise OutboundError("only https URLs are allowed", reason="policy")
    if url.userinfo:
        raise OutboundError("URLs with user information are not allowed", reason="policy")
    host = url.raw_host.decode("ascii")
    _check_host(host)
    if scheme == "http" and not (policy.development and _is_loopback_name(host)):
        raise OutboundError("only https URLs are allowed", reason="policy")
    return url.copy_with(fragment=None)


# -- the total deadline ------------------------------------------------------------------

#: Monotonic deadline of the exchange running in this thread / task, if any.
_DEADLINE: ContextVar[float | None] = ContextVar("intyg_outbound_deadline", default=None)


def _clamp(timeout: float | None) -> float | None:
    """The time one socket operation may take: its own timeout, cut at the deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise OutboundError("total time limit exceeded", reason="timeout")
    return left if timeout is None else min(timeout, left)


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


# -- resolution and pinned connections ---------------------------------------------------


def _unique_addresses(infos: Iterable[tuple[Any, ...]]) -> list[str]:
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


def _vetted(addresses: Sequence[str], policy: OutboundPolicy, loopback_only: bool) -> list[str]:
    """All addresses must pass: one bad answer refuses the name (no mixed answers)."""
    if not addresses:
        raise OutboundError("host name did not resolve", reason="network")
    checked = [check_address(address, policy) for address in addresses]
    if loopback_only and not all(ip.is_loopback for ip in checked):
        raise OutboundError("http is only allowed to loopback", reason="policy")
    return [str(ip) for ip in checked]


def _ip_literal(host: str) -> list[str] | None:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


_resolver_pool: ThreadPoolExecutor | None = None


def _resolve_sync(host: str, port: int, policy: OutboundPolicy, timeout: float | None) -> list[str]:
    global _resolver_pool
    literal = _ip_literal(host)
    if literal is not None:
        return literal
    if _resolver_pool is None:
        _resolver_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="intyg-dns")
    if policy.resolver is not None:
        future = _resolver_pool.submit(policy.resolver, host, port)
    else:
        future = _resolver_pool.submit(
            socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    try:
        result = future.result(timeout=_clamp(timeout))
    except FutureTimeoutError:
        raise OutboundError("name resolution timed out", reason="timeout") from None
    except OSError:
        raise OutboundError("host name did not resolve", reason="network") from None
    return list(result) if policy.resolver is not None else _unique_addresses(result)


async def _resolve_async(
    host: str, port: int, policy: OutboundPolicy, timeout: float | None
) -> list[str]:
    literal = _ip_literal(host)
    if literal is not None:
        return literal
    limit = _clamp(timeout)
    try:
        with anyio.fail_after(limit):
            if policy.resolver is not None:
                return list(await anyio.to_thread.run_sync(policy.resolver, host, port))
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise OutboundError("name resolution timed out", reason="timeout") from None
    except OSError:
        raise OutboundError("host name did not resolve", reason="network") from None
    return _unique_addresses(infos)


class _GuardedStream(httpcore.NetworkStream):
    """Clamps every socket operation to the exchange's total deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncGuardedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, _clamp(timeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, _clamp(timeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout))
        return _AsyncGuardedStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, vets, then connects to the vetted address itself (no second lookup)."""

    def __init__(self, policy: OutboundPolicy, loopback_only: bool) -> None:
        self._policy = policy
        self._loopback_only = loopback_only
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        resolved = _resolve_sync(host, port, self._policy, timeout)
        error: Exception | None = None
        for address in _vetted(resolved, self._policy, self._loopback_only):
            try:
                stream = self._inner.connect_tcp(
                    address, port, _clamp(timeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _GuardedStream(stream)
        raise OutboundError("could not connect", reason="network") from error

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise OutboundError("unix sockets are not allowed", reason="policy")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: OutboundPolicy, loopback_only: bool) -> None:
        self._policy = policy
        self._loopback_only = loopback_only
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        resolved = await _resolve_async(host, port, self._policy, timeout)
        error: Exception | None = None
        for address in _vetted(resolved, self._policy, self._loopback_only):
            try:
                stream = await self._inner.connect_tcp(
                    address, port, _clamp(timeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _AsyncGuardedStream(stream)
        raise OutboundError("could not connect", reason="network") from error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise OutboundError("unix sockets are not allowed", reason="policy")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# -- httpx transports --------------------------------------------------------------------


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """httpcore failures become :class:`OutboundError` with a safe message."""
    try:
        yield
    except OutboundError:
        raise
    except httpcore.TimeoutException:
        raise OutboundError("request timed out", reason="timeout") from None
    except httpcore.ConnectError as exc:
        reason = "tls" if isinstance(exc.__context__, ssl.SSLError) else "network"
        raise OutboundError("could not connect", reason=reason) from None
    except httpcore.UnsupportedProtocol:
        raise OutboundError("unsupported URL", reason="policy") from None
    except (httpcore.ProtocolError, httpcore.NetworkError):
        raise OutboundError("connection failed", reason="network") from None


def _core_request(request: httpx.Request) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


#: Idle pooled connections are dropped after this long: well under the keep-alive of common
#: servers (uvicorn closes after 5 s), so a request does not go out on a connection the
#: server is closing at that moment ("connection failed" under load, bench/load.py).
KEEPALIVE_EXPIRY_SECONDS = 2.0


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport applying the address and URL policy on every request.

    Usable on its own in an ``httpx.Client`` (e.g. for an OpenID Connect library), though
    redirects, sizes and the total deadline are enforced by :class:`OutboundClient`.
    """

    def __init__(self, policy: OutboundPolicy, ssl_context: ssl.SSLContext | None = None) -> None:
        self._policy = policy
        context = ssl_context or policy.ssl_context()
        # http gets its own pool whose backend only connects to loopback (development).
        self._pools = {
            scheme: httpcore.ConnectionPool(
                ssl_context=context,
                max_connections=policy.max_connections,
                retries=0,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
                network_backend=_GuardedBackend(policy, loopback_only=scheme == b"http"),
            )
            for scheme in (b"https", b"http")
        }

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url, self._policy)
        with _mapped_errors():
            response = self._pools[request.url.raw_scheme].handle_request(_core_request(request))
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


class AsyncGuardedTransport(httpx.AsyncBaseTransport):
    """The asynchronous twin of :class:`GuardedTransport`."""

    def __init__(self, policy: OutboundPolicy, ssl_context: ssl.SSLContext | None = None) -> None:
        self._policy = policy
        context = ssl_context or policy.ssl_context()
        self._pools = {
            scheme: httpcore.AsyncConnectionPool(
                ssl_context=context,
                max_connections=policy.max_connections,
                retries=0,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
                network_backend=_AsyncGuardedBackend(policy, loopback_only=scheme == b"http"),
            )
            for scheme in (b"https", b"http")
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url, self._policy)
        with _mapped_errors():
            pool = self._pools[request.url.raw_scheme]
            response = await pool.handle_async_request(_core_request(request))
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_AsyncResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


# -- the exchange: shared by the sync and async clients ----------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    accept: str
    content: bytes | None
    content_type: str | None
    headers: Mapping[str, str]
    max_redirects: int
    max_bytes: int


def _caller_headers(headers: Mapping[str, str] | None) -> Mapping[str, str]:
    headers = headers or {}
    forbidden = FORBIDDEN_HEADERS.intersection(name.lower() for name in headers)
    if forbidden:
        raise ValueError(f"header(s) not allowed on outbound requests: {sorted(forbidden)}")
    return headers


def _request(policy: OutboundPolicy, call: _Call, url: httpx.URL, method: str) -> httpx.Request:
    headers = {
        "Accept": call.accept,
        "User-Agent": policy.user_agent,
        "Accept-Encoding": "identity",
        **call.headers,
    }
    content = call.content if method == call.method else None
    if content is not None and call.content_type:
        headers["Content-Type"] = call.content_type
    return httpx.Request(
        method, url, headers=headers, content=content, extensions={"timeout": policy.timeouts()}
    )


def _redirect_target(
    response: httpx.Response, current: httpx.URL, policy: OutboundPolicy, hops_left: int
) -> httpx.URL | None:
    """None if ``response`` is final; else the re-validated next URL (RFC 9110 §15.4)."""
    if response.status_code not in REDIRECT_STATUSES:
        return None
    if hops_left <= 0:
        raise OutboundError("redirect not allowed or too many redirects", reason="redirect")
    location = response.headers.get("location")
    if not location:
        raise OutboundError("redirect without Location", reason="redirect")
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError):
        raise OutboundError("malformed redirect target", reason="redirect") from None
    target = check_url(str(target), policy)
    if target.raw_host.lower() != current.raw_host.lower():
        raise OutboundError("cross-host redirect refused", reason="redirect")
    if current.scheme == "https" and target.scheme != "https":
        raise OutboundError("redirect from https to http refused", reason="redirect")
    return target


class _BodyReader:
    """Accumulates a response body, refusing it as soon as it passes ``limit`` bytes.

    We ask for ``identity``; a server that compresses anyway (gzip/deflate) is decoded with
    a bounded inflater so a small bomb cannot expand in memory (T107).
    """

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            self._inflater = None
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise _too_large(limit)
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._inflater = zlib.decompressobj(31 if "gzip" in encoding else 15)
        else:
            raise OutboundError("unsupported content encoding", reason="network")

    def feed(self, chunk: bytes) -> None:
        if self._inflater is not None:
            try:
                chunk = self._inflater.decompress(chunk, self._limit - self._size + 1)
            except zlib.error:
                raise OutboundError("corrupt compressed body", reason="network") from None
            if self._inflater.unconsumed_tail:
                raise _too_large(self._limit)
        self._size += len(chunk)
        if self._size > self._limit:
            raise _too_large(self._limit)
        self._parts.append(chunk)

    def result(self) -> bytes:
        return b"".join(self._parts)


def _too_large(limit: int) -> OutboundError:
    return OutboundError(f"response larger than {limit} bytes", reason="too_large")


#: Response headers handed to callers: the ones a protocol step reads (RFC 9449 DPoP-Nonce,
#: RFC 6750 WWW-Authenticate, retry and cache hints). Cookies and the rest stay here.
PASSED_HEADERS = (
    "dpop-nonce",
    "www-authenticate",
    "retry-after",
    "cache-control",
    "content-language",
    "oauth-client-attestation-challenge",
)


def _outcome(response: httpx.Response, body: bytes) -> FetchResponse:
    """2xx becomes a FetchResponse; anything else a ``status`` error with the bounded body."""
    result = FetchResponse(
        body,
        response.headers.get("content-type", "application/octet-stream").strip(),
        {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers},
    )
    if 200 <= response.status_code < 300:
        return result
    raise OutboundError(
        f"HTTP status {response.status_code}",
        reason="status",
        status_code=response.status_code,
        response=result,
    )


def _body_limit(response: httpx.Response, call: _Call) -> int:
    ok = 200 <= response.status_code < 300
    return call.max_bytes if ok else min(call.max_bytes, MAX_ERROR_BODY_BYTES)


class _ClientBase:
    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    def _call(
        self,
        method: str,
        accept: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_redirects: int | None = None,
        max_bytes: int | None = None,
    ) -> _Call:
        if method != "GET":
            # Never re-send a body elsewhere: direct_post and webhooks do not follow redirects.
            max_redirects = 0
        return _Call(
            method,
            accept,
            content,
            content_type,
            _caller_headers(headers),
            self.policy.max_redirects if max_redirects is None else max_redirects,
            self.policy.max_response_bytes if max_bytes is None else max_bytes,
        )


def _form(data: Mapping[str, str]) -> bytes:
    return urlencode(dict(data)).encode("ascii")


def _json(payload: Any) -> bytes:
    return strict_json.dumps(payload).encode("utf-8")


class OutboundClient(_ClientBase):
    """Synchronous guarded client. ``client.fetch`` satisfies :data:`intyg.fetch.Fetch`."""

    def __init__(
        self, policy: OutboundPolicy | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(policy or OutboundPolicy())
        self._transport = GuardedTransport(self.policy, ssl_context)

    def fetch(
        self,
        url: str,
        accept: str = "application/json",
        *,
        max_redirects: int | None = None,
        max_bytes: int | None = None,
    ) -> FetchResponse:
        """GET ``url``; the 2xx body or :class:`OutboundError` (a :class:`FetchError`)."""
        call = self._call("GET", accept, max_redirects=max_redirects, max_bytes=max_bytes)
        return self._exchange(url, call)

    def fetcher(self, *, max_redirects: int | None = None, max_bytes: int | None = None) -> Fetch:
        """A :data:`Fetch` with other limits, e.g. a few redirects for did:web documents."""

        def fetch(url: str, accept: str) -> FetchResponse:
            return self.fetch(url, accept, max_redirects=max_redirects, max_bytes=max_bytes)

        return fetch

    def post_form(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        accept: str = "application/json",
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> FetchResponse:
        """POST ``application/x-www-form-urlencoded`` (OpenID4VP ``direct_post``)."""
        call = self._call(
            "POST",
            accept,
            content=_form(data),
            content_type="application/x-www-form-urlencoded",
            headers=headers,
            max_bytes=max_bytes,
        )
        return self._exchange(url, call)

    def post_json(
        self,
        url: str,
        payload: Any,
        *,
        accept: str = "application/json",
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> FetchResponse:
        """POST a JSON document (webhooks, credential requests)."""
        call = self._call(
            "POST",
            accept,
            content=_json(payload),
            content_type="application/json",
            headers=headers,
            max_bytes=max_bytes,
        )
        return self._exchange(url, call)

    def _exchange(self, url: str, call: _Call) -> FetchResponse:
        target = check_url(url, self.policy)
        method = call.method
        with _deadline(self.policy.total_timeout):
            for hops_left in range(call.max_redirects, -1, -1):
                response = self._transport.handle_request(
                    _request(self.policy, call, target, method)
                )
                try:
                    next_target = _redirect_target(response, target, self.policy, hops_left)
                    if next_target is None:
                        reader = _BodyReader(response, _body_limit(response, call))
                        for chunk in response.stream:  # type: ignore[union-attr]
                            _clamp(None)
                            reader.feed(chunk)
                        return _outcome(response, reader.result())
                finally:
                    response.close()
                target, method = next_target, "GET"
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> OutboundClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOutboundClient(_ClientBase):
    """Asynchronous guarded client with the same methods as :class:`OutboundClient`."""

    def __init__(
        self, policy: OutboundPolicy | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(policy or OutboundPolicy())
        self._transport = AsyncGuardedTransport(self.policy, ssl_context)

    async def fetch(
        self,
        url: str,
        accept: str = "application/json",
        *,
        max_redirects: int | None = None,
        max_bytes: int | None = None,
    ) -> FetchResponse:
        call = self._call("GET", accept, max_redirects=max_redirects, max_bytes=max_bytes)
        return await self._exchange(url, call)

    async def post_form(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        accept: str = "application/json",
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> FetchResponse:
        call = self._call(
            "POST",
            accept,
            content=_form(data),
            content_type="application/x-www-form-urlencoded",
            headers=headers,
            max_bytes=max_bytes,
        )
        return await self._exchange(url, call)

    async def post_json(
        self,
        url: str,
        payload: Any,
        *,
        accept: str = "application/json",
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> FetchResponse:
        call = self._call(
            "POST",
            accept,
            content=_json(payload),
            content_type="application/json",
            headers=headers,
            max_bytes=max_bytes,
        )
        return await self._exchange(url, call)

    async def _exchange(self, url: str, call: _Call) -> FetchResponse:
        target = check_url(url, self.policy)
        method = call.method
        with _deadline(self.policy.total_timeout):
            for hops_left in range(call.max_redirects, -1, -1):
                response = await self._transport.handle_async_request(
                    _request(self.policy, call, target, method)
                )
                try:
                    next_target = _redirect_target(response, target, self.policy, hops_left)
                    if next_target is None:
                        reader = _BodyReader(response, _body_limit(response, call))
                        async for chunk in response.stream:  # type: ignore[union-attr]
                            _clamp(None)
                            reader.feed(chunk)
                        return _outcome(response, reader.result())
                finally:
                    await response.aclose()
                target, method = next_target, "GET"
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncOutboundClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
