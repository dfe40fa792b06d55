"""intyg.web.fastlane: a hot route answered in front of the framework behaves like any other
route: body limit (413), media type (415), protocol errors, 500s, request id, access line,
metrics, OpenAPI, prefixes, and the same answers without the middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from intyg.web import fastlane
from intyg.web.bodies import parse_form
from intyg.web.errors import ProtocolError, install_error_handlers
from intyg.web.fastlane import FastLaneMiddleware, FastReply, FastRequest, FastRoute
from intyg.web.observability import REQUEST_ID_HEADER, ObservabilityMiddleware

from .logcapture import access_lines, captured

LIMIT = 1024
seen: list[FastRequest] = []


async def echo(request: FastRequest) -> FastReply:
    """Echo the form's fields."""
    seen.append(request)
    form = parse_form(request.body)
    if form.get("fail") == "protocol":
        raise ProtocolError("invalid_grant", "the code is dead", headers={"X-Extra": "1"})
    if form.get("fail") == "crash":
        raise RuntimeError("unexpected")
    return FastReply({"fields": form, "agent": request.header("User-Agent")})


ECHO = FastRoute("/echo", echo, max_bytes=LIMIT)


def make_app(*, prefix: str = "", fast: bool = True) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter()
    router.add_api_route("/echo", fastlane.endpoint(ECHO), methods=["POST"])
    app.include_router(router, prefix=prefix)
    if fast:
        fastlane.install(app)
    app.add_middleware(ObservabilityMiddleware)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    seen.clear()
    with TestClient(make_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def _fast_lane_of(app: FastAPI) -> FastLaneMiddleware | None:
    app.middleware_stack = app.middleware_stack or app.build_middleware_stack()
    layer = app.middleware_stack
    while layer is not None:
        if isinstance(layer, FastLaneMiddleware):
            return layer
        layer = getattr(layer, "app", None)
    return None


def test_install_puts_the_declared_routes_in_front(client: TestClient) -> None:
    lane = _fast_lane_of(client.app)  # type: ignore[arg-type]
    assert lane is not None and set(lane.routes) == {("POST", "/echo")}
    response = client.post("/echo", data={"a": "1"}, headers={"User-Agent": "t"})
    assert response.status_code == 200
    assert response.json() == {"fields": {"a": "1"}, "agent": "t"}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert seen[0].scope["route"].path_format == "/echo"


def test_a_prefix_of_an_included_router_is_part_of_the_path() -> None:
    lane = _fast_lane_of(make_app(prefix="/v1"))
    assert lane is not None and set(lane.routes) == {("POST", "/v1/echo")}


def test_an_app_without_fast_routes_gets_no_middleware() -> None:
    app = FastAPI()
    fastlane.install(app)
    assert _fast_lane_of(app) is None


def test_request_id_access_line_and_metrics_as_on_any_route(client: TestClient) -> None:
    labels = {"method": "POST", "route": "/echo", "status": "2xx"}
    before = REGISTRY.get_sample_value("intyg_http_requests_total", labels) or 0.0
    with captured() as stream:
        response = client.post(
            "/echo", data={"a": "1"}, headers={REQUEST_ID_HEADER: "req-abcdef-123"}
        )
    assert response.headers[REQUEST_ID_HEADER] == "req-abcdef-123"
    assert REGISTRY.get_sample_value("intyg_http_requests_total", labels) == before + 1
    (line,) = access_lines(stream)
    assert line["path"] == "/echo" and line["status"] == 200


def test_declared_length_over_the_limit_is_413_before_the_handler(client: TestClient) -> None:
    response = client.post(
        "/echo",
        content=b"a=" + b"x" * LIMIT,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"request body larger than {LIMIT} bytes",
    }
    assert response.headers["connection"] == "close"
    assert seen == []


def test_a_streamed_body_is_cut_off_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a="
        for _ in range(4):
            yield b"x" * 512

    response = client.post(
        "/echo", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert seen == []


def test_malformed_content_length_is_refused(client: TestClient) -> None:
    app = client.app
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"a=1", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "headers": [
            (b"content-length", b"-1"),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ],
        "app": app,
    }
    lane = _fast_lane_of(app)  # type: ignore[arg-type]
    assert lane is not None
    asyncio.run(lane(scope, receive, send))
    assert sent[0]["status"] == 400
    assert b"malformed Content-Length" in sent[1]["body"]
    assert seen == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "application/x-www-form-urlencoded; charset=latin-1", None],
)
def test_another_media_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/echo", content=b"a=1", headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "invalid_request"
    assert seen == []


def test_a_protocol_error_is_the_usual_error_body(client: TestClient) -> None:
    response = client.post("/echo", data={"fail": "protocol"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "the code is dead"}
    assert response.headers["x-extra"] == "1"
    assert response.headers["cache-control"] == "no-store"


def test_an_unexpected_error_is_the_apps_500_with_the_request_id(client: TestClient) -> None:
    response = client.post(
        "/echo", data={"fail": "crash"}, headers={REQUEST_ID_HEADER: "req-500-abcdef"}
    )
    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "internal error, request id req-500-abcdef",
    }


def test_other_methods_fall_through_to_the_app(client: TestClient) -> None:
    assert client.get("/echo").status_code == 405
    assert client.post("/elsewhere", data={"a": "1"}).status_code == 404
    assert seen == []


def test_the_same_answers_without_the_middleware() -> None:
    seen.clear()
    with TestClient(make_app(fast=False), raise_server_exceptions=False) as plain:
        assert _fast_lane_of(plain.app) is None  # type: ignore[arg-type]
        ok = plain.post("/echo", data={"a": "1"}, headers={"User-Agent": "t"})
        refused = plain.post("/echo", data={"fail": "protocol"})
        too_big = plain.post(
            "/echo",
            content=b"a=" + b"x" * LIMIT,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert (ok.status_code, ok.json()) == (200, {"fields": {"a": "1"}, "agent": "t"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert too_big.status_code == 413


def test_the_route_is_in_the_openapi_document() -> None:
    operation = make_app().openapi()["paths"]["/echo"]["post"]
    assert operation["description"] == "Echo the form's fields."


async def bodiless(request: FastRequest) -> FastReply:
    """Answer without reading the body."""
    return FastReply({"read": len(request.body)})


def test_a_route_without_a_media_type_takes_any_body_within_the_limit() -> None:
    app = FastAPI()
    install_error_handlers(app)
    route = FastRoute("/nonce", bodiless, max_bytes=LIMIT, accept=None)
    app.add_api_route("/nonce", fastlane.endpoint(route), methods=["POST"])
    fastlane.install(app)
    with TestClient(app) as plain:
        assert plain.post("/nonce").json() == {"read": 0}
        assert plain.post("/nonce", json={"a": 1}).json() == {"read": 7}
        assert plain.post("/nonce", content=b"x" * (LIMIT + 1)).status_code == 413
