"""POST /v1/messages, the SMS channel, as Vonage's Messages API answers it.

In order: the request's latency, a scripted fault (queued first, then the sticky failing
mode), the account's throughput limit, the JWT, the body's checks; then 202 with a
`message_uuid`, and the status webhooks follow (sandbox/vonage/callbacks.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import jwt

from sandbox.server.protocol import Reply, json_reply
from sandbox.vonage.problems import BY_STATUS, problem_reply
from sandbox.vonage.state import Fault, VonageMessage, VonageState

PATH = "/v1/messages"
_NUMBER = re.compile(r"[1-9]\d{6,14}")
MAX_TEXT = 1000  # the SMS channel's `text`, as the API reference bounds it


def route(state: VonageState, req: Any) -> Reply:
    fault = state.next_fault() if (req.path, req.method) == (PATH, "POST") else None
    refused = _refusal(state, req, fault)
    if refused is not None:
        return refused
    try:
        body = json.loads(req.body or b"null")
    except ValueError:
        body = None
    invalid = _invalid(body)
    if invalid:
        state.log(req.path, 422, None, "invalid-params")
        return problem_reply("invalid-params", invalid)
    message = VonageMessage(
        uuid=str(uuid.uuid4()),
        to=body["to"],
        from_=str(body["from"]),
        text=body["text"],
        webhook_url=body.get("webhook_url"),
        client_ref=body.get("client_ref"),
        received_at=time.time(),
    )
    state.accept(message)
    reply = json_reply(202, {"message_uuid": message.uuid})
    state.log(req.path, 202, message.to, None if fault is None else fault.action)
    if fault is None:
        return reply
    return reply.with_connection_fault(fault.action, fault.delay_s)


def _refusal(state: VonageState, req: Any, fault: Fault | None) -> Reply | None:
    """What answers before the body is read: route, fault, throughput, credentials."""
    if (req.path, req.method) != (PATH, "POST"):
        return json_reply(404 if req.path != PATH else 405, {"title": "Not Found"})
    state.pause()
    if fault is not None and fault.action == "reset":
        state.log(req.path, 0, None, "reset")
        return Reply(0, action="reset")
    if fault is not None and fault.action is None:
        state.log(req.path, fault.status, None, fault.problem)
        name = fault.problem or BY_STATUS[fault.status]
        return problem_reply(name, retry_after=fault.retry_after)
    if not state.admit():
        state.log(req.path, 429, None, "throttled")
        return problem_reply("throttled", retry_after=1)
    if not _authorised(state, req.headers.get("authorization", "")):
        state.log(req.path, 401, None, "unauthorized")
        return problem_reply("unauthorized")
    return None


def _authorised(state: VonageState, header: str) -> bool:
    """An application JWT (RS256, signed with the application's private key), checked against
    the public key when the emulator has one; its `application_id` must be the one set."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        if state.public_key is not None:
            claims = jwt.decode(token, state.public_key, algorithms=["RS256"])
        else:
            claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    wanted = state.application_id
    return bool(claims.get("application_id")) and wanted in (None, claims["application_id"])


def _invalid(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict):
        return [{"name": "body", "reason": "must be a JSON object"}]
    problems = []
    if body.get("channel") != "sms":
        problems.append({"name": "channel", "reason": "only sms is emulated"})
    if body.get("message_type") != "text":
        problems.append({"name": "message_type", "reason": "must be text"})
    if not isinstance(body.get("to"), str) or not _NUMBER.fullmatch(body["to"]):
        problems.append({"name": "to", "reason": "must be E.164 without a leading +"})
    if not body.get("from"):
        problems.append({"name": "from", "reason": "is required"})
    text = body.get("text")
    if not isinstance(text, str) or not text:
        problems.append({"name": "text", "reason": "is required"})
    elif len(text) > MAX_TEXT:
        problems.append({"name": "text", "reason": f"must be at most {MAX_TEXT} characters"})
    return problems


__all__ = ["PATH", "Fault", "route"]
