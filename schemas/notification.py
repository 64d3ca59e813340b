"""Notifications and their status machine (CONTRACT section 3)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec


class Channel(enum.StrEnum):
    SMS = "sms"
    PUSH = "push"


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A row in one of these never goes to a provider again.
TERMINAL: frozenset[Status] = frozenset(
    {Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.CANCELLED}
)


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
    status: Status = Status.PENDING
    send_at: datetime | None = None
    cancel_on: list[str] = []
    error_code: str | None = None
    error_message: str | None = None
    rules_version: str | None = None


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
