"""Control endpoints for the SMS lifecycle (/_sandbox/sms...).

GET  /_sandbox/sms                 rate, per-sender rates, delay, outcomes, held counts
POST /_sandbox/sms                 {"rate": 1, "sender_rates": {"+1500...": 0},
                                    "delivery_delay_s": 2, "price_delay_s": 60,
                                    "max_queue_s": 14400,
                                    "outcomes": {"+1415...": {"status": "undelivered",
                                                              "error_code": 30005},
                                                 "+1416...": null}}   (keys optional)
POST /_sandbox/sms/release         {"sender": null, "count": null} -> {"released": n}
GET  /_sandbox/sms/status?sid=SM..&status=delivered&timeout=5   long-poll; 408 on timeout
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sandbox.control.args import MAX_WAIT_S, BadRequest, body, mapping, opt_int, opt_number, opt_str
from sandbox.server.protocol import Reply, Request, json_reply
from sandbox.server.state import State
from sandbox.twilio.lifecycle import reached


def _get(state: State, req: Request) -> Reply:
    return json_reply(200, state.outbox.to_json())


def _configure(state: State, req: Request) -> Reply:
    spec = body(req)
    unknown = set(spec) - {
        "rate",
        "sender_rates",
        "delivery_delay_s",
        "price_delay_s",
        "outcomes",
        "max_queue_s",
    }
    if unknown:
        raise BadRequest(f"unknown keys: {sorted(unknown)}")
    outbox = state.outbox
    if "rate" in spec:
        outbox.set_rate(opt_number(spec, "rate"))
    for sender, rate in mapping(spec, "sender_rates").items():
        outbox.set_rate(opt_number({"rate": rate}, "rate"), sender)
    delay = opt_number(spec, "delivery_delay_s")
    if delay is not None:
        outbox.set_delivery_delay(delay)
    max_queue = opt_number(spec, "max_queue_s")
    if max_queue is not None:
        outbox.set_max_queue(max_queue)
    price_delay = opt_number(spec, "price_delay_s")
    if price_delay is not None:
        outbox.set_price_delay(price_delay)
    for recipient, outcome in mapping(spec, "outcomes").items():
        if outcome is None:
            outbox.set_outcome(recipient, None)
            continue
        if not isinstance(outcome, Mapping):
            raise BadRequest("each outcome must be an object or null")
        status = opt_str(outcome, "status")
        if status is None:
            raise BadRequest("an outcome needs a status")
        outbox.set_outcome(recipient, status, opt_int(outcome, "error_code"))
    return json_reply(200, outbox.to_json())


def _release(state: State, req: Request) -> Reply:
    spec = body(req)
    count = state.outbox.release(opt_str(spec, "sender"), opt_int(spec, "count"))
    return json_reply(200, {"released": count})


def _status(state: State, req: Request) -> Reply:
    params = req.params()
    sid, status = params.get("sid", ""), params.get("status", "")
    if not sid or not status:
        raise BadRequest("sid and status are required")
    try:
        timeout = min(float(params.get("timeout", "5")), MAX_WAIT_S)
    except ValueError:
        raise BadRequest("timeout must be a number") from None
    try:
        found = state.recorder.wait_for_message(
            sid, lambda m: reached(m.status or "", status), timeout
        )
    except TimeoutError as exc:
        return json_reply(408, {"error": str(exc)})
    return json_reply(200, found.to_json())


ENDPOINTS: dict[tuple[str, str], Callable[[State, Request], Reply]] = {
    ("GET", "sms"): _get,
    ("POST", "sms"): _configure,
    ("POST", "sms/release"): _release,
    ("GET", "sms/status"): _status,
}
