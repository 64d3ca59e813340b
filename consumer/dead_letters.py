"""Publishing events and handling the dead-letter stream (`notify publish`, `notify dlq`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

_DLQ_PREFIX = b"_dlq_"


def publish(
    client: redis.Redis,
    stream: str,
    event_type: str,
    data: str,
    *,
    event_id: str | None = None,
    subject: str | None = None,
    source: str | None = None,
    time: str | None = None,
) -> tuple[str, str]:
    """XADD one event; returns (event id, stream entry id). `data` must be a JSON object."""
    parsed = json.loads(data)
    if not isinstance(parsed, dict):
        raise ValueError("--data must be a JSON object")
    fields: dict[str, str] = {
        "id": event_id or f"evt-{uuid.uuid4()}",
        "type": event_type,
        "data": json.dumps(parsed, separators=(",", ":")),
        "specversion": "1.0",
        "time": time or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if subject:
        fields["subject"] = subject
    if source:
        fields["source"] = source
    entry = client.xadd(stream, fields)  # type: ignore[arg-type]
    return fields["id"], entry.decode() if isinstance(entry, bytes) else str(entry)


@dataclass(frozen=True)
class DeadEntry:
    dlq_id: str
    original_id: str
    reason: str
    detail: str
    deliveries: str
    fields: dict[bytes, bytes]

    def original_fields(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.fields.items() if not k.startswith(_DLQ_PREFIX)}


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def dead_letters(client: redis.Redis, dlq: str, count: int = 1000) -> list[DeadEntry]:
    out = []
    reply: Any = client.xrange(dlq, count=count)
    for entry_id, fields in reply:
        out.append(
            DeadEntry(
                dlq_id=_text(entry_id),
                original_id=_text(fields.get(b"_dlq_entry_id", b"")),
                reason=_text(fields.get(b"_dlq_reason", b"")),
                detail=_text(fields.get(b"_dlq_detail", b"")),
                deliveries=_text(fields.get(b"_dlq_deliveries", b"1")),
                fields=dict(fields),
            )
        )
    return out


def replay(client: redis.Redis, stream: str, dlq: str, ids: list[str] | None) -> list[str]:
    """Re-publish selected (or all) dead letters; remove each only once it is re-published."""
    replayed = []
    for entry in dead_letters(client, dlq, count=100_000):
        if ids is not None and entry.dlq_id not in ids and entry.original_id not in ids:
            continue
        pipe = client.pipeline(transaction=True)
        pipe.xadd(stream, entry.original_fields())  # type: ignore[arg-type]
        pipe.xdel(dlq, entry.dlq_id)
        pipe.execute()
        replayed.append(entry.dlq_id)
    return replayed
