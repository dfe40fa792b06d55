"""Wallet-facing OpenID4VP 1.0 endpoints (issue 5 items 1, 3, 6).

- ``GET /request/{id}`` and ``POST /request/{id}`` (``request_uri_method`` ``post``,
  §5.10.1: form with optional ``wallet_metadata`` / ``wallet_nonce``, echoed): the signed
  Request Object, ``Content-Type: application/oauth-authz-req+jwt``; re-fetchable with the
  same ``nonce`` until the transaction is used or expires (T109).
- ``POST /response``: the Response Endpoint for ``direct_post`` and ``direct_post.jwt``
  (§8.2, §8.3): form only (415 otherwise), size-limited; 200 ``{}`` or
  ``{"redirect_uri": ...#response_code=...}`` when verified, 400 naming the failed checks
  when rejected (never a claim value, T111).
- ``POST /deletion``: the holder withdraws consent; the disclosed claims go at once
  (:func:`verifier.transactions.delete_by_holder`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from intyg import oid4vp as core
from intyg import strict_json
from intyg.web import fastlane
from intyg.web.bodies import parse_form, read_form
from intyg.web.errors import ProtocolError
from intyg.web.fastlane import FastReply, FastRequest, FastRoute

from . import transactions
from .app import Context, VerifierContext
from .settings import VerifierSettings

__all__ = ["router"]

router = APIRouter(tags=["OpenID4VP"])
NO_STORE = {"Cache-Control": "no-store"}
MAX_REQUEST_FORM_BYTES = 16 * 1024


def _request_object_response(jwt: str) -> Response:
    return Response(jwt, media_type=core.REQUEST_OBJECT_MEDIA_TYPE, headers=NO_STORE)


@router.get("/request/{transaction_id}")
def get_request_object(transaction_id: str, ctx: Context) -> Response:
    """RFC 9101 §5.2: the Request Object by reference."""
    return _request_object_response(transactions.request_object(ctx, transaction_id))


@router.post("/request/{transaction_id}")
async def post_request_object(transaction_id: str, request: Request, ctx: Context) -> Response:
    """§5.10.1 ``request_uri_method=post``: ``wallet_nonce`` is echoed in the Request Object."""
    form = await read_form(request, max_bytes=MAX_REQUEST_FORM_BYTES)
    metadata = form.get("wallet_metadata")
    if metadata is not None:
        try:
            if not isinstance(strict_json.loads(metadata), dict):
                raise ProtocolError("invalid_request", "wallet_metadata must be a JSON object")
        except strict_json.StrictJSONError:
            raise ProtocolError("invalid_request", "wallet_metadata is not JSON") from None
    jwt = await run_in_threadpool(
        transactions.request_object, ctx, transaction_id, form.get("wallet_nonce")
    )
    return _request_object_response(jwt)


def _response_limit(settings: VerifierSettings) -> int:
    return min(settings.max_response_bytes, settings.max_body_bytes)


async def response_endpoint(request: FastRequest) -> FastReply:
    """§8.2 Response Endpoint (``direct_post`` and ``direct_post.jwt``)."""
    ctx: VerifierContext = request.scope["app"].state.verifier
    form = parse_form(request.body, max_fields=8, max_field_bytes=ctx.settings.max_response_bytes)
    return FastReply(await transactions.handle_response(ctx, form))


#: Served by :mod:`intyg.web.fastlane` (hundreds a second); declared here like the rest.
RESPONSE = FastRoute(
    "/response",
    response_endpoint,
    max_bytes=lambda scope: _response_limit(scope["app"].state.verifier.settings),
)
router.add_api_route("/response", fastlane.endpoint(RESPONSE), methods=["POST"])


@router.post("/deletion")
async def deletion_endpoint(request: Request, ctx: Context) -> JSONResponse:
    """The holder withdraws consent: form field ``deletion_request`` (docs/verifier.md)."""
    form = await read_form(request, max_bytes=32 * 1024, max_fields=2)
    token = form.get("deletion_request")
    if not token:
        raise ProtocolError("invalid_request", "deletion_request is required")
    await run_in_threadpool(transactions.delete_by_holder, ctx, token)
    return JSONResponse({"deleted": True}, headers=NO_STORE)
