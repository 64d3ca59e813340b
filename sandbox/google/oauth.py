"""Google OAuth2 token endpoint (JWT-bearer grant used by service accounts)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from sandbox.control.faults import Fault
from sandbox.google.tokens import TOKEN_LIFETIME_S
from sandbox.server.protocol import Reply, Request, json_reply
from sandbox.server.records import RequestRecord
from sandbox.server.state import State

PATH = "/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google allows this much clock skew on the assertion's exp.
_SKEW_S = 60


class _BadGrant(ValueError):
    pass


def route(state: State, req: Request) -> Reply:
    if req.method != "POST":
        return json_reply(405, {"error": "invalid_request", "error_description": "POST only"})
    fault = state.script.next_token_fault()
    if fault is not None:
        return _faulty(state, req, fault)
    form = req.form()
    grant = form.get("grant_type", "")
    if grant != JWT_BEARER:
        # Google's own answer for anything but the grants it supports.
        return _reject(state, req, "unsupported_grant_type", f"Invalid grant_type: {grant}")
    try:
        claims = _claims(form.get("assertion", ""))
    except _BadGrant as exc:
        return _reject(state, req, "invalid_grant", str(exc))
    token = state.tokens.issue()
    state.recorder.log(RequestRecord("oauth", "POST", req.path, 200, str(claims["iss"])))
    return json_reply(
        200,
        {"access_token": token, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"},
    )


def _claims(assertion: str) -> dict[str, Any]:
    """Decode and sanity-check the JWT; the signature is deliberately ignored."""
    parts = assertion.split(".")
    if len(parts) != 3 or not all(parts):
        raise _BadGrant("Invalid JWT: must have 3 non-empty parts.")
    header, claims = _segment(parts[0]), _segment(parts[1])
    if "alg" not in header:
        raise _BadGrant("Invalid JWT header: missing alg.")
    missing = [k for k in ("iss", "aud", "exp") if k not in claims]
    if missing:
        raise _BadGrant(f"Invalid JWT: missing claim(s) {', '.join(missing)}.")
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp < time.time() - _SKEW_S:
        raise _BadGrant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
            "reasonable timeframe. Check your iat and exp values in the JWT claim."
        )
    return claims


def _segment(text: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _BadGrant("Invalid JWT: segment is not base64url-encoded JSON.") from exc
    if not isinstance(value, dict):
        raise _BadGrant("Invalid JWT: segment is not a JSON object.")
    return value


def _faulty(state: State, req: Request, fault: Fault) -> Reply:
    """A scripted outage or refusal (sandbox.control.script, `token_faults`)."""
    if fault.action is not None:
        # Handled (a token is issued, never seen), then the connection misbehaves.
        state.recorder.log(RequestRecord("oauth", "POST", req.path, 0, None, fault.action))
        reply = json_reply(
            200, {"access_token": state.tokens.issue(), "expires_in": TOKEN_LIFETIME_S,
                  "token_type": "Bearer"},
        )  # fmt: skip
        return reply.with_connection_fault(fault.action, fault.delay_s)
    if fault.status >= 500:
        # Google's front end answers an outage with its HTML error page, not OAuth JSON.
        state.recorder.log(RequestRecord("oauth", "POST", req.path, fault.status, None, "outage"))
        page = _OUTAGE_PAGE.format(status=fault.status).encode()
        return Reply(fault.status, page, content_type="text/html; charset=UTF-8")
    error = fault.error_code or "invalid_grant"
    description = fault.message or _DESCRIPTIONS.get(error, "Bad Request")
    state.recorder.log(RequestRecord("oauth", "POST", req.path, fault.status, None, error))
    return json_reply(fault.status, {"error": error, "error_description": description})


_OUTAGE_PAGE = (
    "<!DOCTYPE html><html lang=en><title>Error {status} (Server Error)!!1</title>"
    "<p><b>{status}.</b> <ins>That's an error.</ins><p>The server encountered a temporary "
    "error and could not complete your request.<p>Please try again in 30 seconds.</html>"
)
_DESCRIPTIONS = {
    "invalid_grant": "Invalid JWT Signature.",
    "invalid_client": "The OAuth client was not found.",
    "unauthorized_client": "Client is unauthorized to retrieve access tokens using this method.",
}


def _reject(state: State, req: Request, error: str, description: str) -> Reply:
    state.recorder.log(RequestRecord("oauth", "POST", req.path, 400, None, error))
    return json_reply(400, {"error": error, "error_description": description})
