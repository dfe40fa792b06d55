"""The guarded outbound client against real servers on loopback (security.md T085, T097,
T107, T123, L13)."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl

import httpx
import pytest

from intyg.fetch import Fetch, FetchError
from intyg.web.outbound import (
    AsyncOutboundClient,
    GuardedTransport,
    OutboundClient,
    OutboundError,
    OutboundPolicy,
    check_address,
    check_url,
)
from tests.web.conftest import LoopbackServer, TLSMaterial, reply

DEV = OutboundPolicy(development=True)
PROD = OutboundPolicy()


# -- address policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "127.8.9.10",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",
        "64:ff9b::7f00:1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_refused_outside_development(address: str) -> None:
    with pytest.raises(OutboundError, match="target address is not allowed") as excinfo:
        check_address(address, PROD)
    assert excinfo.value.reason == "policy"


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_allowed(address: str) -> None:
    assert str(check_address(address, PROD)) == address


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.10"])
def test_development_allows_loopback_and_private(address: str) -> None:
    check_address(address, DEV)


@pytest.mark.parametrize("address", ["169.254.169.254", "0.0.0.0", "224.0.0.1", "fe80::1"])
def test_development_still_refuses_metadata_and_unspecified(address: str) -> None:
    with pytest.raises(OutboundError, match="not allowed"):
        check_address(address, DEV)


def test_allowed_networks_are_an_explicit_exception() -> None:
    policy = OutboundPolicy(allowed_networks=("10.1.0.0/16",))
    check_address("10.1.2.3", policy)
    with pytest.raises(OutboundError):
        check_address("10.2.0.1", policy)


def test_scoped_ipv6_refused() -> None:
    with pytest.raises(OutboundError, match="scoped"):
        check_address("fe80::1%eth0", DEV)


# -- URL policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://user:secret@example.com/", "user information"),
        ("https://user@example.com/", "user information"),
        ("ftp://example.com/file", "only https"),
        ("file:///etc/passwd", "only https"),
        ("gopher://example.com/", "only https"),
        ("http://example.com/", "only https"),
        ("https://2130706433/", "non-canonical numeric host"),
        ("https://0177.0.0.1/", "malformed URL|non-canonical numeric host"),
        ("https://0x7f000001/", "non-canonical numeric host"),
        ("https://0x7f.0.0.1/", "non-canonical numeric host"),
        ("https://127.1/", "non-canonical numeric host"),
        ("https://example.com\\@evil.example/", "whitespace or control"),
        ("https://example.com /", "whitespace or control"),
        ("https://exa\x00mple.com/", "whitespace or control"),
        ("https://[fe80::1%25eth0]/", "scoped IPv6"),
        ("https:///path", "no host"),
        ("not a url", "whitespace or control"),
        ("https://exa$mple.com/", "malformed"),
    ],
)
def test_url_refused(url: str, message: str) -> None:
    with pytest.raises(OutboundError, match=message) as excinfo:
        check_url(url, PROD)
    assert excinfo.value.reason == "policy"


def test_http_in_development_only_to_loopback_names() -> None:
    check_url("http://localhost:8000/x", DEV)
    check_url("http://127.0.0.1:8000/x", DEV)
    check_url("http://[::1]:8000/x", DEV)
    with pytest.raises(OutboundError, match="only https"):
        check_url("http://example.com/", DEV)
    with pytest.raises(OutboundError, match="only https"):
        check_url("http://10.0.0.1/", DEV)


def test_url_accepted_and_fragment_dropped() -> None:
    url = check_url("https://Example.COM/a?b=c#frag", PROD)
    assert str(url) == "https://example.com/a?b=c"
    assert check_url("https://[2606:4700::1111]/", PROD).host == "2606:4700::1111"


# -- real exchanges ------------------------------------------------------------------------


def _ok(body: bytes = b'{"ok":true}', content_type: str = "application/json"):
    def route(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 200, body, content_type)

    return route


def test_fetch_returns_body_and_content_type(http_server: LoopbackServer) -> None:
    http_server.routes["/doc"] = _ok(b"eyJ...", "application/statuslist+jwt")
    with OutboundClient(DEV) as client:
        fetch: Fetch = client.fetch
        response = fetch(http_server.url("/doc"), "application/statuslist+jwt")
    assert response.body == b"eyJ..."
    assert response.content_type == "application/statuslist+jwt"


def test_request_headers_are_neutral(http_server: LoopbackServer) -> None:
    def set_cookie(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 200, b"{}", headers={"Set-Cookie": "track=1; Path=/"})

    http_server.routes["/a"] = set_cookie
    http_server.routes["/b"] = _ok()
    with OutboundClient(DEV) as client:
        client.fetch(http_server.url("/a"), "application/json")
        client.fetch(http_server.url("/b"), "application/json")
    for _, _, headers, _ in http_server.requests:
        names = {name.lower() for name in headers}
        assert headers["User-Agent"] == "intyg"
        assert "httpx" not in headers["User-Agent"].lower()
        assert "python" not in headers["User-Agent"].lower()
        assert "cookie" not in names
        assert not names & {"x-forwarded-for", "forwarded", "x-real-ip", "via"}
        assert headers["Accept"] == "application/json"
        assert headers["Accept-Encoding"] == "identity"


def test_non_2xx_is_a_fetch_error_with_bounded_body(http_server: LoopbackServer) -> None:
    def bad(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 400, b'{"error":"invalid_request"}')

    http_server.routes["/bad"] = bad
    with OutboundClient(DEV) as client:
        with pytest.raises(FetchError, match="HTTP status 400") as excinfo:
            client.fetch(http_server.url("/bad"), "application/json")
        with pytest.raises(OutboundError, match="HTTP status 404") as missing:
            client.fetch(http_server.url("/missing"), "application/json")
    assert isinstance(excinfo.value, OutboundError)
    assert excinfo.value.reason == "status"
    assert excinfo.value.status_code == 400
    assert excinfo.value.response is not None
    assert excinfo.value.response.body == b'{"error":"invalid_request"}'
    assert missing.value.status_code == 404


def test_announced_oversize_refused_before_reading(http_server: LoopbackServer) -> None:
    http_server.routes["/big"] = _ok(b"x" * 5000)
    with OutboundClient(OutboundPolicy(development=True, max_response_bytes=1000)) as client:
        with pytest.raises(OutboundError, match="larger than 1000 bytes") as excinfo:
            client.fetch(http_server.url("/big"), "application/json")
    assert excinfo.value.reason == "too_large"


def _endless(done: threading.Event, sent: list[int]):
    """A body without Content-Length that would be 50 MB if read to the end."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        chunk = b"a" * 65536
        try:
            for _ in range(800):
                handler.wfile.write(chunk)
                sent[0] += len(chunk)
        finally:
            done.set()

    return route


