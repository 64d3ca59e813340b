"""The event envelope upstream services publish (CONTRACT section 1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


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
