"""Incoming SMS: what Twilio POSTs to a number's messaging webhook when someone texts it."""

from __future__ import annotations

import secrets

from sandbox.control.specs import InboundSpec
from sandbox.server.state import State
from sandbox.twilio.optouts import keyword_type
from sandbox.twilio.segments import segments
from sandbox.twilio.webhooks import WebhookDelivery

# The account an incoming message belongs to when none is given or enforced.
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32


def send_inbound(state: State, spec: InboundSpec) -> WebhookDelivery:
    """Deliver the text `spec` describes, and return the app's answer.

    A STOP/START keyword body (or an explicit `opt_out_type`) updates the opted-out set
    first, as Twilio does before calling the webhook. With `advanced_opt_out` the keyword's
    kind is sent as OptOutType; an explicit `opt_out_type` is always sent.
    """
    body, from_ = spec.body, spec.from_
    kind = spec.opt_out_type or keyword_type(body)
    state.optouts.apply(from_, kind)
    sid = "SM" + secrets.token_hex(16)
    usual = state.twilio_auth[0] if state.twilio_auth else DEFAULT_ACCOUNT_SID
    account = spec.account_sid or usual
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
        "To": spec.to,
    }
    if spec.messaging_service_sid:
        params["MessagingServiceSid"] = spec.messaging_service_sid
    sent_type = spec.opt_out_type or (kind if spec.advanced_opt_out else None)
    if sent_type is not None:
        params["OptOutType"] = sent_type
    token = spec.auth_token or state.callbacks.signing_token()
    return state.webhooks.deliver("inbound", spec.url, params, token, signature=spec.signature)