def test_oversize_cut_while_streaming(http_server: LoopbackServer) -> None:
    done, sent = threading.Event(), [0]
    http_server.routes["/stream"] = _endless(done, sent)
    with OutboundClient(OutboundPolicy(development=True, max_response_bytes=100_000)) as client:
        with pytest.raises(OutboundError, match="larger than 100000 bytes") as excinfo:
            client.fetch(http_server.url("/stream"), "application/json")
    assert excinfo.value.reason == "too_large"
    assert done.wait(10)
    # The client hung up: the server could not deliver the 50 MB.
    assert sent[0] < 800 * 65536
    assert "aborted /stream" in http_server.events


def test_compression_bomb_cut_while_inflating(http_server: LoopbackServer) -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    assert len(bomb) < 100_000

    def route(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 200, bomb, headers={"Content-Encoding": "gzip"})

    http_server.routes["/bomb"] = route
    http_server.routes["/small"] = lambda h: reply(
        h, 200, gzip.compress(b'{"a":1}'), headers={"Content-Encoding": "gzip"}
    )
    with OutboundClient(OutboundPolicy(development=True, max_response_bytes=100_000)) as client:
        with pytest.raises(OutboundError, match="larger than") as excinfo:
            client.fetch(http_server.url("/bomb"), "application/json")
        assert client.fetch(http_server.url("/small"), "application/json").body == b'{"a":1}'
    assert excinfo.value.reason == "too_large"


