"""Incoming SMS: what Twilio POSTs to a number's messaging webhook when someone texts it."""

from __future__ import annotations

import secrets

from sandbox.optouts import OPT_OUT_TYPES, keyword_type
from sandbox.segments import segments
from sandbox.state import State
from sandbox.webhooks import WebhookDelivery

# The account an incoming message belongs to when none is given or enforced.
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32


def send_inbound(
    state: State,
    url: str,
    from_: str,
    to: str,
    body: str,
    *,
    opt_out_type: str | None = None,
    advanced_opt_out: bool = False,
    signature: str = "valid",
    auth_token: str | None = None,
    account_sid: str | None = None,
    messaging_service_sid: str | None = None,
) -> WebhookDelivery:
    """Deliver a text from `from_` to the app's number `to`, and return the app's answer.

    A STOP/START keyword body (or an explicit `opt_out_type`) updates the opted-out set
    first, as Twilio does before calling the webhook. With `advanced_opt_out` the keyword's
    kind is sent as OptOutType; an explicit `opt_out_type` is always sent.
    """
    if opt_out_type is not None and opt_out_type not in OPT_OUT_TYPES:
        raise ValueError(f"opt_out_type must be one of {OPT_OUT_TYPES}, got {opt_out_type!r}")
    kind = opt_out_type or keyword_type(body)
    state.optouts.apply(from_, kind)
    sid = "SM" + secrets.token_hex(16)
    account = account_sid or (state.twilio_auth[0] if state.twilio_auth else DEFAULT_ACCOUNT_SID)
    params = {
        "AccountSid": account,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": from_,
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": str(segments(body)),
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": to,
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    sent_type = opt_out_type or (kind if advanced_opt_out else None)
    if sent_type is not None:
        params["OptOutType"] = sent_type
    token = auth_token or state.callbacks.signing_token()
    return state.webhooks.deliver("inbound", url, params, token, signature=signature)
