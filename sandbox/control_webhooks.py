"""Control endpoints for webhooks the emulator sends to the application.

GET  /_sandbox/webhooks?kind=status&wait_for=2&timeout=5   the delivery log (long-poll)
POST /_sandbox/webhooks {"auth_token": "..."}               sign with this (null: default)
POST /_sandbox/sms/callback {"sid": "SM...", "status": "delivered", "url": null,
                             "error_code": null, "signature": "valid|forged|missing",
                             "repeat": 1, "idempotency_token": null}  -> [delivery, ...]
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.control_args import MAX_WAIT_S, BadRequest, body, opt_int, opt_str
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


ENDPOINTS: dict[tuple[str, str], Callable[[State, Request], Reply]] = {
    ("GET", "webhooks"): _log,
    ("POST", "webhooks"): _configure,
    ("POST", "sms/callback"): _callback,
}
