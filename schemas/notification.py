"""Notifications and their status machine (docs/interfaces.md section 3)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec


class Channel(enum.StrEnum):
    SMS = "sms"
    PUSH = "push"


class Provider(enum.StrEnum):
    """Who holds a notification (`notifications.provider`, `notification_attempts.provider`)."""

    TWILIO = "twilio"
    VONAGE = "vonage"
    FCM = "fcm"


class PushId(enum.StrEnum):
    """Which FCM identifier a push recipient is; FCM v1 has a message field for each.

    A registration token is what `getToken()` returns and almost every app stores; an
    installation ID (FID) is what an app registers in FCM's installation-ID mode.
    """

    TOKEN = "token"
    FID = "fid"


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


# Named once, used in Python and in the SQL built from them (saq's TERMINAL_STATUSES).
# Waiting for a worker or the schedule: the only rows beat and the sweeper act on.
IN_FLIGHT: frozenset[Status] = frozenset({Status.SCHEDULED, Status.PENDING, Status.SENDING})
# A row in one of these never goes to a provider again.
TERMINAL: frozenset[Status] = frozenset(Status) - IN_FLIGHT
# A row in one of these never changes again (a `sent` SMS still awaits its receipt).
FINAL: frozenset[Status] = TERMINAL - {Status.SENT}

# The status machine as data: every move a row may make. It only moves forward.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.PENDING, Status.FAILED, Status.CANCELLED, Status.SKIPPED}),
    Status.PENDING: frozenset({Status.SENDING, Status.FAILED, Status.SKIPPED}),
    # SKIPPED: a claim undone before the provider call (the SMS's country is paused).
    Status.SENDING: frozenset({Status.SENT, Status.PENDING, Status.FAILED, Status.SKIPPED}),
    Status.SENT: frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED}),
    **{status: frozenset() for status in FINAL},
}


def can_move(current: Status, to: Status) -> bool:
    return to in TRANSITIONS[current]


def sql_list(statuses: frozenset[Status] | set[Status]) -> str:
    """A status set as a SQL literal list, `('pending', 'sending')`, in a stable order."""
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(statuses)) + ")"


class AttemptOutcome(enum.StrEnum):
    """How one provider call ended (`notification_attempts.outcome`)."""

    STARTED = "started"
    # About to call a provider that has no lookup (Vonage): the sweeper may resend a row
    # whose open attempt is still `started`, never one that reached `calling`.
    CALLING = "calling"
    SENT = "sent"
    RECONCILED = "reconciled"  # an earlier ambiguous call was found at the provider
    TRANSIENT_ERROR = "transient_error"
    PERMANENT_ERROR = "permanent_error"
    CONFIG_ERROR = "config_error"
    NOT_RECEIVED = "not_received"  # the sweeper found no trace at the provider: resend
    UNKNOWN = "unknown"  # the worker died mid-call and the provider has no lookup
    # Only a lookup was made (asking Twilio whether an earlier send arrived), and it failed:
    # nothing was sent, so it does not count against NOTIFY_MAX_SEND_ATTEMPTS.
    LOOKUP_FAILED = "lookup_failed"


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    """How the sweeper settles a row stuck in `sending`: the row's next status and the end of
    its open attempt (`resolve_sending`)."""

    status: Status
    outcome: AttemptOutcome
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class TaskResult(enum.StrEnum):
    """What a delivery task did with one row (the `status` label of notify_notifications_total,
    plus `skipped` for a task whose row was no longer pending)."""

    SENT = "sent"
    FAILED = "failed"
    RETRIED = "retried"
    SKIPPED = "skipped"
    DEFERRED = "deferred"  # waiting for its sender's turn: back to pending, not an attempt


class ThrottleKey(msgspec.Struct, frozen=True, kw_only=True):
    """A rule's throttle, rendered for one notification: the store counts it when inserting."""

    key: str
    limit: int
    window_seconds: float


class NewNotification(msgspec.Struct, frozen=True, kw_only=True):
    """A routing decision, ready to insert."""

    idempotency_key: str
    event_id: str
    event_type: str
    event_subject: str | None
    rule: str
    channel: Channel
    recipient: str
    body: str
    title: str | None = None
    data: dict[str, str] | None = None
    push_id: PushId | None = None  # push only: which identifier `recipient` is
    status: Status = Status.PENDING
    send_at: datetime | None = None
    cancel_on: list[str] = []
    error_code: str | None = None
    error_message: str | None = None
    rules_version: str | None = None
    # Counted against the rule's throttle as the row is inserted; over the limit: skipped.
    throttle: ThrottleKey | None = None
    # The zone whose quiet hours moved `send_at` (for `rules preview`; not stored).
    quiet_zone: str | None = None
    # The event's own time: the start of notify_delivery_seconds (event -> delivery receipt).
    event_time: datetime | None = None
    # SMS only: what the body costs (notify/segments.py) and where it goes (ISO 3166).
    segments: int | None = None
    encoding: str | None = None
    country: str | None = None


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """A stored row, as a task loads it."""

    id: int
    idempotency_key: str
    event_id: str
    event_type: str
    rule: str
    channel: Channel
    recipient: str
    body: str
    title: str | None
    data: dict[str, Any] | None
    status: Status
    attempts: int
    provider_message_id: str | None
    error_code: str | None
    send_at: datetime | None
    updated_at: datetime | None = None
    push_id: PushId | None = None
    # When the earliest send whose answer was lost began (null: none). While set, every
    # attempt asks Twilio for that message before sending again.
    unsure_since: datetime | None = None
    # Attempts that were only a failed lookup: `attempts - lookup_failures` sends were made.
    lookup_failures: int = 0
    # SMS only, from routing: billed segments, GSM-7 or UCS-2, and the number's country.
    segments: int | None = None
    encoding: str | None = None
    country: str | None = None
    # Chosen at the first claim; changes only when an attempt proves it did not take it.
    provider: Provider | None = None

    @property
    def sends(self) -> int:
        """Attempts that called the provider to send, this one included."""
        return self.attempts - self.lookup_failures
