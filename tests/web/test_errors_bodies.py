"""Error responses and body handling through a small real FastAPI app (security.md
conventions, T111-T119)."""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from intyg.web.bodies import (
    BodyLimitMiddleware,
    form_body,
    json_body,
    media_type,
    parse_form,
    read_form,
    read_json,
)
from intyg.web.errors import (
    BearerTokenError,
    ProtocolError,
    ServiceUnavailable,
    install_error_handlers,
    sanitize_description,
)

LIMIT = 2000


class Typed(BaseModel):
    count: int


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=LIMIT)

    @app.post("/json")
    async def post_json(request: Request) -> Any:
        return {"got": await read_json(request)}

    @app.post("/credential")
    async def credential(
        body: Annotated[Any, Depends(json_body(error="invalid_credential_request"))],
    ) -> Any:
        return {"got": body}

    @app.post("/form")
    async def post_form(request: Request) -> Any:
        return await read_form(request, max_fields=5, max_field_bytes=100)

    @app.post("/direct_post")
    async def direct_post(form: Annotated[dict[str, str], Depends(form_body())]) -> Any:
        return form

    @app.post("/typed")
    async def typed(item: Typed) -> Any:
        return {"count": item.count}

    @app.get("/boom")
    async def boom() -> Any:
        raise RuntimeError("SELECT personnummer FROM person WHERE id = '199001011234'")

    @app.get("/protocol")
    async def protocol() -> Any:
        raise ProtocolError("invalid_proof", 'bad "proof"\\ with\r\nnewline and ö', 400)

    @app.get("/bearer")
    async def bearer() -> Any:
        raise BearerTokenError("invalid_token", "the access token expired")

    @app.get("/bearer-missing")
    async def bearer_missing() -> Any:
        raise BearerTokenError(None, realm="wallet")

    @app.get("/scope")
    async def scope() -> Any:
        raise BearerTokenError("insufficient_scope")

    @app.get("/busy")
    async def busy() -> Any:
        raise ServiceUnavailable(retry_after=3)

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(build_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def _oauth_error(response: Any, status: int, error: str) -> dict[str, str]:
    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    return body


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ('a "quoted" \\ path', "a ?quoted? ? path"),
        ("line\r\nbreak\x1b[31m", "line??break?[31m"),
        ("åäö", "???"),
        ("x" * 1000, "x" * 300),
    ],
)
def test_sanitize_description(text: str, expected: str) -> None:
    assert sanitize_description(text) == expected


def test_error_code_must_be_nqschar() -> None:
    with pytest.raises(ValueError, match="character set"):
        ProtocolError('bad"code')


def test_protocol_error_body_is_sanitised(client: TestClient) -> None:
    body = _oauth_error(client.get("/protocol"), 400, "invalid_proof")
    assert body["error_description"] == "bad ?proof?? with??newline and ?"


def test_unexpected_error_leaks_nothing(client: TestClient, caplog: Any) -> None:
    with caplog.at_level(logging.ERROR, logger="intyg.web.errors"):
        response = client.get("/boom")
    body = _oauth_error(response, 500, "server_error")
    request_id = response.headers["x-request-id"]
    assert body["error_description"] == f"internal error, request id {request_id}"
    assert "SELECT" not in response.text and "1990" not in response.text
    assert "Traceback" not in response.text
    assert caplog.records[0].request_id == request_id


def test_validation_error_is_invalid_request_without_values(client: TestClient) -> None:
    response = client.post("/typed", json={"count": "199001011234x"})
    body = _oauth_error(response, 400, "invalid_request")
    assert body["error_description"] == "invalid or missing parameter body.count"
    assert "199001011234" not in response.text


def test_bearer_errors_carry_challenges(client: TestClient) -> None:
    response = client.get("/bearer")
    _oauth_error(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="the access token expired"'
    )
    missing = client.get("/bearer-missing")
    assert missing.status_code == 401
    assert missing.json() == {}
    assert missing.headers["www-authenticate"] == 'Bearer realm="wallet"'
    scope = client.get("/scope")
    _oauth_error(scope, 403, "insufficient_scope")
    assert scope.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'


def test_service_unavailable_has_retry_after(client: TestClient) -> None:
    response = client.get("/busy")
    _oauth_error(response, 503, "temporarily_unavailable")
    assert response.headers["retry-after"] == "3"


def test_method_not_allowed_and_not_found(client: TestClient) -> None:
    response = client.get("/json")
    body = _oauth_error(response, 405, "invalid_request")
    assert body["error_description"] == "method not allowed"
    assert response.headers["allow"] == "POST"
    _oauth_error(client.get("/nowhere"), 404, "not_found")


# -- JSON bodies ---------------------------------------------------------------------------


def _post(client: TestClient, path: str, body: bytes, content_type: str | None) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(path, content=body, headers=headers)


