"""Control endpoints for webhooks the emulator sends to the application.

GET  /_sandbox/webhooks?kind=status&wait_for=2&timeout=5   the delivery log (long-poll)
POST /_sandbox/webhooks {"auth_token": "..."}               sign with this (null: default)
POST /_sandbox/sms/callback {"sid": "SM...", "status": "delivered", "url": null,
                             "error_code": null, "signature": "valid|forged|missing",
                             "repeat": 1, "idempotency_token": null}  -> [delivery, ...]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.control_args import MAX_WAIT_S, BadRequest, body, opt_int, opt_str
from sandbox.inbound import send_inbound
from sandbox.protocol import Reply, Request, json_reply
from sandbox.state import State


def _log(state: State, req: Request) -> Reply:
    params = req.params()
    kind = params.get("kind") or None
    try:
        count = int(params.get("wait_for", "0"))
        timeout = min(float(params.get("timeout", "5")), MAX_WAIT_S)
    except ValueError:
        raise BadRequest("wait_for/timeout must be numbers") from None
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
    spec = body(req)
    sid = opt_str(spec, "sid")
    if not sid:
        raise BadRequest("'sid' is required")
    repeat = opt_int(spec, "repeat")
    sent = state.callbacks.send(
        sid,
        opt_str(spec, "status"),
        url=opt_str(spec, "url"),
        error_code=opt_int(spec, "error_code"),
        signature=opt_str(spec, "signature") or "valid",
        repeat=1 if repeat is None else repeat,
        idempotency_token=opt_str(spec, "idempotency_token"),
    )
    return json_reply(200, [d.to_json() for d in sent])


def _inbound(state: State, req: Request) -> Reply:
    spec = body(req)
    unknown = set(spec) - {
        "url",
        "from",
        "to",
        "body",
        "opt_out_type",
        "advanced_opt_out",
        "signature",
        "auth_token",
        "account_sid",
        "messaging_service_sid",
    }
    if unknown:
        raise BadRequest(f"unknown keys: {sorted(unknown)}")
    url, from_, to = opt_str(spec, "url"), opt_str(spec, "from"), opt_str(spec, "to")
    if not (url and from_ and to):
        raise BadRequest("'url', 'from' and 'to' are required")
    advanced = spec.get("advanced_opt_out", False)
    if not isinstance(advanced, bool):
        raise BadRequest("'advanced_opt_out' must be true or false")
    delivery = send_inbound(
        state,
        url,
        from_,
        to,
        opt_str(spec, "body") or "",
        opt_out_type=opt_str(spec, "opt_out_type"),
        advanced_opt_out=advanced,
        signature=opt_str(spec, "signature") or "valid",
        auth_token=opt_str(spec, "auth_token"),
        account_sid=opt_str(spec, "account_sid"),
        messaging_service_sid=opt_str(spec, "messaging_service_sid"),
    )
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