def test_unknown_content_encoding_refused(http_server: LoopbackServer) -> None:
    http_server.routes["/br"] = lambda h: reply(h, 200, b"??", headers={"Content-Encoding": "br"})
    with OutboundClient(DEV) as client, pytest.raises(OutboundError, match="content encoding"):
        client.fetch(http_server.url("/br"), "application/json")


def _slowloris(handler: BaseHTTPRequestHandler) -> None:
    # A complete, valid response of 30 bytes at 10 bytes/s: only a total deadline stops it.
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "30")
    handler.end_headers()
    for _ in range(30):
        handler.wfile.write(b" ")
        time.sleep(0.1)


def _silent(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(2.5)
    reply(handler, 200, b"{}")


SLOW = OutboundPolicy(development=True, total_timeout=1.0, read_timeout=5.0)


@pytest.mark.parametrize("route", [_slowloris, _silent], ids=["trickle", "silent"])
def test_total_deadline_cuts_slow_servers(http_server: LoopbackServer, route) -> None:
    # Each read completes within read_timeout; without the deadline both fetches succeed.
    http_server.routes["/slow"] = route
    with OutboundClient(SLOW) as client:
        with pytest.raises(OutboundError, match="time") as excinfo:
            client.fetch(http_server.url("/slow"), "application/json")
    assert excinfo.value.reason == "timeout"


def _redirect(location: str):
    def route(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 302, b"", headers={"Location": location})

    return route


def test_redirects_refused_by_default(http_server: LoopbackServer) -> None:
    http_server.routes["/r"] = _redirect("/ok")
    http_server.routes["/ok"] = _ok()
    with OutboundClient(DEV) as client:
        with pytest.raises(OutboundError, match="redirect not allowed") as excinfo:
            client.fetch(http_server.url("/r"), "application/json")
    assert excinfo.value.reason == "redirect"
    assert [path for _, path, _, _ in http_server.requests] == ["/r"]


def test_same_host_redirects_followed_when_allowed(http_server: LoopbackServer) -> None:
    http_server.routes["/r1"] = _redirect("/r2")
    http_server.routes["/r2"] = _redirect(http_server.url("/ok"))
    http_server.routes["/ok"] = _ok(b'{"final":1}')
    with OutboundClient(DEV) as client:
        assert client.fetch(http_server.url("/r1"), "application/json", max_redirects=2).body == (
            b'{"final":1}'
        )
        fetch = client.fetcher(max_redirects=2)
        assert fetch(http_server.url("/r1"), "application/json").body == b'{"final":1}'


def test_redirect_count_exceeded(http_server: LoopbackServer) -> None:
    http_server.routes["/loop"] = _redirect("/loop")
    with OutboundClient(OutboundPolicy(development=True, max_redirects=3)) as client:
        with pytest.raises(OutboundError, match="too many redirects"):
            client.fetch(http_server.url("/loop"), "application/json")
    assert len(http_server.requests) == 4


def test_cross_host_redirect_refused(http_server: LoopbackServer) -> None:
    http_server.routes["/r"] = _redirect(http_server.url("/ok", host="localhost"))
    http_server.routes["/ok"] = _ok()
    with OutboundClient(DEV) as client:
        with pytest.raises(OutboundError, match="cross-host"):
            client.fetch(http_server.url("/r"), "application/json", max_redirects=3)
    assert [path for _, path, _, _ in http_server.requests] == ["/r"]


def test_redirect_target_revalidated(http_server: LoopbackServer) -> None:
    http_server.routes["/r"] = _redirect("https://user:pw@127.0.0.1/")
    with OutboundClient(DEV) as client:
        with pytest.raises(OutboundError, match="user information"):
            client.fetch(http_server.url("/r"), "application/json", max_redirects=3)


def test_https_to_http_redirect_refused(
    https_server: LoopbackServer, http_server: LoopbackServer, tls: TLSMaterial
) -> None:
    https_server.routes["/r"] = _redirect(http_server.url("/ok", host="localhost"))
    http_server.routes["/ok"] = _ok()
    policy = OutboundPolicy(development=True, ca_bundle=tls.ca_file)
    with OutboundClient(policy) as client:
        with pytest.raises(OutboundError, match="https to http"):
            client.fetch(
                https_server.url("/r", host="localhost"), "application/json", max_redirects=3
            )
    assert http_server.requests == []


def test_https_fetch_in_development(https_server: LoopbackServer, tls: TLSMaterial) -> None:
    https_server.routes["/doc"] = _ok()
    policy = OutboundPolicy(development=True, ca_bundle=tls.ca_file)
    with OutboundClient(policy) as client:
        assert client.fetch(https_server.url("/doc", host="localhost"), "application/json").body
        assert client.fetch(https_server.url("/doc"), "application/json").body


def test_untrusted_certificate_refused(https_server: LoopbackServer) -> None:
    https_server.routes["/doc"] = _ok()
    with OutboundClient(DEV) as client:
        with pytest.raises(OutboundError, match="could not connect") as excinfo:
            client.fetch(https_server.url("/doc", host="localhost"), "application/json")
    assert excinfo.value.reason == "tls"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_loopback_refused_outside_development(
    https_server: LoopbackServer, tls: TLSMaterial, host: str
) -> None:
    https_server.routes["/doc"] = _ok()
    with OutboundClient(OutboundPolicy(ca_bundle=tls.ca_file)) as client:
        with pytest.raises(OutboundError, match="not allowed") as excinfo:
            client.fetch(https_server.url("/doc", host=host), "application/json")
    assert excinfo.value.reason == "policy"
    assert https_server.requests == []


def test_connection_goes_to_the_checked_address_with_original_host(
    https_server: LoopbackServer, tls: TLSMaterial
) -> None:
    # issuer.test resolves only through the policy's resolver: the request can only succeed
    # if the socket goes to the address we checked, while Host and SNI stay "issuer.test".
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    https_server.routes["/doc"] = _ok()
    policy = OutboundPolicy(
        ca_bundle=tls.ca_file, allowed_networks=("127.0.0.1/32",), resolver=resolver
    )
    with OutboundClient(policy) as client:
        response = client.fetch(https_server.url("/doc", host="issuer.test"), "application/json")
    assert response.body == b'{"ok":true}'
    assert calls == ["issuer.test"]
    assert https_server.requests[0][2]["Host"] == f"issuer.test:{https_server.port}"


def test_one_bad_dns_answer_refuses_the_name(
    https_server: LoopbackServer, tls: TLSMaterial
) -> None:
    policy = OutboundPolicy(
        ca_bundle=tls.ca_file, resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"]
    )
    with OutboundClient(policy) as client:
        with pytest.raises(OutboundError, match="not allowed"):
            client.fetch(https_server.url("/doc", host="issuer.test"), "application/json")
    assert https_server.requests == []


def test_http_backend_only_connects_to_loopback(http_server: LoopbackServer) -> None:
    # "localhost" passes the URL check in development; if it resolved elsewhere, refuse.
    policy = OutboundPolicy(development=True, resolver=lambda host, port: ["10.0.0.7"])
    with OutboundClient(policy) as client:
        with pytest.raises(OutboundError, match="only allowed to loopback"):
            client.fetch(http_server.url("/doc", host="localhost"), "application/json")


def test_guarded_transport_inside_plain_httpx_client(https_server: LoopbackServer) -> None:
    transport = GuardedTransport(PROD)
    with httpx.Client(transport=transport) as client:
        with pytest.raises(OutboundError, match="not allowed"):
            client.get(https_server.url("/doc", host="localhost"))
        with pytest.raises(OutboundError, match="only https"):
            client.get("http://example.com/")
    assert https_server.requests == []


# -- posts ---------------------------------------------------------------------------------


def test_post_form_and_json(http_server: LoopbackServer) -> None:
    http_server.routes["/post"] = _ok(b'{"redirect_uri":"https://verifier.example/done"}')
    with OutboundClient(DEV) as client:
        response = client.post_form(http_server.url("/post"), {"vp_token": "{}", "state": "s 1"})
        client.post_json(http_server.url("/post"), {"event": "credential_accepted"})
    assert response.body.startswith(b'{"redirect_uri"')
    (_, _, form_headers, form_body), (_, _, json_headers, json_body) = http_server.requests
    assert form_headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(form_body.decode())) == {"vp_token": "{}", "state": "s 1"}
    assert json_headers["Content-Type"] == "application/json"
    assert json_body == b'{"event":"credential_accepted"}'


