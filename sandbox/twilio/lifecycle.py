"""The outbound message status machine, as Twilio documents it, written as data.

    accepted -> queued -> sending -> sent -> delivered
                  |          |        +---> undelivered (carrier said no; has an error code)
                  +----------+--------+---> failed (never sent, or the carrier failed it)

A message sent with MessagingServiceSid and no From starts `accepted` (Twilio still has to
pick a sender); otherwise `queued`. `date_sent` stays null until the message is `sent`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from sandbox.twilio.segments import segments

TRANSITIONS: dict[str, frozenset[str]] = {
    "accepted": frozenset({"queued", "failed"}),
    "queued": frozenset({"sending", "failed"}),
    "sending": frozenset({"sent", "failed"}),
    "sent": frozenset({"delivered", "undelivered", "failed"}),
}
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})
_STEP = {"accepted": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "undelivered": 4}
# What an on-demand outcome may be, and the error code each gets when none is given.
OUTCOME_CODES: dict[str, int | None] = {"delivered": None, "undelivered": 30003, "failed": 30008}
ERROR_MESSAGES: dict[int, str] = {
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30036: "Validity Period Expired",
    21610: "Attempt to send to unsubscribed recipient",
}
# Twilio's US long-code price per segment; shown once a message is sent, negative (a debit).
PRICE_PER_SEGMENT = 0.0079


class TransitionError(ValueError):
    """A status change the machine does not allow (e.g. back from a final status)."""


def rfc2822(timestamp: float) -> str:
    """Twilio's date format: 'Fri, 24 May 2019 17:44:46 +0000'."""
    return _rfc2822_second(int(timestamp))


@functools.lru_cache(maxsize=4)
def _rfc2822_second(second: int) -> str:
    # Formatting is a visible share of each status change; a burst shares its second.
    return format_datetime(datetime.fromtimestamp(second, UTC))


def reached(current: str, target: str) -> bool:
    """Whether a message now `current` has been through `target` (failed skips `sent`)."""
    if current == target:
        return True
    if current == "failed":
        return target in ("accepted", "queued", "sending")
    return target in _STEP and current in _STEP and _STEP[current] > _STEP[target] < 4


def initial_status(from_: str) -> str:
    return "queued" if from_ else "accepted"


def priced(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource with its price: Twilio fills `price` when the carrier bills the message,
    which may be hours after `sent`, and sends no callback for it."""
    moved = dict(resource)
    count = segments(str(resource.get("body") or ""))
    moved["price"] = f"{-PRICE_PER_SEGMENT * count:.5f}"
    return moved


def advance(
    resource: Mapping[str, Any],
    status: str,
    now: float,
    error_code: int | None = None,
    *,
    price: bool = True,
) -> dict[str, Any]:
    """The resource after moving to `status`; TransitionError if that move is not allowed.
    With `price`, a message is priced as it is `sent`; else `priced` does it later."""
    current = str(resource["status"])
    if status not in TRANSITIONS.get(current, frozenset()):
        raise TransitionError(f"{resource.get('sid')}: {current} -> {status} is not allowed")
    moved = dict(resource)
    moved["status"] = status
    moved["date_updated"] = rfc2822(now)
    if status == "sent":
        moved["date_sent"] = rfc2822(now)
        if price:
            moved = priced(moved)
    if status in ("undelivered", "failed"):
        code = error_code if error_code is not None else OUTCOME_CODES[status]
        moved["error_code"] = code
        moved["error_message"] = ERROR_MESSAGES.get(code or 0)
    return moved
