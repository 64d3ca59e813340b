"""The event envelope upstream services publish (docs/interfaces.md section 1)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec


class DeadLetterReason(enum.StrEnum):
    """Why an entry was dead-lettered: `_dlq_reason`, and the `reason` label of
    notify_dead_letters_total (every member is exported at 0 from the start)."""

    MISSING_FIELD = "missing_field"
    NOT_UTF8 = "not_utf8"
    OVERSIZED = "oversized"
    BAD_ID = "bad_id"
    BAD_TYPE = "bad_type"
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    BAD_TIME = "bad_time"
    BAD_SPECVERSION = "bad_specversion"
    MAX_DELIVERIES = "max_deliveries"  # redelivered too often without success
    # A NUL character (raw, or `\u0000` in data): Postgres text cannot hold one.
    NUL_CHARACTER = "nul_character"


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded, validated stream entry."""

    id: str
    type: str
    data: dict[str, Any]
    time: datetime
    source: str | None = None
    subject: str | None = None
    specversion: str | None = None

    def template_view(self) -> dict[str, Any]:
        """What templates see as `event`."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
        }