def test_post_never_follows_redirects(http_server: LoopbackServer) -> None:
    http_server.routes["/post"] = _redirect("/elsewhere")
    with OutboundClient(OutboundPolicy(development=True, max_redirects=5)) as client:
        with pytest.raises(OutboundError, match="redirect not allowed"):
            client.post_form(http_server.url("/post"), {"state": "x"})
    assert len(http_server.requests) == 1


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Cookie", "User-Agent", "Host"])
def test_forbidden_caller_headers(http_server: LoopbackServer, header: str) -> None:
    with OutboundClient(DEV) as client, pytest.raises(ValueError, match="not allowed"):
        client.post_json(http_server.url("/post"), {}, headers={header: "1.2.3.4"})
    assert http_server.requests == []


# -- async ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_fetch_and_post(http_server: LoopbackServer) -> None:
    http_server.routes["/doc"] = _ok(b"[1]", "application/json; charset=utf-8")
    async with AsyncOutboundClient(DEV) as client:
        response = await client.fetch(http_server.url("/doc"), "application/json")
        posted = await client.post_form(http_server.url("/doc"), {"state": "x"})
        await client.post_json(http_server.url("/doc"), [1])
    assert response.body == b"[1]"
    assert response.content_type == "application/json; charset=utf-8"
    assert posted.body == b"[1]"
    assert http_server.requests[0][2]["User-Agent"] == "intyg"


