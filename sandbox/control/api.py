"""The /_sandbox/ control API used by tests and other processes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from sandbox.control import sms as control_sms
from sandbox.control import webhooks as control_webhooks
from sandbox.control.args import BadRequest, body, opt_number, wait_params
from sandbox.server.protocol import Reply, Request, json_reply
from sandbox.server.state import State

PREFIX = "/_sandbox/"


def route(state: State, req: Request) -> Reply:
    name = req.path[len(PREFIX) :].strip("/")
    endpoint = _ENDPOINTS.get((req.method, name))
    if endpoint is None:
        return json_reply(404, {"error": f"no control endpoint {req.method} {req.path}"})
    try:
        return endpoint(state, req)
    except (TypeError, ValueError) as exc:
        # Bad arguments of any endpoint (and the setters' own checks) are the caller's fault.
        return json_reply(400, {"error": str(exc)})


def _health(state: State, req: Request) -> Reply:
    return json_reply(
        200,
        {
            "status": "ok",
            "messages": len(state.recorder.messages()),
            "requests": len(state.recorder.requests()),
            "tokens": state.tokens.count(),
            "held": state.outbox.held(),
            "webhooks": len(state.webhooks.deliveries()),
            "opted_out": len(state.optouts.numbers()),
        },
    )


def _requests(state: State, req: Request) -> Reply:
    records = state.recorder.requests(req.params().get("channel") or None)
    return json_reply(200, [r.to_json() for r in records])


def _get_script(state: State, req: Request) -> Reply:
    return json_reply(200, state.script.to_json())


def _set_script(state: State, req: Request) -> Reply:
    try:
        spec = req.json()
        if not isinstance(spec, Mapping):
            raise TypeError("script must be a JSON object")
        state.script.apply(spec)
    except (TypeError, ValueError) as exc:
        return json_reply(400, {"error": str(exc)})
    return json_reply(200, state.script.to_json())


def _refuse(state: State, req: Request) -> Reply:
    seconds = opt_number(body(req), "seconds")
    if seconds is None or seconds < 0:
        raise BadRequest("'seconds' must be a number >= 0")
    listener = state.listener
    if listener is None:
        return json_reply(409, {"error": "sandbox not listening"})
    # In effect before the answer, which still goes out on this (kept) connection.
    return replace(
        json_reply(200, {"refusing_for": seconds}),
        before_write=lambda conn: listener.refuse_for(seconds, keep=conn),
    )


def _reset(state: State, req: Request) -> Reply:
    state.reset()
    return json_reply(200, {"status": "ok"})


def _messages(state: State, req: Request) -> Reply:
    params = req.params()
    channel = params.get("channel") or None
    if channel not in (None, "sms", "push"):
        return json_reply(400, {"error": "channel must be sms or push"})
    count, timeout = wait_params(params, 10.0)
    if count > 0:
        try:
            found = state.recorder.wait_for(count, timeout, channel)
        except TimeoutError as exc:
            return json_reply(408, {"error": str(exc)})
    else:
        found = state.recorder.messages(channel)
    return json_reply(200, [m.to_json() for m in found])


_ENDPOINTS: dict[tuple[str, str], Callable[[State, Request], Reply]] = {
    ("GET", "health"): _health,
    ("GET", "messages"): _messages,
    ("GET", "requests"): _requests,
    ("GET", "script"): _get_script,
    ("POST", "script"): _set_script,
    ("POST", "reset"): _reset,
    ("POST", "refuse"): _refuse,
    **control_sms.ENDPOINTS,
    **control_webhooks.ENDPOINTS,
}
