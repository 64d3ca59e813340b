"""Delivery receipts (interfaces section 6): what Twilio reports after it accepted a message."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from schemas.notification import TRANSITIONS, Status
from schemas.suppression import Reason


class ReceiptSource(enum.StrEnum):
    """Where a receipt came from (`notification_receipts.source`)."""

    CALLBACK = "callback"  # Twilio called POST /webhooks/twilio/status
    LOOKUP = "lookup"  # beat asked Twilio (messages(sid).fetch()) after the receipt timeout


# Twilio's MessageStatus values that settle a row, and the status each one moves it to.
# Every other value (queued, sending, sent, ...) is recorded and changes nothing.
SETTLES: dict[str, Status] = {
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    # Vonage's Messages API (`delivered` is the same word): no provider uses the other's.
    "undeliverable": Status.UNDELIVERED,
    "rejected": Status.FAILED,
}

# Receipt error codes that say this number must get nothing more (Twilio's error pages):
# 21610, the recipient opted out (a Messaging Service reports it in a `failed` callback).
# Not here, though "never deliverable" is tempting: 30003 (handset off, no signal:
# temporary), 30005 (unknown or inactive: numbers are reassigned), 30006 (a landline, or a
# short code's unreachable carrier: the sender's problem as often as the number's), 30004
# (blocked, by whom unspecified), 30007 (filtered: the text, not the number).
SUPPRESSING_RECEIPTS: dict[str, Reason] = {"21610": Reason.TWILIO_21610}

# The statuses a receipt may move a row out of: those from which every settling status is an
# allowed transition (today only `sent`). Written as data so the SQL follows TRANSITIONS.
SETTLEABLE: frozenset[Status] = frozenset(
    status for status, allowed in TRANSITIONS.items() if set(SETTLES.values()) <= allowed
)

# Twilio's documented MessageStatus values: the `status` label set of notify_receipts_total
# (anything else is counted as `other`, so a stranger cannot grow the label set).
TWILIO_STATUSES: frozenset[str] = frozenset(
    {
        "accepted",
        "scheduled",
        "canceled",
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "read",
        "partially_delivered",
    }
)


# Vonage's documented SMS statuses (Messages API status webhook).
VONAGE_STATUSES: frozenset[str] = frozenset({"submitted", "delivered", "rejected", "undeliverable"})
PROVIDER_STATUSES = TWILIO_STATUSES | VONAGE_STATUSES


def settles(provider_status: str) -> Status | None:
    """The status a receipt with this provider status moves its row to, if any."""
    return SETTLES.get(provider_status)


def status_label(provider_status: str) -> str:
    return provider_status if provider_status in PROVIDER_STATUSES else "other"


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery report, as `notification_receipts` records it."""

    provider_message_id: str
    provider_status: str
    received_at: datetime
    error_code: str | None = None
    source: ReceiptSource = ReceiptSource.CALLBACK
    # Twilio's I-Twilio-Idempotency-Token: the same on each retry of one callback.
    idempotency_token: str | None = None
    # Lookups know their row; callbacks learn it from the SID.
    notification_id: int | None = None


class Settled(msgspec.Struct, frozen=True, kw_only=True):
    """A row a receipt moved, for metrics and logs."""

    notification_id: int
    channel: str
    status: Status
    error_code: str | None
    provider_message_id: str
    event_time: datetime | None
    received_at: datetime
    recipient: str | None = None
