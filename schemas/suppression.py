"""Suppressions and inbound SMS (interfaces section 6): who must get nothing more, and why."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import msgspec

from schemas.notification import Channel


class Reason(enum.StrEnum):
    """Why a recipient is suppressed (`suppressions.reason`, the `reason` label of
    notify_suppressions_total; every member is exported at 0 from the start)."""

    OPT_OUT = "opt_out"  # the customer texted STOP (or Twilio's Advanced Opt-Out said so)
    TWILIO_21610 = "21610"  # Twilio refused a send: the number unsubscribed
    UNREGISTERED = "unregistered"  # FCM: the app was uninstalled or the token expired
    INVALID_TOKEN = "invalid_token"  # FCM: not a token of ours (malformed, other sender)
    MANUAL = "manual"  # an operator


class Keyword(enum.StrEnum):
    """What an inbound SMS asks for. Only STOP and START change anything."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    NONE = "none"  # an ordinary reply: recorded, never acted on


# A suppression row's `flag`: the recipient was stored as given, but notifications are
# addressed in canonical form, so it matches none of them until someone fixes it.
NOT_E164 = "not_e164"
# `error_code` of a notification skipped because its recipient is suppressed.
SUPPRESSED = "suppressed"


class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `suppressions` (one per channel and recipient)."""

    channel: Channel
    recipient: str
    reason: Reason
    source: str
    created_at: datetime
    flag: str | None = None


class InboundSms(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a Twilio inbound-message webhook this project acts on."""

    message_sid: str
    from_: str
    to: str = ""
    body: str = ""
    opt_out_type: str | None = None  # Twilio's Advanced Opt-Out: STOP, START or HELP

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> InboundSms:
        """From the webhook's form fields, named as Twilio names them."""
        return cls(
            message_sid=form.get("MessageSid", ""),
            from_=form.get("From", ""),
            to=form.get("To", ""),
            body=form.get("Body", ""),
            opt_out_type=form.get("OptOutType") or None,
        )


class InboundResult(msgspec.Struct, frozen=True, kw_only=True):
    """What handling one inbound SMS did: the keyword found, and whether it changed the
    number's suppression (a second STOP changes nothing)."""

    keyword: Keyword
    changed: bool
    flag: str | None = None
