"""Input robustness of every live service over HTTP (security.md §1.9: T112-T119, and the
body limits of T013 as uvicorn + our middleware enforce them): deep nesting, huge numbers,
duplicate members, NUL / lone surrogates / invalid UTF-8 (PostgreSQL refuses NUL in text:
must be a 400 there too, never a 500), log injection, SQL injection in ids and parameters,
wrong methods and media types."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from .actors import Asking, Issuing
from .live import (
    ISSUER_STATE,
    TIMEOUT,
    VERIFIER_STATE,
    WALLET_STATE,
    Live,
    Unchanged,
    assert_no_leak,
    refused,
)


def _post(url: str, content: bytes | str, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        url, content=content, timeout=TIMEOUT, headers={"Content-Type": content_type, **headers}
    )


def _state(live: Live) -> dict[str, tuple[str, ...]]:
    return {"issuer-af": ISSUER_STATE, "verifier": VERIFIER_STATE}


@pytest.fixture(scope="module")
def token_ready(af: Issuing) -> Any:
    return af.token()


# JSON endpoints: (name, how to send, error code for a malformed body)
def _json_endpoints(live: Live, af: Issuing, token_ready: Any) -> dict[str, tuple[Any, str]]:
    wallet, token = token_ready
    employer = live.employer().client
    back_office = af.back_office.client

    def credential(content: bytes) -> httpx.Response:
        return wallet.credential_request(token, None, raw=content)

    def transactions(content: bytes) -> httpx.Response:
        return employer.post(
            live.url("verifier") + "/api/v1/transactions",
            content=content,
            headers={"Content-Type": "application/json"},
        )

    def registrations(content: bytes) -> httpx.Response:
        return back_office.put(
            af.url + "/backoffice/v1/registrations",
            content=content,
            headers={"Content-Type": "application/json"},
        )

    def notification(content: bytes) -> httpx.Response:
        url = af.url + "/notification"
        return wallet.http.post(
            url,
            content=content,
            headers={**wallet.auth_headers(token, url), "Content-Type": "application/json"},
        )

    return {
        "issuer_credential": (credential, "invalid_credential_request"),
        "issuer_notification": (notification, "invalid_notification_request"),
        "issuer_backoffice": (registrations, "invalid_request"),
        "verifier_api": (transactions, "invalid_request"),
    }


JSON_ENDPOINTS = ["issuer_credential", "issuer_notification", "issuer_backoffice", "verifier_api"]


def _bodies(af: Issuing) -> dict[str, bytes]:
    deep = b"[" * 100_000 + b"]" * 100_000
    return {
        "T112_nested_100000_levels": deep,
        "T112_nested_in_a_member": b'{"credential_configuration_id": ' + deep[:40_000] + b"}",
        "T113_100000_digit_number": b'{"batch_size": ' + b"9" * 100_000 + b"}",
        "T113_1e400_float": b'{"iat": 1e400}',
        "T114_duplicate_member": (
            f'{{"credential_configuration_id": "{af.sd_jwt_id}", '
            f'"credential_configuration_id": "{af.vcdm_id}", "template": "x", "template": "y"}}'
        ).encode(),
        "T116_nul_in_a_string": b'{"purpose": "a\\u0000b", "given_name": "a\\u0000b"}',
        "T116_lone_surrogate": b'{"purpose": "a\\ud800b", "given_name": "a\\ud800b"}',
        "T116_invalid_utf8": b'{"purpose": "a\xff\xfeb"}',
        "T116_raw_nul_byte": b'{"purpose": "a\x00b"}',
        "nan_literal": b'{"purpose": NaN}',
        "truncated": b'{"purpose": ',
    }


BODY_CASES = [
    "T112_nested_100000_levels",
    "T112_nested_in_a_member",
    "T113_100000_digit_number",
    "T113_1e400_float",
    "T114_duplicate_member",
    "T116_nul_in_a_string",
    "T116_lone_surrogate",
    "T116_invalid_utf8",
    "T116_raw_nul_byte",
    "nan_literal",
    "truncated",
]


@pytest.mark.parametrize("case", BODY_CASES)
@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
def test_bad_json_bodies(
    live: Live, af: Issuing, token_ready: Any, endpoint: str, case: str
) -> None:
    send, error = _json_endpoints(live, af, token_ready)[endpoint]
    body = _bodies(af)[case]
    # The employer API takes 64 KiB: a larger attack body is a 413 before parsing.
    status = 413 if endpoint == "verifier_api" and len(body) > 64 * 1024 else 400
    with Unchanged(live, _state(live)):
        response = send(body)
        refused(live, response, status, error if status == 400 else "invalid_request")


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
def test_t113_t013_million_digit_number_is_413(
    live: Live, af: Issuing, token_ready: Any, endpoint: str
) -> None:
    send, _ = _json_endpoints(live, af, token_ready)[endpoint]
    with Unchanged(live, _state(live)):
        refused(live, send(b'{"n": ' + b"9" * 1_000_000 + b"}"), 413, "invalid_request")


def test_t116_nul_and_surrogates_in_values_that_are_stored(live: Live, af: Issuing) -> None:
    """Values that would reach a text column (a person's name, a purpose shown to people):
    refused before the database, on SQLite and PostgreSQL alike."""
    back_office = af.back_office.client
    employer = live.employer().client
    person = {
        "personal_identity_number": "198112189884",
        "family_name": "Andersson",
        "registered": True,
        "registered_since": "2025-09-01",
        "registration_category": {"code": "11", "label": "x"},
    }
    with Unchanged(live, _state(live)):
        for bad in ("An\u0000na", "An\ud800na"):
            body = json.dumps({**person, "given_name": bad})
            response = back_office.put(
                af.url + "/backoffice/v1/registrations",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            refused(live, response, 400, "invalid_request")
            for purpose in (bad, {"sv": bad, "en": "x"}):
                created = employer.post(
                    live.url("verifier") + "/api/v1/transactions",
                    content=json.dumps(
                        {"template": "registration_certificate", "purpose": purpose}
                    ),
                    headers={"Content-Type": "application/json"},
                )
                refused(live, created, 400, "invalid_request")


FORM_CASES = {
    "T116_nul": "pre-authorized_code=a%00b&grant_type=x",
    "T116_invalid_utf8": "pre-authorized_code=a%FF%FEb&grant_type=x",
    "T116_lone_surrogate_utf8": "pre-authorized_code=a%ED%A0%80b&grant_type=x",
    "T114_repeated_parameter": "grant_type=a&grant_type=b",
    "T118_sql_in_a_field": "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3A"
    "pre-authorized_code&pre-authorized_code=%27%20OR%20%271%27%3D%271",
    "too_many_fields": "&".join(f"f{i}=x" for i in range(100)),
}


@pytest.mark.parametrize("case", sorted(FORM_CASES))
def test_bad_forms_at_every_form_endpoint(live: Live, af: Issuing, case: str) -> None:
    """The issuer's token and PAR endpoints, the verifier's response and request
    endpoints, the employer token endpoint, the eID token endpoint."""
    asking = Asking.start(live)
    urls = {
        af.url + "/token": ("invalid_request", "invalid_grant", "invalid_dpop_proof"),
        af.url + "/par": ("invalid_request", "invalid_client"),
        live.url("verifier") + "/response": ("invalid_request",),
        live.url("verifier") + f"/request/{asking.id}": ("invalid_request",),
        live.url("verifier") + "/deletion": ("invalid_request",),
        live.url("eid") + "/token": (
            "invalid_request",
            "invalid_client",
            "unsupported_grant_type",
            "invalid_grant",
        ),
    }
    with Unchanged(live, _state(live)):
        for url, errors in urls.items():
            response = _post(url, FORM_CASES[case], "application/x-www-form-urlencoded")
            assert_no_leak(live, response)
            if "/request/" in url and not case.startswith(("T116", "T114", "too_many")):
                continue  # unknown fields are ignored there (§5.10.1): served, nothing stored
            assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
            if response.headers.get("content-type", "").startswith("application/json"):
                error = response.json().get("error")
                if case.startswith("T116") or case == "T114_repeated_parameter":
                    assert error in errors, (url, response.text)


def test_t116_wallet_forms(live: Live, anna: Any) -> None:
    csrf = anna.csrf()
    with Unchanged(live, {"wallet": WALLET_STATE}):
        for raw in (
            f"csrf_token={csrf}&link=a%00b",
            f"csrf_token={csrf}&link=a%FFb",
            f"csrf_token={csrf}&link=a&link=b",
        ):
            for path in ("/add", "/present"):
                response = anna.browser.post(
                    anna.base + path,
                    content=raw,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                assert response.status_code == 400, (path, raw, response.status_code)
                assert_no_leak(live, response)


# -- T117 log injection -------------------------------------------------------------------------

INJECTED = "INJECTED-LOG-LINE level=ERROR"


def test_t117_crlf_and_escapes_do_not_forge_log_lines(live: Live, af: Issuing) -> None:
    evil = f"x\r\n{INJECTED}\x1b[31m\"'"
    quoted = quote(evil, safe="")
    asking = Asking.start(live)
    headers = {"User-Agent": f"ua\x1b[2J{INJECTED}"}
    with Unchanged(live, _state(live)):
        for url, form in (
            (
                af.url + "/token",
                {
                    "grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
                    "pre-authorized_code": evil,
                    "tx_code": evil,
                },
            ),
            (af.url + "/par", {"client_id": evil, "response_type": "code", "state": evil}),
            (live.url("verifier") + "/response", {"state": evil, "vp_token": "{}"}),
            (
                live.url("verifier") + "/response",
                {
                    "state": asking.request.state,
                    "error": "access_denied",
                    "error_description": evil,
                },
            ),
        ):
            response = httpx.post(url, data=form, headers=headers, timeout=TIMEOUT)
            assert_no_leak(live, response)
            assert 400 <= response.status_code < 500 or response.status_code == 200
        httpx.get(af.url + "/offers/" + quoted, headers=headers, timeout=TIMEOUT)
    for path in (live.data / "logs").glob("*.log"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            assert not line.startswith(INJECTED), (path.name, line[:120])
            assert "\x1b[" not in line, (path.name, line[:120])


# -- T118 injection in ids and parameters --------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "1 OR 1=1",
    "1; DROP TABLE issuances; --",
    "%27%20OR%201%3D1--",
    "../../etc/passwd",
    '{"$ne": null}',
    "*",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_t118_injection_in_path_ids(live: Live, af: Issuing, anna: Any, value: str) -> None:
    quoted = httpx.URL("http://x/" + value.replace("/", "%2F")).raw_path.decode()[1:]
    employer = live.employer().client
    with Unchanged(live, {**_state(live), "wallet": WALLET_STATE}):
        for response in (
            httpx.get(f"{af.url}/offers/{quoted}", timeout=TIMEOUT),
            httpx.get(f"{af.url}/statuslists/{quoted}", timeout=TIMEOUT),
            httpx.get(f"{af.url}/status/{quoted}", timeout=TIMEOUT),
            af.back_office.client.get(f"{af.url}/backoffice/v1/registrations/{quoted}"),
            httpx.get(f"{live.url('verifier')}/request/{quoted}", timeout=TIMEOUT),
            employer.get(f"{live.url('verifier')}/api/v1/transactions/{quoted}"),
            anna.get(f"/credentials/{quoted}"),
            anna.get(f"/consents/{quoted}"),
            anna.get(f"/presentations/{quoted}"),
            anna.get(f"/issuance/{quoted}"),
        ):
            assert response.status_code in (400, 404, 405), (
                response.request.url,
                response.status_code,
            )
            assert_no_leak(live, response)


def test_t118_operators_in_json_values(live: Live, af: Issuing) -> None:
    asking = Asking.start(live)
    employer = live.employer().client
    url = f"{live.url('verifier')}/api/v1/transactions/{asking.id}/result"
    with Unchanged(live, _state(live)):
        for code in ({"$ne": None}, ["a", "b"], "' OR '1'='1", 1, None, {"$gt": ""}):
            response = employer.post(url, json={"response_code": code})
            refused(live, response, 400, None)
            assert response.json()["error"] in ("invalid_request", "invalid_grant")
        bad_offer = af.back_office.client.post(
            af.url + "/backoffice/v1/offers",
            json={"person": {"$ne": None}, "record_id": "1 OR 1=1"},
        )
        assert bad_offer.status_code in (400, 404, 422), bad_offer.text
        assert_no_leak(live, bad_offer)


# -- T119 methods and media types ----------------------------------------------------------------


def test_t119_get_on_post_only_endpoints(live: Live, af: Issuing) -> None:
    urls = [af.url + p for p in ("/token", "/credential", "/nonce", "/notification", "/par")]
    urls += [live.url("verifier") + p for p in ("/response", "/deletion", "/api/v1/token")]
    urls += [live.url("eid") + "/token"]
    for url in urls:
        response = httpx.get(url, timeout=TIMEOUT)
        refused(live, response, 405, "invalid_request")
        assert "POST" in response.headers.get("allow", "")


def test_t119_wrong_media_types(live: Live, af: Issuing, token_ready: Any) -> None:
    wallet, token = token_ready
    asking = Asking.start(live)
    with Unchanged(live, _state(live)):
        for url in (
            af.url + "/token",
            af.url + "/par",
            live.url("verifier") + "/response",
            live.url("verifier") + "/deletion",
        ):
            for content_type in (
                "application/json",
                "text/plain",
                "multipart/form-data; boundary=x",
            ):
                response = _post(url, "{}", content_type)
                refused(live, response, 415, "invalid_request")
        for content_type in ("application/x-www-form-urlencoded", "text/plain"):
            response = wallet.credential_request(
                token, None, raw=b"a=b", headers={"Content-Type": content_type}
            )
            refused(live, response, 415, "invalid_request")
            api = live.employer().client.post(
                live.url("verifier") + "/api/v1/transactions",
                content=b"template=x",
                headers={"Content-Type": content_type},
            )
            refused(live, api, 415, "invalid_request")
        form_json = _post(
            live.url("verifier") + "/response",
            json.dumps({"state": asking.request.state}),
            "application/json",
        )
        refused(live, form_json, 415, "invalid_request")


@pytest.mark.parametrize("service", ["issuer-af", "verifier", "wallet", "eid"])
def test_t013_oversized_bodies_are_413_at_every_service(live: Live, service: str) -> None:
    """A 10 MB body to a form endpoint: 413 from the body limit before it is read
    (Content-Length), and for a chunked body while it streams."""
    path = {"issuer-af": "/token", "verifier": "/response", "wallet": "/add", "eid": "/token"}[
        service
    ]
    url = live.url(service) + path
    big = b"a=" + b"x" * (10 * 1024 * 1024)
    response = _post(url, big, "application/x-www-form-urlencoded")
    refused(live, response, 413, None)

    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * (1024 * 1024)

    streamed = httpx.post(
        url,
        content=chunks(),
        timeout=TIMEOUT,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # The wallet refuses a post without a login before reading any of the body.
    refused(live, streamed, 403 if service == "wallet" else 413, None)
