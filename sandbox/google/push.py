"""FCM HTTP v1 `messages:send` emulator."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from sandbox.control.faults import Fault, split
from sandbox.google import validation
from sandbox.google.identifiers import (
    INVALID_TOKEN_MESSAGE,
    is_installation_id,
    is_registration_token,
)
from sandbox.server.protocol import Reply, Request, json_reply, retry_after
from sandbox.server.records import RecordedMessage, RequestRecord
from sandbox.server.state import State

PREFIX = "/v1/projects/"
_ROUTE = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access "
    "token, login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_CHALLENGE = (("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"'),)


def route(state: State, req: Request) -> Reply:
    match = _ROUTE.match(req.path)
    if match is None:
        return _error(Fault(status=404, error_code="", message=f"Not found: {req.path}"))
    if req.method != "POST":
        return _error(Fault(status=405, error_code="", message="Method not allowed."))
    project = match.group(1)
    state.script.delay("push")
    body, problem = _body(req)
    message = body.get("message")
    if not isinstance(message, dict):
        message = {}
    token = _recipient(message)
    if not _authorized(state, req):
        _log(state, req, 401, token, "UNAUTHENTICATED")
        # Any 401 makes google-auth refresh its token and resend (twice at most).
        return _error(Fault(status=401, error_code="", message=_UNAUTHENTICATED), _CHALLENGE)
    # Server-side trouble first, then what FCM checks in the request, then the device.
    connection, fault = split(
        state.script.next_fault("push", None),
        problem or _validate(message, token),
        state.script.sticky_fault(token),
    )
    if connection is not None and connection.action == "reset":
        _log(state, req, 0, token, "reset")
        return Reply(0, action="reset")
    if fault is not None:
        _log(state, req, fault.status, token, fault.fcm_error_code() or fault.google_status())
        reply = _error(fault)
    else:
        _log(state, req, 200, token, None if connection is None else connection.action)
        reply = json_reply(200, {"name": _accept(state, project, body, message, token)})
    if connection is None:
        return reply
    return reply.with_connection_fault(connection.action, connection.delay_s)


def _accept(
    state: State, project: str, body: dict[str, Any], message: dict[str, Any], token: str | None
) -> str:
    """Record the push and return its name; dry runs are checked but, as at FCM, not sent."""
    if body.get("validate_only") is True:
        return f"projects/{project}/messages/fake_message_id"
    name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{secrets.token_hex(8)}"
    notification = message.get("notification") or {}
    state.recorder.record(
        RecordedMessage(
            channel="push",
            id=name,
            to=token or "",
            sender=None,
            body=notification.get("body"),
            title=notification.get("title"),
            data=dict(message.get("data") or {}),
            payload=message,
            response={"name": name},
        )
    )
    return name


def _body(req: Request) -> tuple[dict[str, Any], Fault | None]:
    try:
        body = req.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return {}, _invalid("Invalid JSON payload received.")
    if not isinstance(body.get("message"), dict):
        return body, _invalid('Invalid JSON payload received. Unknown name "message".')
    return body, None


# The v1 Message's `target` oneof; firebase-admin 7.7 adds `fid` and deprecates `token`.
_TARGETS = ("token", "fid", "topic", "condition")
# Each device field must hold its own kind of identifier (sandbox.google.identifiers).
_SHAPES = {"token": is_registration_token, "fid": is_installation_id}


def _recipient(message: dict[str, Any]) -> str | None:
    for key in _SHAPES:
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _validate(message: dict[str, Any], token: str | None) -> Fault | None:
    targets = [key for key in _TARGETS if message.get(key) not in (None, "")]
    if len(targets) > 1:
        return _invalid(
            f"Invalid value at 'message' (oneof), oneof field 'target' is already set. "
            f"Cannot set '{targets[1]}'"
        )
    if token is None:
        # Only device delivery (token/fid) is modelled; topics/conditions are not.
        return _invalid("Recipient of the message is not set.")
    for key, shaped in _SHAPES.items():
        value = message.get(key)
        if value is not None and not (isinstance(value, str) and shaped(value)):
            return _invalid(INVALID_TOKEN_MESSAGE)
    invalid = validation.check(message)
    if invalid is None:
        return None
    return Fault(
        status=400,
        error_code="INVALID_ARGUMENT" if invalid.fcm_detail else "",
        message=invalid.message,
    )


def _authorized(state: State, req: Request) -> bool:
    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and state.tokens.valid(token.strip())


def _invalid(message: str) -> Fault:
    return Fault(status=400, error_code="INVALID_ARGUMENT", message=message)


def _error(fault: Fault, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    error: dict[str, Any] = {
        "code": fault.status,
        "message": fault.google_message(),
        "status": fault.google_status(),
    }
    code = fault.fcm_error_code()
    if code is not None:
        error["details"] = [{"@type": FCM_ERROR_TYPE, "errorCode": code}]
    return json_reply(fault.status, {"error": error}, headers + retry_after(fault.retry_after))


def _log(state: State, req: Request, status: int, token: str | None, error: str | None) -> None:
    state.recorder.log(RequestRecord("push", req.method, req.path, status, token, error))