@pytest.mark.anyio
async def test_async_limits(http_server: LoopbackServer) -> None:
    done, sent = threading.Event(), [0]
    http_server.routes["/stream"] = _endless(done, sent)
    http_server.routes["/slow"] = _slowloris
    http_server.routes["/r"] = _redirect("https://other.example/")
    policy = OutboundPolicy(
        development=True, total_timeout=1.0, read_timeout=5.0, max_response_bytes=100_000
    )
    async with AsyncOutboundClient(policy) as client:
        with pytest.raises(OutboundError, match="larger than") as too_large:
            await client.fetch(http_server.url("/stream"), "application/json")
        with pytest.raises(OutboundError, match="time") as slow:
            await client.fetch(http_server.url("/slow"), "application/json")
        with pytest.raises(OutboundError, match="cross-host"):
            await client.fetch(http_server.url("/r"), "application/json", max_redirects=1)
    assert too_large.value.reason == "too_large"
    assert slow.value.reason == "timeout"


@pytest.mark.anyio
async def test_async_policy_refusals(https_server: LoopbackServer, tls: TLSMaterial) -> None:
    async with AsyncOutboundClient(OutboundPolicy(ca_bundle=tls.ca_file)) as client:
        with pytest.raises(OutboundError, match="not allowed"):
            await client.fetch(https_server.url("/doc", host="localhost"), "application/json")
        with pytest.raises(OutboundError, match="user information"):
            await client.fetch("https://a:b@example.com/", "application/json")
    pinned = OutboundPolicy(
        ca_bundle=tls.ca_file,
        allowed_networks=("127.0.0.1/32",),
        resolver=lambda host, port: ["127.0.0.1"],
    )
    https_server.routes["/doc"] = _ok()
    async with AsyncOutboundClient(pinned) as client:
        response = await client.fetch(
            https_server.url("/doc", host="issuer.test"), "application/json"
        )
    assert response.body == b'{"ok":true}'
    assert [path for _, path, _, _ in https_server.requests] == ["/doc"]


def test_protocol_headers_passed_on_and_cookies_kept_back(http_server: LoopbackServer) -> None:
    """RFC 9449 §8: a wallet must read DPoP-Nonce, also from an error response."""

    def dpop_nonce(handler: BaseHTTPRequestHandler) -> None:
        reply(
            handler,
            400,
            b'{"error":"use_dpop_nonce"}',
            headers={"DPoP-Nonce": "n-1", "Set-Cookie": "track=1", "Retry-After": "2"},
        )

    http_server.routes["/token"] = dpop_nonce
    with OutboundClient(DEV) as client, pytest.raises(OutboundError) as raised:
        client.post_form(http_server.url("/token"), {"grant_type": "x"})
    assert raised.value.response is not None
    headers = raised.value.response.headers
    assert headers["dpop-nonce"] == "n-1" and headers["retry-after"] == "2"
    assert "set-cookie" not in headers
