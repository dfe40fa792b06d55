"""Shared steps of the verifier tests: start a transaction through the employer API, fetch
its request object as a wallet would, post a response, read the tables."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from fastapi.testclient import TestClient

from verifier.models import DisclosedClaims, Rejection, Result, Transaction

from .conftest import API_KEY
from .helpers import Request, read_request_object, response_form


def start(client: TestClient, template: str = "registration_certificate", **body: Any):
    response = client.post(
        "/api/v1/transactions", json={"template": template, **body}, headers=API_KEY
    )
    assert response.status_code == 201, response.text
    created = response.json()
    query = parse_qs(urlsplit(created["request_link"]).query)
    assert query["client_id"] == [created["client_id"]]
    path = urlsplit(query["request_uri"][0]).path
    fetched = client.get(path)
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["content-type"].startswith("application/oauth-authz-req+jwt")
    return created, read_request_object(fetched.text)


def post_response(client: TestClient, request: Request, vp_token: Any, **kwargs: Any):
    return client.post("/response", data=response_form(request, vp_token, **kwargs))


def poll(client: TestClient, transaction_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/transactions/{transaction_id}", headers=API_KEY)
    assert response.status_code == 200, response.text
    return response.json()


def stored(engine: sa.Engine, transaction_id: str) -> dict[str, Any]:
    """What the database holds for a transaction."""
    with engine.connect() as connection:

        def count(model: Any) -> int:
            return connection.execute(
                sa.select(sa.func.count())
                .select_from(model)
                .where(model.transaction_id == transaction_id)
            ).scalar_one()

        row = connection.execute(
            sa.select(Transaction.status, Transaction.used_at).where(
                Transaction.id == transaction_id
            )
        ).one()
        kinds = (
            connection.execute(
                sa.select(Rejection.kind).where(Rejection.transaction_id == transaction_id)
            )
            .scalars()
            .all()
        )
        return {
            "results": count(Result),
            "claims": count(DisclosedClaims),
            "rejections": count(Rejection),
            "rejection_kinds": sorted(kinds),
            "status": row.status,
            "used": row.used_at is not None,
        }


def failed_checks(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    return body["error_description"]
