"""Control endpoints for webhooks the emulator sends to the application.

GET  /_sandbox/webhooks?kind=status&wait_for=2&timeout=5   the delivery log (long-poll)
POST /_sandbox/webhooks {"auth_token": "..."}               sign with this (null: default)
POST /_sandbox/sms/callback {"sid": "SM...", "status": "delivered", "url": null,
                             "error_code": null, "signature": "valid|forged|missing",
                             "repeat": 1, "idempotency_token": null}  -> [delivery, ...]
POST /_sandbox/sms/inbound  {"url": "...", "from": "+1...", "to": "+1...", "body": "STOP",
                             ...}  -> delivery
The last two bodies are sandbox.control.specs' StatusCallbackSpec and InboundSpec (keys optional
where those have defaults).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from sandbox.control.args import BadRequest, body, opt_str, wait_params
from sandbox.control.specs import InboundSpec, StatusCallbackSpec
from sandbox.server.protocol import Reply, Request, json_reply
from sandbox.server.state import State
from sandbox.twilio.inbound import send_inbound


def _log(state: State, req: Request) -> Reply:
    params = req.params()
    kind = params.get("kind") or None
    count, timeout = wait_params(params, 5.0)
    if count > 0:
        try:
            found = state.webhooks.wait_for(count, timeout, kind)
        except TimeoutError as exc:
            return json_reply(408, {"error": str(exc)})
    else:
        found = state.webhooks.deliveries(kind)
    return json_reply(200, [d.to_json() for d in found])


def _configure(state: State, req: Request) -> Reply:
    spec = body(req)
    unknown = set(spec) - {"auth_token"}
    if unknown:
        raise BadRequest(f"unknown keys: {sorted(unknown)}")
    if "auth_token" in spec:
        state.callbacks.auth_token = opt_str(spec, "auth_token")
    return json_reply(200, {"status": "ok"})


def _callback(state: State, req: Request) -> Reply:
    sent = state.callbacks.send(msgspec.json.decode(req.body or b"{}", type=StatusCallbackSpec))
    return json_reply(200, [d.to_json() for d in sent])


def _inbound(state: State, req: Request) -> Reply:
    delivery = send_inbound(state, msgspec.json.decode(req.body or b"{}", type=InboundSpec))
    return json_reply(200, delivery.to_json())


def _optouts(state: State, req: Request) -> Reply:
    return json_reply(200, state.optouts.numbers())


def _change_optouts(state: State, req: Request) -> Reply:
    spec = body(req)
    changes = {key: _numbers(spec, key) for key in ("add", "remove")}
    for number in changes["add"]:
        state.optouts.add(number)
    for number in changes["remove"]:
        state.optouts.remove(number)
    return json_reply(200, state.optouts.numbers())


def _numbers(spec: Mapping[str, Any], key: str) -> list[str]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{key!r} must be a list of numbers")
    return value


ENDPOINTS: dict[tuple[str, str], Callable[[State, Request], Reply]] = {
    ("GET", "webhooks"): _log,
    ("POST", "webhooks"): _configure,
    ("POST", "sms/callback"): _callback,
    ("POST", "sms/inbound"): _inbound,
    ("GET", "optouts"): _optouts,
    ("POST", "optouts"): _change_optouts,
}
