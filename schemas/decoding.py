"""Turn a raw stream entry into an Event, or say exactly why it is a dead letter. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import DeadLetterReason as Reason
from schemas import Event, EventError

_TYPE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_MAX_ID = 200
_TEXT_FIELDS = ("id", "subject", "source")
_json = msgspec.json.Decoder()


def entry_time(entry_id: str) -> datetime:
    """The time Redis assigned to a stream entry id (`<ms>-<seq>`)."""
    millis = int(entry_id.split("-", 1)[0])
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def entry_size(fields: Mapping[bytes, bytes]) -> int:
    return sum(map(len, fields)) + sum(map(len, fields.values()))


def _text(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    return value if value else None


def decode_entry(entry_id: str, raw: Mapping[bytes, bytes], max_bytes: int) -> Event:
    """Validate one entry against docs/interfaces.md section 1; raise EventError with a reason."""
    size = entry_size(raw)
    if size > max_bytes:
        raise EventError(Reason.OVERSIZED, f"entry is {size} bytes, limit {max_bytes}")
    try:
        fields = {key.decode(): value.decode() for key, value in raw.items()}
    except UnicodeDecodeError:
        raise _not_utf8(raw) from None
    for name in ("id", "type", "data"):
        if not fields.get(name):
            raise EventError(Reason.MISSING_FIELD, f"required field {name!r} is missing or empty")
    # Postgres text cannot hold NUL: one such event would fail its whole batch's insert.
    # (`type` is held to a pattern; fields outside the contract are never used.)
    for name in _TEXT_FIELDS:
        if "\x00" in fields.get(name, ""):
            raise EventError(Reason.NUL_CHARACTER, f"field {name!r} contains a NUL character")
    event_id, event_type = fields["id"], fields["type"]
    if len(event_id) > _MAX_ID:
        raise EventError(Reason.BAD_ID, f"id is {len(event_id)} characters, limit {_MAX_ID}")
    if not _TYPE.match(event_type):
        raise EventError(Reason.BAD_TYPE, f"type {event_type[:100]!r} is not a dotted event type")
    data = _decode_data(fields["data"])
    if "\\u0000" in fields["data"] and _holds_nul(data):  # the walk only when it may
        raise EventError(Reason.NUL_CHARACTER, "data contains a NUL character (\\u0000)")
    time = _decode_time(fields.get("time"), entry_id)
    spec = _text(fields, "specversion")
    if spec is not None and spec != "1.0":
        raise EventError(Reason.BAD_SPECVERSION, f"specversion {spec[:20]!r} is not '1.0'")
    return Event(
        id=event_id,
        type=event_type,
        data=data,
        time=time,
        source=_text(fields, "source"),
        subject=_text(fields, "subject"),
        specversion=spec,
    )


def _not_utf8(raw: Mapping[bytes, bytes]) -> EventError:
    """The first field, in entry order, whose name or value is not UTF-8."""
    for key, value in raw.items():
        try:
            key.decode()
            value.decode()
        except UnicodeDecodeError:
            name = key.decode(errors="replace")
            return EventError(Reason.NOT_UTF8, f"field {name!r} is not valid UTF-8")
    raise AssertionError("every field decodes")  # pragma: no cover - only called on failure


def _decode_data(text: str) -> dict[str, Any]:
    try:
        value = _json.decode(text)
    except msgspec.DecodeError as exc:
        raise EventError(Reason.BAD_JSON, f"data is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EventError(Reason.NOT_OBJECT, f"data is JSON {type(value).__name__}, not an object")
    return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(_holds_nul, value))
    return False


def _decode_time(text: str | None, entry_id: str) -> datetime:
    if not text:
        return entry_time(entry_id)
    if not _RFC3339.match(text):
        raise EventError(Reason.BAD_TIME, f"time {text[:40]!r} is not RFC 3339")
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise EventError(Reason.BAD_TIME, f"time {text[:40]!r} is not a valid date") from None
    return parsed.astimezone(UTC)
