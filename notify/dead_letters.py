"""Publishing events and handling the dead-letter stream (`notify publish`, `notify dlq`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from notify.redis_clients import SyncRedis
from schemas.decoding import decode_entry

_DLQ_PREFIX = b"_dlq_"


def event_fields(
    event_type: str,
    data: str,
    *,
    event_id: str | None = None,
    subject: str | None = None,
    source: str | None = None,
    time: str | None = None,
    max_bytes: int,
) -> dict[str, str]:
    """The stream entry for one event, checked as the consumer will decode it, so what it
    would dead-letter at once is refused here (EventError; ValueError for JSON)."""
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"--data is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"--data must be a JSON object, not {type(parsed).__name__}")
    fields: dict[str, str] = {
        "id": f"evt-{uuid.uuid4()}" if event_id is None else event_id,
        "type": event_type,
        "data": json.dumps(parsed, separators=(",", ":"), ensure_ascii=False),
        "specversion": "1.0",
        "time": time or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if subject:
        fields["subject"] = subject
    if source:
        fields["source"] = source
    # Text from argv that was not UTF-8 arrives as surrogates: back to the bytes it was.
    raw = {k.encode(): v.encode(errors="surrogateescape") for k, v in fields.items()}
    decode_entry("0-0", raw, max_bytes)
    return fields


def publish(client: SyncRedis, stream: str, fields: dict[str, str]) -> str:
    """XADD one event's fields; returns the stream entry id."""
    entry = client.xadd(stream, fields)  # type: ignore[arg-type]
    return entry.decode() if isinstance(entry, bytes) else str(entry)


@dataclass(frozen=True)
class DeadEntry:
    dlq_id: str
    original_id: str
    reason: str
    detail: str
    deliveries: str
    fields: dict[bytes, bytes]
    # Later dead letters of the same stream entry (written again after a crash between
    # dead-lettering and acknowledging it): listed as this one, removed with it on replay.
    copies: tuple[str, ...] = ()

    def original_fields(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.fields.items() if not k.startswith(_DLQ_PREFIX)}

    @property
    def event_id(self) -> str | None:
        """The event's own `id` field, if it had one (a `missing_field` letter may not)."""
        return _text(self.fields[b"id"]) if b"id" in self.fields else None

    @property
    def event_type(self) -> str | None:
        return _text(self.fields[b"type"]) if b"type" in self.fields else None

    def as_json(self) -> dict[str, Any]:
        """`notify dlq list --json`: every field in full; `event_id`/`type` null if absent."""
        return {
            "id": self.dlq_id,
            "entry_id": self.original_id,
            "event_id": self.event_id,
            "type": self.event_type,
            "reason": self.reason,
            "detail": self.detail,
            "deliveries": int(self.deliveries or 1),
        }


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _printable(text: str) -> str:
    """A dead letter is untrusted input: escape control characters before a terminal sees them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shorten(text: str | None, width: int, *, middle: bool = False) -> str:
    """Fit a table cell: ids keep both ends (prefixes repeat, tails differ), types their start."""
    if text is None:
        return "-"
    text = _printable(text)
    if len(text) <= width:
        return text
    if middle:
        head = (width - 1) // 2
        return f"{text[:head]}…{text[len(text) - (width - 1 - head) :]}"
    return text[: width - 1] + "…"


def table(entries: list[DeadEntry]) -> list[str]:
    """`notify dlq list`: one line per dead letter, widths fixed so the columns line up."""
    lines = [f"{'DLQ ID':<18} {'ENTRY ID':<18} {'EVENT ID':<24} {'TYPE':<24} {'REASON':<16} DETAIL"]
    for e in entries:
        event_id = shorten(e.event_id, 24, middle=True)
        lines.append(
            f"{e.dlq_id:<18} {e.original_id:<18} {event_id:<24} {shorten(e.event_type, 24):<24} "
            f"{e.reason:<16} {shorten(e.detail, 100)}"
        )
    return lines


def dead_letters(client: SyncRedis, dlq: str, count: int = 1000) -> list[DeadEntry]:
    """The first `count` dead letters, one per stream entry (see `DeadEntry.copies`)."""
    out: list[DeadEntry] = []
    first: dict[str, int] = {}  # stream entry id -> its position in `out`
    reply: Any = client.xrange(dlq, count=count)
    for entry_id, fields in reply:
        dlq_id = _text(entry_id)
        original_id = _text(fields.get(b"_dlq_entry_id", b""))
        if original_id and original_id in first:
            at = first[original_id]
            out[at] = replace(out[at], copies=(*out[at].copies, dlq_id))
            continue
        if original_id:
            first[original_id] = len(out)
        out.append(
            DeadEntry(
                dlq_id=dlq_id,
                original_id=original_id,
                reason=_text(fields.get(b"_dlq_reason", b"")),
                detail=_text(fields.get(b"_dlq_detail", b"")),
                deliveries=_text(fields.get(b"_dlq_deliveries", b"1")),
                fields=dict(fields),
            )
        )
    return out


@dataclass(frozen=True)
class Selection:
    """The dead letters ids name (each once, in stream order), and the ids naming none."""

    entries: list[DeadEntry]
    unknown: list[str]


def select(entries: list[DeadEntry], ids: list[str] | None) -> Selection:
    """The entries `ids` name, by dead-letter id (a copy's too) or original entry id; None:
    every entry."""
    if ids is None:
        return Selection(list(entries), [])
    wanted = set(ids)
    chosen = [e for e in entries if wanted & {e.dlq_id, e.original_id, *e.copies}]
    known = {i for e in chosen for i in (e.dlq_id, e.original_id, *e.copies)}
    return Selection(chosen, [i for i in dict.fromkeys(ids) if i not in known])


def replay(client: SyncRedis, stream: str, dlq: str, entries: list[DeadEntry]) -> list[str]:
    """Re-publish these dead letters; remove each (and its copies) once it is re-published.

    Two commands, not a MULTI: the streams may live in different slots of a Redis Cluster.
    A crash between them leaves the dead letter to be replayed again, and the event
    published twice changes nothing (its notifications' idempotency keys)."""
    replayed = []
    for entry in entries:
        client.xadd(stream, entry.original_fields())  # type: ignore[arg-type]
        client.xdel(dlq, entry.dlq_id, *entry.copies)
        replayed.append(entry.dlq_id)
    return replayed