def test_json_body_accepted(client: TestClient) -> None:
    response = _post(client, "/json", b'{"a": [1, "x"]}', "application/json; charset=UTF-8")
    assert response.status_code == 200
    assert response.json() == {"got": {"a": [1, "x"]}}


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_json_endpoint_refuses_other_media_types(client: TestClient, content_type: Any) -> None:
    body = _oauth_error(_post(client, "/json", b"{}", content_type), 415, "invalid_request")
    assert body["error_description"] == "Content-Type must be application/json"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"a":1,"a":2}', "duplicate member name"),
        (b"[" * 1000 + b"]" * 1000, "nested deeper"),
        (b'{"n":' + b"1" * 1500 + b"}", "integer with more than"),
        (b'{"s":"a\\u0000b"}', "NUL character"),
        (b'{"s":"\\ud800"}', "lone surrogate"),
        (b'{"s":"\xff"}', "not valid UTF-8"),
        (b'{"a":NaN}', "not valid JSON"),
        (b"{", "malformed JSON"),
    ],
)
def test_json_body_rejections(client: TestClient, payload: bytes, reason: str) -> None:
    body = _oauth_error(_post(client, "/json", payload, "application/json"), 400, "invalid_request")
    assert reason in body["error_description"]


def test_json_dependency_uses_endpoint_error_code(client: TestClient) -> None:
    payload = b'{"credential_configuration_id":"a","credential_configuration_id":"b"}'
    response = _post(client, "/credential", payload, "application/json")
    _oauth_error(response, 400, "invalid_credential_request")


# -- form bodies ---------------------------------------------------------------------------


FORM = "application/x-www-form-urlencoded"


def test_form_body_accepted(client: TestClient) -> None:
    response = _post(client, "/form", b"state=abc&vp_token=%7B%22a%22%3A1%7D&x=a+b&e=", FORM)
    assert response.status_code == 200
    assert response.json() == {"state": "abc", "vp_token": '{"a":1}', "x": "a b", "e": ""}
    direct = _post(client, "/direct_post", b"name=%C3%A5sa", FORM + "; charset=utf-8")
    assert direct.json() == {"name": "åsa"}


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "text/plain", "multipart/form-data"]
)
def test_form_endpoint_refuses_other_media_types(client: TestClient, content_type: Any) -> None:
    _oauth_error(_post(client, "/form", b"a=1", content_type), 415, "invalid_request")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"state=a&state=b", "parameter state repeated"),
        (b"a=1&b=2&c=3&d=4&e=5&f=6", "more than 5 form fields"),
        (b"a=" + b"x" * 200, "form field larger than 100 bytes"),
        (b"a=%00", "NUL character"),
        (b"a%00=1", "NUL character"),
        (b"a=%FF%FE", "not valid UTF-8"),
        (b"=value", "without a name"),
    ],
)
def test_form_body_rejections(client: TestClient, payload: bytes, reason: str) -> None:
    body = _oauth_error(_post(client, "/form", payload, FORM), 400, "invalid_request")
    assert reason in body["error_description"]


def test_parse_form_edge_cases() -> None:
    assert parse_form(b"") == {}
    assert parse_form(b"a&&b=1") == {"a": "", "b": "1"}
    assert parse_form(b"a=%3D%26") == {"a": "=&"}
    with pytest.raises(ProtocolError, match="repeated") as excinfo:
        parse_form(b"a=1&a=1", error="invalid_grant")
    assert excinfo.value.error == "invalid_grant"


def test_media_type() -> None:
    assert media_type('Application/JSON; Charset="UTF-8"') == (
        "application/json",
        {"charset": "utf-8"},
    )
    assert media_type(None) == ("", {})


# -- body limits ---------------------------------------------------------------------------


def test_declared_oversize_body_is_413(client: TestClient) -> None:
    response = _post(client, "/json", b'"' + b"x" * LIMIT + b'"', "application/json")
    body = _oauth_error(response, 413, "invalid_request")
    assert body["error_description"] == f"request body larger than {LIMIT} bytes"


def test_chunked_oversize_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'"'
        for _ in range(50):
            yield b"x" * 100
        yield b'"'

    response = client.post("/form", content=chunks(), headers={"Content-Type": FORM})
    _oauth_error(response, 413, "invalid_request")


def test_malformed_content_length_is_400() -> None:
    app = build_app()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/json",
        "headers": [(b"content-length", b"12abc")],
        "query_string": b"",
    }
    import anyio

    anyio.run(BodyLimitMiddleware(app, LIMIT), scope, receive, send)
    assert messages[0]["status"] == 400


# -- on a real server: the 413 comes before the body is read ------------------------------


@pytest.fixture(scope="module")
def live_server() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(build_app(), log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
    yield port
    server.should_exit = True
    thread.join(5)


def _status_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(4096)
        if not piece:
            break
        data += piece
    return data.split(b"\r\n", 1)[0]


def test_live_declared_oversize_refused_without_body(live_server: int) -> None:
    with socket.create_connection(("127.0.0.1", live_server), timeout=5) as conn:
        conn.sendall(
            b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        # Not a byte of the announced 100 MB was sent, yet the answer arrives.
        assert _status_line(conn) == b"HTTP/1.1 413 Request Entity Too Large"


def test_live_chunked_oversize_refused_midstream(live_server: int) -> None:
    chunk = b"1f4\r\n" + b"x" * 500 + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", live_server), timeout=5) as conn:
        conn.sendall(
            b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 2000:  # would be 1 MB
            readable, _, _ = select.select([conn], [], [], 0.01)
            if readable:
                break
            try:
                conn.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        assert _status_line(conn) == b"HTTP/1.1 413 Request Entity Too Large"
    assert sent < 2000


def test_live_json_roundtrip(live_server: int) -> None:
    body = json.dumps({"a": 1}).encode()
    with socket.create_connection(("127.0.0.1", live_server), timeout=5) as conn:
        conn.sendall(
            b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        assert _status_line(conn) == b"HTTP/1.1 200 OK"
